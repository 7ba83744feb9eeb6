// Tests of pagekeeper::TraceReader: both formats, plain and zstd, streaming across buffer
// boundaries, and a typed error with the right line number for every kind of bad input.

#include "cli/trace.hpp"

#include <gtest/gtest.h>
#include <zstd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <unordered_set>
#include <vector>

#include "cli/trace_dir.hpp"

namespace pagekeeper {
namespace {

std::string zstd_compress(const std::string& text, int level = 3) {
  std::string out(ZSTD_compressBound(text.size()), '\0');
  std::size_t n = ZSTD_compress(out.data(), out.size(), text.data(), text.size(), level);
  EXPECT_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

std::vector<TraceRequest> read_all(std::string_view bytes, TraceFormat format = TraceFormat::kAuto) {
  TraceReader reader = TraceReader::from_memory(bytes, format);
  std::vector<TraceRequest> out;
  TraceRequest r;
  while (reader.next(r)) out.push_back(r);
  EXPECT_FALSE(reader.next(r)) << "end of trace must be sticky";
  return out;
}

// Reads until the reader throws; returns the error (fails the test if nothing is thrown).
TraceError error_of(std::string_view bytes, TraceFormat format = TraceFormat::kAuto) {
  try {
    TraceReader reader = TraceReader::from_memory(bytes, format, "t.trace");
    TraceRequest r;
    while (reader.next(r)) {
    }
  } catch (const TraceError& e) {
    return e;
  }
  ADD_FAILURE() << "no TraceError for input: " << bytes.substr(0, 80);
  return TraceError("", 0, "");
}

std::vector<std::uint64_t> keys_of(const std::vector<TraceRequest>& requests) {
  std::vector<std::uint64_t> keys;
  for (const auto& r : requests) keys.push_back(r.key);
  return keys;
}

TEST(TraceReaderTest, ArcLineExpandsToOneAccessPerBlock) {
  auto requests = read_all("100 3 0 0\n7 1 0 1\n", TraceFormat::kArc);
  EXPECT_EQ(keys_of(requests), (std::vector<std::uint64_t>{100, 101, 102, 7}));
  for (const auto& r : requests) EXPECT_EQ(r.size, 1u);
}

TEST(TraceReaderTest, ArcZeroBlocksYieldsNothing) {
  EXPECT_EQ(keys_of(read_all("5 0 0 0\n6 1 0 1\n")), (std::vector<std::uint64_t>{6}));
}

TEST(TraceReaderTest, LineNumberFollowsRequests) {
  TraceReader reader = TraceReader::from_memory("# header\n\n1 2 0 0\n9 1 0 1", TraceFormat::kArc);
  TraceRequest r;
  EXPECT_EQ(reader.line_number(), 0u);
  ASSERT_TRUE(reader.next(r));
  EXPECT_EQ(reader.line_number(), 3u);
  ASSERT_TRUE(reader.next(r));
  EXPECT_EQ(reader.line_number(), 3u);
  ASSERT_TRUE(reader.next(r));
  EXPECT_EQ(r.key, 9u);
  EXPECT_EQ(reader.line_number(), 4u);  // last line has no newline
  EXPECT_FALSE(reader.next(r));
}

TEST(TraceReaderTest, KeySizeInternsKeysAndTrims) {
  TraceReader reader = TraceReader::from_memory(
      "# comment\r\n a , 10\r\nb,20\n\na,11\nc d,0\n", TraceFormat::kKeySize);
  EXPECT_EQ(reader.format(), TraceFormat::kKeySize);
  std::vector<TraceRequest> got;
  TraceRequest r;
  while (reader.next(r)) got.push_back(r);
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0].key, 0u);
  EXPECT_EQ(got[0].size, 10u);
  EXPECT_EQ(got[1].key, 1u);
  EXPECT_EQ(got[1].size, 20u);
  EXPECT_EQ(got[2].key, 0u);  // "a" again
  EXPECT_EQ(got[2].size, 11u);
  EXPECT_EQ(got[3].key, 2u);  // "c d": inner blanks are part of the key
  EXPECT_EQ(got[3].size, 0u);
  EXPECT_EQ(reader.distinct_keys(), 3u);
}

TEST(TraceReaderTest, AutoDetectsFormatFromFirstDataLine) {
  EXPECT_EQ(TraceReader::from_memory("# x\nk,1\n").format(), TraceFormat::kKeySize);
  EXPECT_EQ(TraceReader::from_memory("\n1 1 0 0\n").format(), TraceFormat::kArc);
  EXPECT_EQ(TraceReader::from_memory(zstd_compress("k,1\n")).format(), TraceFormat::kKeySize);
  // The line read for detection is not lost.
  EXPECT_EQ(keys_of(read_all("# x\n4 2 0 0\n")), (std::vector<std::uint64_t>{4, 5}));
}

TEST(TraceReaderTest, EmptyInputIsAnEmptyTrace) {
  EXPECT_TRUE(read_all("").empty());
  EXPECT_TRUE(read_all("\n# only a comment\n").empty());
  EXPECT_TRUE(read_all(zstd_compress("")).empty());
  EXPECT_EQ(TraceReader::from_memory("").format(), TraceFormat::kArc);
}

TEST(TraceReaderTest, ZstdAndPlainGiveTheSameRequestsAcrossBufferBoundaries) {
  // ~3 MB of text: crosses many 64 KiB read chunks and zstd output windows.
  std::string text;
  for (std::uint64_t i = 0; i < 200000; ++i) {
    text += std::to_string(i * 7919 % 100003) + " " + std::to_string(1 + i % 3) + " 0 " +
            std::to_string(i) + "\n";
  }
  auto plain = read_all(text);
  auto compressed = read_all(zstd_compress(text));
  ASSERT_EQ(plain.size(), 399999u);  // 1+2+3 blocks per 3 lines, 66,666 times, then 1+2
  EXPECT_EQ(keys_of(plain), keys_of(compressed));
}

TEST(TraceReaderTest, ConcatenatedZstdFramesAreOneStream) {
  std::string bytes = zstd_compress("1 1 0 0\n2 1 0 1\n") + zstd_compress("3 1 0 2\n");
  EXPECT_EQ(keys_of(read_all(bytes)), (std::vector<std::uint64_t>{1, 2, 3}));
}

TEST(TraceReaderTest, TruncatedZstdIsATypedError) {
  std::string bytes = zstd_compress(std::string(10000, '\n') + "1 1 0 0\n", 19);
  bytes.resize(bytes.size() - 3);
  TraceError e = error_of(bytes);
  EXPECT_EQ(e.line, 0u);
  EXPECT_NE(e.reason.find("zstd"), std::string::npos) << e.what();
}

TEST(TraceReaderTest, CorruptZstdIsATypedError) {
  std::string bytes = zstd_compress("1 1 0 0\n2 1 0 1\n");
  for (std::size_t i = 4; i < bytes.size(); ++i) bytes[i] = static_cast<char>(0xA5 ^ i);
  TraceError e = error_of(bytes);
  EXPECT_NE(e.reason.find("zstd"), std::string::npos) << e.what();
}

struct BadLine {
  const char* input;
  TraceFormat format;
  std::uint64_t line;
  const char* reason_contains;
};

TEST(TraceReaderTest, MalformedLinesNameTheLine) {
  const BadLine cases[] = {
      {"1 1 0 0\nx 1 0 0\n", TraceFormat::kArc, 2, "start_block is not"},
      {"1 1 0 0\n\n1 -1 0 0\n", TraceFormat::kArc, 3, "n_blocks is not"},
      {"1 1 0\n", TraceFormat::kArc, 1, "expected 4 fields"},
      {"1 1 0 0 9\n", TraceFormat::kArc, 1, "got more"},
      {"18446744073709551616 1 0 0\n", TraceFormat::kArc, 1, "start_block is not"},
      {"18446744073709551615 2 0 0\n", TraceFormat::kArc, 1, "overflows"},
      {"1 99999999 0 0\n", TraceFormat::kArc, 1, "exceeds the limit"},
      {"a,1\nb\n", TraceFormat::kKeySize, 2, "no comma"},
      {"a,1\n ,5\n", TraceFormat::kKeySize, 2, "empty key"},
      {"a,1\nb,2\nc,x\n", TraceFormat::kKeySize, 3, "size is not"},
      {"a,1,2\n", TraceFormat::kKeySize, 1, "size is not"},
      {"a,\n", TraceFormat::kAuto, 1, "size is not"},
      {"1 1 0 0\na,1\n", TraceFormat::kAuto, 2, "expected 4 fields"},
  };
  for (const auto& c : cases) {
    TraceError e = error_of(c.input, c.format);
    EXPECT_EQ(e.line, c.line) << c.input << " -> " << e.what();
    EXPECT_NE(e.reason.find(c.reason_contains), std::string::npos) << c.input << " -> " << e.what();
    EXPECT_EQ(e.source, "t.trace");
    EXPECT_NE(std::string(e.what()).find("t.trace:" + std::to_string(c.line) + ": "),
              std::string::npos)
        << e.what();
  }
}

TEST(TraceReaderTest, OverlongLineIsRejectedNotBuffered) {
  std::string text = "1 1 0 0\n" + std::string(kMaxTraceLineBytes + 1, '7');
  TraceError e = error_of(text);
  EXPECT_EQ(e.line, 2u);
  EXPECT_NE(e.reason.find("longer than"), std::string::npos);
}

TEST(TraceReaderTest, BinaryGarbageIsATypedError) {
  std::string garbage("\x01\x02\x00\xff 1 0 0\n", 11);
  TraceError e = error_of(garbage, TraceFormat::kArc);
  EXPECT_EQ(e.line, 1u);
}

TEST(TraceReaderTest, MissingFileIsATypedError) {
  try {
    TraceReader::open_file("/nonexistent/dir/trace.lis");
    FAIL() << "expected TraceError";
  } catch (const TraceError& e) {
    EXPECT_EQ(e.line, 0u);
    EXPECT_EQ(e.source, "/nonexistent/dir/trace.lis");
    EXPECT_NE(e.reason.find("cannot open"), std::string::npos);
  }
}

TEST(TraceReaderTest, ReadsAFileFromDisk) {
  auto path = std::filesystem::path(::testing::TempDir()) / "pagekeeper_trace_reader_test.zst";
  {
    std::ofstream out(path, std::ios::binary);
    out << zstd_compress("x,5\ny,6\nx,5\n");
  }
  TraceReader reader = TraceReader::open_file(path.string());
  EXPECT_EQ(reader.format(), TraceFormat::kKeySize);
  TraceRequest r;
  std::uint64_t total = 0;
  while (reader.next(r)) total += r.size;
  EXPECT_EQ(total, 16u);
  std::filesystem::remove(path);
}

TEST(TraceReaderTest, FormatNamesRoundTrip) {
  for (TraceFormat f : {TraceFormat::kAuto, TraceFormat::kArc, TraceFormat::kKeySize}) {
    EXPECT_EQ(parse_trace_format(trace_format_name(f)), f);
  }
  EXPECT_THROW(parse_trace_format("csv"), std::invalid_argument);
}

// The bundled OLTP trace, streamed from its zstd file: the counts its README states.
TEST(TraceReaderTest, OltpTraceHasTheDocumentedShape) {
  const std::string path = testing_support::bundled_trace_path("OLTP.lis.zst");
  ASSERT_TRUE(std::filesystem::exists(path)) << path << " is missing from the repository";
  TraceReader reader = TraceReader::open_file(path);
  EXPECT_EQ(reader.format(), TraceFormat::kArc);
  std::unordered_set<std::uint64_t> keys;
  std::uint64_t requests = 0;
  TraceRequest r;
  while (reader.next(r)) {
    ++requests;
    keys.insert(r.key);
  }
  EXPECT_EQ(requests, 914145u);
  EXPECT_EQ(keys.size(), 186880u);
}

}  // namespace
}  // namespace pagekeeper
