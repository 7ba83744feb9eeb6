// `pagekeeper index` against a real server: a second run over the same tree is all hits, and
// the in-process mode shares the process's EmbeddingService the same way.

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "cli/indexer.hpp"
#include "server_test_util.hpp"

namespace pagekeeper::test {
namespace {

std::filesystem::path make_tree() {
  const auto root = std::filesystem::temp_directory_path() / ("pagekeeper-index-" + std::to_string(::getpid()));
  std::filesystem::remove_all(root);
  std::filesystem::create_directories(root / "src");
  std::filesystem::create_directories(root / ".git");
  std::filesystem::create_directories(root / "build-x");
  std::ofstream(root / "README.md") << "# Title\n\nSome words about caching.\n";
  std::string big;
  for (int i = 0; i < 300; ++i) big += "line " + std::to_string(i) + " of a source file with some text in it\n";
  std::ofstream(root / "src" / "main.cpp") << big;
  std::ofstream(root / ".git" / "config") << "ignored\n";
  std::ofstream(root / "build-x" / "out.txt") << "ignored\n";
  std::ofstream(root / "src" / "blob.bin", std::ios::binary) << std::string("\x00\x01\x02\xff", 4);
  return root;
}

TEST(IndexViaServer, SecondRunIsAllHits) {
  const auto root = make_tree();
  TestServer s;
  cli::IndexOptions o;
  o.root = root;
  o.server = s.daemon->url();
  o.chunk_bytes = 256;
  o.batch = 16;
  std::size_t progress_calls = 0;
  const auto first = cli::run_index(o, [&](const cli::IndexProgress&) { ++progress_calls; });
  EXPECT_EQ(first.files, 2u);  // README.md and src/main.cpp
  EXPECT_EQ(first.skipped_files, 1u);  // the binary blob
  EXPECT_GT(first.chunks, 40u);
  EXPECT_EQ(first.hits + first.misses, first.chunks);
  EXPECT_EQ(first.misses, first.chunks);
  EXPECT_GE(progress_calls, first.chunks / 16);
  const auto second = cli::run_index(o, nullptr);
  EXPECT_EQ(second.chunks, first.chunks);
  EXPECT_EQ(second.hits, second.chunks);
  EXPECT_EQ(second.misses, 0u);
  EXPECT_DOUBLE_EQ(second.hit_rate_percent(), 100.0);
  std::filesystem::remove_all(root);
}

// Re-indexing a tree whose vectors fit the cache (about 90% of 4 MiB) is all hits while the
// broker ticks: a full cache is not memory pressure.
TEST(IndexViaServer, ReindexingATreeThatFitsIsAllHitsWithTheBrokerTicking) {
  const auto root = std::filesystem::temp_directory_path() / ("pagekeeper-fits-" + std::to_string(::getpid()));
  std::filesystem::remove_all(root);
  std::filesystem::create_directories(root);
  {
    std::ofstream out(root / "notes.txt");
    for (int i = 0; i < 2300; ++i) out << "note " << i << " of a tree whose vectors fit the embedding cache\n";
  }
  TestServer s;  // 4 MiB cache, broker every 100 ms
  cli::IndexOptions o;
  o.root = root;
  o.server = s.daemon->url();
  o.chunk_bytes = 64;  // one line per chunk
  o.batch = 64;
  const auto first = cli::run_index(o, nullptr);
  EXPECT_EQ(first.misses, first.chunks);
  const auto cache = s.daemon->embeddings().stats();
  const double fill = static_cast<double>(cache.total_bytes) / static_cast<double>(cache.max_bytes);
  EXPECT_GT(fill, 0.85);  // past the act_above default: the old broker cut it to 60%
  EXPECT_LT(fill, 1.0);
  for (int run = 2; run <= 3; ++run) {
    const std::uint64_t target = s.daemon->broker().snapshot().passes_total + 2;
    test_support::eventually([&] { return s.daemon->broker().snapshot().passes_total >= target; },
                             std::chrono::milliseconds(5));
    ASSERT_GE(s.daemon->broker().snapshot().passes_total, target) << "the broker is not ticking";
    const auto again = cli::run_index(o, nullptr);
    EXPECT_EQ(again.chunks, first.chunks);
    EXPECT_DOUBLE_EQ(again.hit_rate_percent(), 100.0) << "run " << run;
  }
  std::filesystem::remove_all(root);
}

TEST(IndexViaServer, ChunksAreWholeLinesAndNeverSplitACharacter) {
  const auto chunks = cli::split_chunks("a\nbb\n\n  \nccc\n", 4);
  // The whitespace-only chunk "  \n" is dropped.
  EXPECT_EQ(chunks, (std::vector<std::string>{"a\n", "bb\n\n", "ccc\n"}));
  const std::string snowmen = "\xe2\x98\x83\xe2\x98\x83\xe2\x98\x83";  // 3 x 3 bytes, no newline
  for (const auto& c : cli::split_chunks(snowmen, 4)) {
    EXPECT_EQ(c.size() % 3, 0u) << "split inside a character";
  }
}

}  // namespace
}  // namespace pagekeeper::test
