#include "pagekeeper/lexical_embedder.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <xxhash.h>

namespace pagekeeper {
namespace {

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

double norm(const std::vector<float>& a) { return std::sqrt(dot(a, a)); }

// XXH3 of the raw float bytes: one number that changes if any bit of any value changes.
std::uint64_t fingerprint(const std::vector<float>& v) {
  return XXH3_64bits(v.data(), v.size() * sizeof(float));
}

constexpr const char* kKnownText =
    "The quick brown fox jumps over the lazy dog; the dog sleeps. Caf\xc3\xa9 na\xc3\xafve!";

// embed_compact() writes each vector straight into its EmbeddingVector: the same bits as
// embed(), including the zero vector of a text without words (whose storage is written, not
// left uninitialized).
TEST(LexicalEmbedder, CompactVectorsEqualEmbedBitForBit) {
  LexicalEmbedder embedder;
  const std::vector<std::string> texts = {kKnownText, "", " ;; ", "a", "pagekeeper keeps pages"};
  const std::vector<std::string_view> views(texts.begin(), texts.end());
  const auto expected = embedder.embed(texts);
  VectorSlab slab(384);
  const auto compact = embedder.embed_compact(views, slab);
  ASSERT_EQ(compact.size(), texts.size());
  for (std::size_t i = 0; i < texts.size(); ++i) {
    ASSERT_EQ(compact[i].size(), 384u) << i;
    EXPECT_EQ(compact[i].to_vector(), expected[i]) << i;
    EXPECT_EQ(fingerprint(compact[i].to_vector()), fingerprint(expected[i])) << i;
  }
  std::vector<float> wrong(383);
  EXPECT_THROW(embedder.embed_into("a", wrong), std::invalid_argument);
}

TEST(LexicalEmbedder, NameDimensionsAndUnitNorm) {
  LexicalEmbedder embedder;
  EXPECT_EQ(embedder.name(), "lexical");
  EXPECT_EQ(embedder.dimensions(), 384u);
  const std::vector<std::string> texts = {kKnownText, "a", "pagekeeper keeps pages"};
  const auto vectors = embedder.embed(texts);
  ASSERT_EQ(vectors.size(), texts.size());
  for (const auto& v : vectors) {
    ASSERT_EQ(v.size(), 384u);
    EXPECT_NEAR(norm(v), 1.0, 1e-6);
  }
}

// Fixed expected values: these were produced once by this implementation and must never
// change (a change would silently invalidate every stored lexical vector and every index
// built from them). If an intended algorithm change breaks this test, the model must get
// a new name.
TEST(LexicalEmbedder, KnownTextGivesFixedVector) {
  LexicalEmbedder embedder;
  const std::vector<float> v = embedder.embed_one(kKnownText);
  EXPECT_EQ(fingerprint(v), 0x0187ec2eab031d70ULL) << "the lexical embedding algorithm changed";
  // A few values spelled out (bit-exact: %.9g round-trips a float).
  EXPECT_EQ(v[0], 0.0f);
  EXPECT_EQ(v[1], 0.0446598902f);
  EXPECT_EQ(v[4], -0.0446598902f);
  EXPECT_EQ(v[8], 0.0893197805f);
  EXPECT_EQ(v[28], 0.125047684f);
  EXPECT_EQ(v[322], 0.0756157637f);
  EXPECT_EQ(v[334], -0.0937237963f);
}

// The known-text check on a long text (25 KB): many features per vector index, most of
// them repeated (term frequencies above 1, so the logarithm matters), in two dimension
// counts. A faster way to order or accumulate the features must keep these bits.
std::string long_known_text() {
  static const char* const kWords[] = {"cache", "vector", "model", "paging", "memory", "budget", "text",
                                       "batch", "embedding", "pressure", "the", "of", "and", "query",
                                       "index", "lexical", "token", "entry", "na\xc3\xafve", "x"};
  std::string text;
  std::uint32_t state = 12345;
  for (int i = 0; i < 4000; ++i) {
    state = state * 1664525u + 1013904223u;
    text += kWords[(state >> 16) % 20];
    text += (state & 7) == 0 ? ". " : " ";
    if ((state & 63) == 1) text += std::to_string(state % 1000) + " ";
  }
  return text;
}

TEST(LexicalEmbedder, LongKnownTextGivesFixedVectors) {
  const std::string text = long_known_text();
  ASSERT_EQ(text.size(), 25229u);
  EXPECT_EQ(fingerprint(LexicalEmbedder().embed_one(text)), 0x51d203a3fbdc1145ULL);
  EXPECT_EQ(fingerprint(LexicalEmbedder(LexicalEmbedderOptions{.dimensions = 17}).embed_one(text)),
            0xff1ff2b9d9e4ae0aULL);
}

TEST(LexicalEmbedder, DeterministicAcrossCallsInstancesAndBatching) {
  LexicalEmbedder a;
  LexicalEmbedder b;
  const std::vector<std::string> texts = {kKnownText, "second text", kKnownText};
  const auto batch = a.embed(texts);
  EXPECT_EQ(batch[0], batch[2]);
  EXPECT_EQ(batch[0], b.embed_one(kKnownText));
  EXPECT_EQ(batch[1], b.embed_one("second text"));
}

// The embedder reuses per-thread working buffers between texts: whatever a thread embedded
// before (a huge text, a text without words, another dimension count) must not change the
// next vector by a bit.
TEST(LexicalEmbedder, PerThreadBuffersCarryNothingFromOneTextToTheNext) {
  LexicalEmbedder embedder;
  std::vector<float> fresh;
  std::thread([&] { fresh = LexicalEmbedder().embed_one(kKnownText); }).join();

  std::string huge;
  for (int i = 0; huge.size() < 400'000; ++i) huge += "word" + std::to_string(i) + " ";
  const std::vector<float> huge_vector = embedder.embed_one(huge);  // beyond what is kept
  EXPECT_NEAR(norm(huge_vector), 1.0, 1e-5);
  EXPECT_EQ(embedder.embed_one(kKnownText), fresh);
  EXPECT_EQ(embedder.embed_one("  ... !!! "), std::vector<float>(384, 0.0f));
  EXPECT_EQ(embedder.embed_one(kKnownText), fresh);
  EXPECT_EQ(LexicalEmbedder(LexicalEmbedderOptions{.dimensions = 1000}).embed_one("long tail").size(), 1000u);
  EXPECT_EQ(LexicalEmbedder(LexicalEmbedderOptions{.dimensions = 16}).embed_one("short").size(), 16u);
  EXPECT_EQ(embedder.embed_one(kKnownText), fresh);
  EXPECT_EQ(embedder.embed_one(huge), huge_vector);
}

TEST(LexicalEmbedder, NearDuplicatesAreMoreSimilarThanUnrelatedTexts) {
  LexicalEmbedder embedder;
  const auto base = embedder.embed_one("The embedding cache returns vectors without calling the model");
  const auto near = embedder.embed_one("the embedding cache returned vectors without calling a model!");
  const auto typo = embedder.embed_one("The embeding cashe returns vectors without caling the model");
  const auto unrelated = embedder.embed_one("Fresh basil and tomatoes make a simple summer salad");
  const double near_sim = dot(base, near);
  const double typo_sim = dot(base, typo);
  const double unrelated_sim = dot(base, unrelated);
  EXPECT_GT(near_sim, 0.7);
  EXPECT_GT(typo_sim, 0.4);
  EXPECT_LT(std::abs(unrelated_sim), 0.2);
  EXPECT_GT(near_sim, unrelated_sim + 0.5);
  EXPECT_GT(typo_sim, unrelated_sim + 0.3);
}

TEST(LexicalEmbedder, NormalizationLowercasesAsciiAndSplitsOnPunctuation) {
  LexicalEmbedder embedder;
  EXPECT_EQ(embedder.embed_one("Hello, WORLD"), embedder.embed_one("hello world"));
  EXPECT_EQ(embedder.embed_one("  hello\t\n world  "), embedder.embed_one("hello world"));
  EXPECT_NE(embedder.embed_one("hello world"), embedder.embed_one("world hello"));  // bigrams
  // Non-ASCII bytes stay inside words and are not case-folded.
  EXPECT_NE(embedder.embed_one("caf\xc3\xa9"), embedder.embed_one("cafe"));
  EXPECT_NE(embedder.embed_one("\xc3\x89t\xc3\xa9"), embedder.embed_one("\xc3\xa9t\xc3\xa9"));
}

TEST(LexicalEmbedder, TextWithoutWordsIsTheZeroVector) {
  LexicalEmbedder embedder;
  for (const char* text : {"", " ", "...!?", "\t\n"}) {
    const auto v = embedder.embed_one(text);
    ASSERT_EQ(v.size(), 384u);
    EXPECT_EQ(norm(v), 0.0) << "'" << text << "'";
  }
}

TEST(LexicalEmbedder, ArbitraryBytesNeverBreakIt) {
  LexicalEmbedder embedder;
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
  const std::string invalid_utf8 = "\x80\x80\xff abc \xc3";
  for (const std::string& text : {bytes, invalid_utf8, std::string(100000, 'x')}) {
    const auto v = embedder.embed_one(text);
    ASSERT_EQ(v.size(), 384u);
    for (float x : v) ASSERT_TRUE(std::isfinite(x));
    EXPECT_NEAR(norm(v), 1.0, 1e-6);
  }
}

TEST(LexicalEmbedder, OtherDimensionsGetTheirOwnName) {
  LexicalEmbedder small(LexicalEmbedderOptions{.dimensions = 64, .max_batch = 8});
  EXPECT_EQ(small.name(), "lexical-64");
  EXPECT_EQ(small.max_batch(), 8u);
  EXPECT_EQ(small.embed_one("hello").size(), 64u);
  EXPECT_THROW(LexicalEmbedder(LexicalEmbedderOptions{.dimensions = 8}), std::invalid_argument);
  EXPECT_THROW(LexicalEmbedder(LexicalEmbedderOptions{.max_batch = 0}), std::invalid_argument);
}

}  // namespace
}  // namespace pagekeeper
