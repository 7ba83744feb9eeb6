// pagekeeper/embedder.hpp
//
// Embedder: something that turns texts into fixed-dimension float32 vectors. Every backend
// (the built-in lexical embedder, llama.cpp GGUF models, remote OpenAI-compatible servers)
// implements this one interface, and every caller reaches embedders only through the
// EmbeddingService, which caches their results (there is no second cache).
//
// Thread safety: implementations must allow concurrent calls of every method from any
// thread (a backend that cannot run concurrently serializes internally).

#pragma once

#include <cstddef>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "pagekeeper/detail/vector_slab.hpp"
#include "pagekeeper/embedding_vector.hpp"
#include "pagekeeper/errors.hpp"

namespace pagekeeper {

// An embedder could not produce vectors. `what()` names the backend and the cause.
class EmbedderError : public Error {
 public:
  using Error::Error;
};

// The input was refused before reaching the backend (empty text, too many tokens, ...).
// Distinct from EmbedderError so a server can answer 4xx rather than 5xx.
class EmbedderInputError : public EmbedderError {
 public:
  using EmbedderError::EmbedderError;
};

class Embedder {
 public:
  virtual ~Embedder() = default;

  // Canonical model name, used in cache keys (aliases resolve to it before keying).
  virtual std::string name() const = 0;
  // Length of every vector this embedder returns.
  virtual std::size_t dimensions() const = 0;
  // The most texts one embed() call accepts; callers split larger batches.
  virtual std::size_t max_batch() const = 0;
  // What makes this embedder's vectors what they are beyond its name (a model file's digest,
  // a remote endpoint and model, an algorithm version). The tiers below memory, which a
  // fleet shares, key vectors by it with the name and the text, so another model under the
  // same name never reads these vectors. Empty (the default): this embedder's vectors are
  // never written below memory nor read from there. Cheap after the first call; thread-safe.
  virtual std::string identity() const { return {}; }

  // Embeds `texts` (at most max_batch()), returning exactly texts.size() vectors of
  // dimensions() floats each, in input order. The texts are views: they are valid for the
  // duration of the call only, and an embedder never keeps one (so callers hand over texts
  // without copying them). Throws EmbedderInputError for input it refuses and EmbedderError
  // for any other failure; never aborts the process. This is the one embed method every
  // backend must implement.
  virtual std::vector<std::vector<float>> embed(std::span<const std::string_view> texts) = 0;

  // The same for owned strings: views them (the text bytes are not copied) and calls the
  // overload above, with its guarantees. Classes that override embed() re-export this one
  // with `using Embedder::embed;`.
  std::vector<std::vector<float>> embed(std::span<const std::string> texts) {
    const std::vector<std::string_view> views(texts.begin(), texts.end());
    return embed(std::span<const std::string_view>(views));
  }

  // The same vectors as embed(texts), with the same errors and guarantees, each in its own
  // compact EmbeddingVector (the form the embedding cache stores), built in `storage` (the
  // cache's slab for dimensions() floats; a vector of another length, which the caller then
  // rejects, is built on the heap). The default copies embed()'s output; a backend that can
  // write each vector straight into its final storage overrides it (the lexical embedder
  // does), saving one allocation and one copy per text.
  virtual std::vector<EmbeddingVector> embed_compact(std::span<const std::string_view> texts,
                                                     VectorSlab& storage) {
    std::vector<std::vector<float>> produced = embed(texts);
    std::vector<EmbeddingVector> out;
    out.reserve(produced.size());
    for (const std::vector<float>& vector : produced) {
      out.push_back(vector.size() == storage.dimensions() ? storage.copy(vector)
                                                          : EmbeddingVector(std::span<const float>(vector)));
    }
    return out;
  }
};

}  // namespace pagekeeper
