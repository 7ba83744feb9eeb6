// LexicalEmbedder: signed feature hashing of words, word bigrams and character n-grams.
// See include/pagekeeper/lexical_embedder.hpp for the contract. This file is compiled with
// -ffp-contract=off (embedding.cmake) so no compiler may fuse a multiply and an add and
// change the last bit of a result on one platform but not on another.

#include "pagekeeper/lexical_embedder.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

#include <xxhash.h>

namespace pagekeeper {
namespace {

// One seed per feature family, so the word "the" and the character 3-gram "the" are
// different features. Fixed forever: changing one changes every vector (and would need a
// new model name).
constexpr std::uint64_t kUnigramSeed = 0x9e3779b97f4a7c15ULL;
constexpr std::uint64_t kBigramSeed = 0xc2b2ae3d27d4eb4fULL;
constexpr std::uint64_t kCharGramSeed = 0x165667b19e3779f9ULL;

// Per-family weights. A word of L characters yields about 3L character n-grams, so they get
// a smaller weight to keep whole words the strongest signal; bigrams reward shared phrasing.
constexpr float kUnigramWeight = 1.0f;
constexpr float kBigramWeight = 0.7f;
constexpr float kCharGramWeight = 0.25f;

constexpr std::size_t kMinCharGram = 3;
constexpr std::size_t kMaxCharGram = 5;

struct Feature {
  std::uint64_t hash;
  std::uint32_t family;  // index into kFamilyWeights
  bool operator<(const Feature& o) const {
    return hash != o.hash ? hash < o.hash : family < o.family;
  }
  bool operator==(const Feature& o) const { return hash == o.hash && family == o.family; }
};
constexpr float kFamilyWeights[] = {kUnigramWeight, kBigramWeight, kCharGramWeight};

bool is_separator(unsigned char c) {
  if (c >= 0x80) return false;  // part of a UTF-8 sequence: kept inside words
  const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  return !alnum;
}

// Lowercases ASCII into `normalized` and sets `words` to views of its words.
void split_words(std::string_view text, std::string& normalized, std::vector<std::string_view>& words) {
  normalized.assign(text);
  for (char& ch : normalized) {
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
  }
  words.clear();
  const std::string_view all(normalized);
  std::size_t i = 0;
  while (i < all.size()) {
    while (i < all.size() && is_separator(static_cast<unsigned char>(all[i]))) ++i;
    const std::size_t start = i;
    while (i < all.size() && !is_separator(static_cast<unsigned char>(all[i]))) ++i;
    if (i > start) words.push_back(all.substr(start, i - start));
  }
}

void add_char_grams(std::string_view word, std::string& bounded, std::vector<std::size_t>& starts,
                    std::vector<Feature>& out) {
  bounded.clear();
  bounded.push_back('<');
  bounded.append(word);
  bounded.push_back('>');
  // Offsets where a code point begins (a byte that is not 10xxxxxx), plus the end.
  starts.clear();
  for (std::size_t i = 0; i < bounded.size(); ++i) {
    if ((static_cast<unsigned char>(bounded[i]) & 0xC0) != 0x80) starts.push_back(i);
  }
  const std::size_t code_points = starts.size();
  starts.push_back(bounded.size());
  for (std::size_t n = kMinCharGram; n <= kMaxCharGram && n <= code_points; ++n) {
    for (std::size_t k = 0; k + n <= code_points; ++k) {
      const std::size_t begin = starts[k];
      const std::size_t len = starts[k + n] - begin;
      out.push_back({XXH3_64bits_withSeed(bounded.data() + begin, len, kCharGramSeed), 2});
    }
  }
}

// The working buffers of one embed_into() call, kept per thread and reused: a text then
// costs no allocation, and the buffers stay in this core's cache from one text to the next
// whatever the caller does in between (the cache's own work between two misses would
// otherwise hand the next text different, cold heap blocks).
struct Scratch {
  std::string normalized;
  std::vector<std::string_view> words;
  std::vector<Feature> features;
  std::string gram;
  std::vector<std::size_t> starts;
  std::vector<double> acc;

  // A very long text leaves very large buffers; they are not kept for the next one.
  void release_if_large() {
    constexpr std::size_t kKeepFeatures = std::size_t{1} << 16;
    if (features.capacity() > kKeepFeatures) *this = Scratch{};
  }
};

thread_local Scratch t_scratch;

}  // namespace

LexicalEmbedder::LexicalEmbedder(LexicalEmbedderOptions options) : options_(options) {
  if (options_.dimensions < 16) {
    throw std::invalid_argument("LexicalEmbedder: dimensions must be at least 16, got " +
                                std::to_string(options_.dimensions));
  }
  if (options_.max_batch == 0) {
    throw std::invalid_argument("LexicalEmbedder: max_batch must be at least 1");
  }
  name_ = options_.dimensions == kDefaultDimensions
              ? std::string("lexical")
              : "lexical-" + std::to_string(options_.dimensions);
}

std::vector<float> LexicalEmbedder::embed_one(std::string_view text) const {
  std::vector<float> vec(options_.dimensions);
  embed_into(text, vec);
  return vec;
}

void LexicalEmbedder::embed_into(std::string_view text, std::span<float> vec) const {
  const std::size_t dims = options_.dimensions;
  if (vec.size() != dims) {
    throw std::invalid_argument("LexicalEmbedder::embed_into: output holds " +
                                std::to_string(vec.size()) + " floats, expected " +
                                std::to_string(dims));
  }

  Scratch& buffers = t_scratch;
  struct ReleaseLarge {
    Scratch& buffers;
    ~ReleaseLarge() { buffers.release_if_large(); }
  } release_large{buffers};
  std::vector<std::string_view>& words = buffers.words;
  split_words(text, buffers.normalized, words);
  if (words.empty()) {  // documented: no words -> the zero vector
    std::fill(vec.begin(), vec.end(), 0.0f);
    return;
  }

  std::vector<Feature>& features = buffers.features;
  features.clear();
  features.reserve(words.size() * 12);
  std::string& scratch = buffers.gram;
  std::vector<std::size_t>& starts = buffers.starts;
  for (std::size_t w = 0; w < words.size(); ++w) {
    const std::string_view word = words[w];
    features.push_back({XXH3_64bits_withSeed(word.data(), word.size(), kUnigramSeed), 0});
    if (w + 1 < words.size()) {
      scratch.assign(word);
      scratch.push_back(' ');  // never inside a word, so "ab c" and "a bc" differ
      scratch.append(words[w + 1]);
      features.push_back({XXH3_64bits_withSeed(scratch.data(), scratch.size(), kBigramSeed), 1});
    }
    add_char_grams(word, scratch, starts, features);
  }

  // Count term frequencies; the sort also fixes the accumulation order.
  std::sort(features.begin(), features.end());
  std::vector<double>& acc = buffers.acc;
  acc.assign(dims, 0.0);
  for (std::size_t i = 0; i < features.size();) {
    std::size_t j = i + 1;
    while (j < features.size() && features[j] == features[i]) ++j;
    const auto tf = static_cast<double>(j - i);
    const float weight =
        kFamilyWeights[features[i].family] * static_cast<float>(1.0 + std::log(tf));
    const std::uint64_t h = features[i].hash;
    const std::size_t index = static_cast<std::size_t>(h % dims);
    const double signed_weight = (h >> 63) != 0 ? -static_cast<double>(weight)
                                                 : static_cast<double>(weight);
    acc[index] += signed_weight;
    i = j;
  }

  double sum_squares = 0.0;
  for (const double v : acc) sum_squares += v * v;
  if (sum_squares == 0.0) {  // every feature cancelled out: still a defined value
    std::fill(vec.begin(), vec.end(), 0.0f);
    return;
  }
  const double norm = std::sqrt(sum_squares);
  for (std::size_t i = 0; i < dims; ++i) vec[i] = static_cast<float>(acc[i] / norm);
}

std::string LexicalEmbedder::identity() const {
  return "lexical/v" + std::to_string(kAlgorithmVersion) + "/" + std::to_string(options_.dimensions);
}

std::vector<std::vector<float>> LexicalEmbedder::embed(std::span<const std::string_view> texts) {
  std::vector<std::vector<float>> out;
  out.reserve(texts.size());
  for (const std::string_view text : texts) out.push_back(embed_one(text));
  return out;
}

std::vector<EmbeddingVector> LexicalEmbedder::embed_compact(std::span<const std::string_view> texts,
                                                            VectorSlab& storage) {
  std::vector<EmbeddingVector> out;
  out.reserve(texts.size());
  const bool in_slab = storage.dimensions() == options_.dimensions;
  for (const std::string_view text : texts) {
    auto fill = [&](std::span<float> vec) { embed_into(text, vec); };
    out.push_back(in_slab ? storage.make(fill) : EmbeddingVector::filled(options_.dimensions, fill));
  }
  return out;
}

}  // namespace pagekeeper
