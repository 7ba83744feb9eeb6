// pagekeeper/lexical_embedder.hpp
//
// LexicalEmbedder: the built-in default embedder (model name `lexical`). It needs no model
// file: a text becomes a vector by signed feature hashing ("the hashing trick") of
//   - word unigrams,
//   - word bigrams (adjacent words),
//   - character n-grams (3, 4 and 5 code points) of each word wrapped in boundary markers
//     '<' and '>', so "cache" contributes "<ca", "cac", ..., "he>", "<cac", ...,
// each feature weighted by (1 + ln tf) times a per-family weight, hashed with XXH3-64 (fixed
// seeds) to one dimension and a sign, and the sum L2-normalized.
//
// What the similarity means: this is LEXICAL similarity, not semantic. Texts that share
// words, word pairs or word fragments (typos, inflections) score high; paraphrases with
// different words score low. Use a llama.cpp or remote model for meaning.
//
// Normalization: ASCII letters are lowercased; every other byte >= 0x80 is kept as is, so
// UTF-8 text passes through intact (non-ASCII letters are not case-folded). Words are split
// on ASCII whitespace and ASCII punctuation (every ASCII byte that is not a letter or a
// digit). Character n-grams count UTF-8 code points, never splitting a multi-byte character.
//
// Empty input: a text with no word at all (empty, or only whitespace and punctuation) maps
// to the all-zero vector. This is a defined, deterministic value, never an error: its cosine
// with anything is undefined (0/0), so callers that rank by cosine should skip zero vectors.
//
// Determinism: the output depends only on the text bytes and the options: XXH3 is
// platform-independent, features are accumulated in a fixed (sorted) order in double
// precision and rounded to float once, and the source is compiled without floating-point
// contraction. The only libm call is log() on small integers; its result is rounded to float
// before use.
//
// Thread safety: immutable after construction; every method may be called concurrently.

#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pagekeeper/embedder.hpp"

namespace pagekeeper {

struct LexicalEmbedderOptions {
  // Vector length. Must be at least 16 (fewer dimensions collide too much to be useful).
  std::size_t dimensions = 384;
  // Texts per embed() call; the service splits larger batches.
  std::size_t max_batch = 1024;
};

class LexicalEmbedder final : public Embedder {
 public:
  static constexpr std::size_t kDefaultDimensions = 384;
  // Bumped whenever a change to the algorithm changes any vector's bits, so vectors kept in
  // lower tiers by an older build are not read as this one's.
  static constexpr int kAlgorithmVersion = 1;

  // Throws std::invalid_argument naming the field when an option is out of range.
  explicit LexicalEmbedder(LexicalEmbedderOptions options = {});

  // "lexical" at the default 384 dimensions, "lexical-<N>" otherwise: vectors of different
  // lengths are different models and must not share cache slots.
  std::string name() const override { return name_; }
  std::size_t dimensions() const override { return options_.dimensions; }
  std::size_t max_batch() const override { return options_.max_batch; }
  // "lexical/v<kAlgorithmVersion>/<dimensions>".
  std::string identity() const override;

  // Never throws for any input bytes (besides std::bad_alloc); accepts any number of texts.
  using Embedder::embed;
  std::vector<std::vector<float>> embed(std::span<const std::string_view> texts) override;
  // The same vectors, each computed straight into its chunk of `storage` (no second copy).
  std::vector<EmbeddingVector> embed_compact(std::span<const std::string_view> texts,
                                             VectorSlab& storage) override;

  // One text, the same result as embed() gives for it.
  std::vector<float> embed_one(std::string_view text) const;
  // The same, written into `out`, which must hold exactly dimensions() floats (every one of
  // them is written). Throws std::invalid_argument for another size.
  void embed_into(std::string_view text, std::span<float> out) const;

 private:
  LexicalEmbedderOptions options_;
  std::string name_;
};

}  // namespace pagekeeper
