// LlamaEmbedder under concurrent callers: more threads than contexts, every result equal to
// the serial one (each context is used by one caller at a time). Labelled `concurrent` (TSan).

#include "pagekeeper/llama_embedder.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "embedding/llama_test_support.hpp"

namespace pagekeeper {
namespace {

TEST(LlamaEmbedderConcurrentTest, ConcurrentCallersShareAPoolOfContexts) {
  PAGEKEEPER_REQUIRE_LLAMA();
#ifdef PAGEKEEPER_HAVE_LLAMA
  LlamaEmbedderConfig config;
  config.model_path = llama_test::tiny_model();
  config.threads = 1;
  config.contexts = 2;
  config.max_batch = 4;
  auto embedder = LlamaEmbedder::create(config);

  std::vector<std::vector<std::string>> batches;
  for (int b = 0; b < 8; ++b) {
    std::vector<std::string> batch;
    for (int t = 0; t <= b % 4; ++t) batch.push_back("batch " + std::to_string(b) + " text " + std::to_string(t));
    batches.push_back(batch);
  }
  std::vector<std::vector<std::vector<float>>> expected;
  for (const auto& batch : batches) expected.push_back(embedder->embed(batch));

  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int worker = 0; worker < 4; ++worker) {
    threads.emplace_back([&, worker] {
      for (int round = 0; round < 6; ++round) {
        const std::size_t b = static_cast<std::size_t>(worker + round) % batches.size();
        const auto got = embedder->embed(batches[b]);
        for (std::size_t i = 0; i < got.size(); ++i) {
          if (llama_test::max_abs_diff(got[i], expected[b][i]) > 1e-5) ++mismatches;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(mismatches.load(), 0);
#endif
}

}  // namespace
}  // namespace pagekeeper
