// pagekeeper/llama_embedder.hpp
//
// LlamaEmbedder: the `llama.cpp` embedder. Runs a GGUF text-embedding model (bert, nomic-bert,
// jina-bert, modern-bert and the other embedding architectures llama.cpp supports) through
// llama.cpp and returns one unit-L2-norm float32 vector per text.
//
// How a call runs: every text is validated (not empty, valid UTF-8), tokenized with the
// model's own tokenizer ([CLS] ... [SEP] for WordPiece models), checked against the model's
// limit (LlamaEmbedderConfig::overflow decides between truncating and refusing), then packed,
// several texts per llama_encode call (one sequence id per text), into micro-batches of at most
// `pack_tokens` tokens (a longer text goes alone, up to `batch_tokens`). Pooling is the model file's own (<arch>.pooling_type) unless the
// configuration overrides it; the pooled vectors are L2-normalized, so cosine similarity is a
// dot product. Bidirectional models (bert family) run through llama_encode; models with
// causal attention (e.g. last-token pooled decoders) through llama_decode.
//
// Contexts: a llama.cpp context is not thread-safe. The embedder owns `contexts` of them
// (default 1), each with its own token batch; an embed() call takes a free context for its
// whole duration and waits when all are busy. So `contexts` is the number of embed() calls
// that run at once, and each uses `threads` threads.
//
// LoRA adapters (for the adapter pager): set_adapters() replaces the adapters applied to every
// subsequent embed() call; each context applies the new set before its next encode. A context
// keeps the adapters it last applied alive until then.
//
// Thread safety: every public method may be called concurrently from any thread.

#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "pagekeeper/detail/mutex.hpp"
#include "pagekeeper/embedder.hpp"

namespace pagekeeper {

// Types of the internal llama.cpp runtime (src/llama), named here only.
class LlamaModel;
class LlamaLoraAdapter;
class LlamaModelPool;
class LlamaModelLease;

struct LlamaEmbedderConfig {
  // What to do with a text that has more tokens than the model takes (the smaller of its
  // trained context and batch_tokens, counting [CLS] and [SEP]).
  enum class Overflow {
    kTruncate,  // keep the first tokens and the closing separator (sentence-transformers' way)
    kRefuse,    // throw EmbedderInputError naming the text and its token count
  };
  // How token vectors become one vector. kModel takes the model file's pooling type.
  enum class Pooling { kModel, kMean, kCls, kLast };

  std::filesystem::path model_path;
  // Canonical model name (the cache key namespace). Empty: the file name without ".gguf".
  std::string name;
  // Threads per context for llama.cpp's compute; 0 = half the hardware threads (at least 1).
  // llama.cpp's threads meet at a spinning barrier after every operation, so a thread count
  // that oversubscribes a busy machine is catastrophically slow (measured 60x slower with 2
  // threads on 2 loaded cores, docs/PERFORMANCE.md); scale with `contexts` instead.
  int threads = 0;
  // Texts per embed() call and per llama_encode (llama.cpp sequences). 1..256; rounded up to a
  // power of two for llama.cpp's n_seq_max.
  std::size_t max_batch = 32;
  // Tokens per llama_encode (llama.cpp's n_ctx = n_batch = n_ubatch). Rounded up to a multiple
  // of 256 (llama.cpp pads the context to 256 and the three must agree). Larger values let
  // more texts share one encode at the price of a larger attention buffer.
  std::uint32_t batch_tokens = 512;
  // Most tokens packed into one llama_encode when it carries several texts (a text longer than
  // this is encoded alone). Texts in one encode attend through one masked n x n attention, so
  // its cost grows with the square of the packed tokens: on CPU, packing beyond ~128 tokens
  // costs more per text than it saves in per-call overhead (see docs/PERFORMANCE.md).
  std::uint32_t pack_tokens = 128;
  // Independent llama.cpp contexts (concurrent embed() calls). At least 1.
  std::size_t contexts = 1;
  Overflow overflow = Overflow::kTruncate;
  Pooling pooling = Pooling::kModel;
};

class LlamaEmbedder : public Embedder {
 public:
  // Loads the model at config.model_path (validated first; see LlamaModel::load) and creates
  // the contexts. Throws EmbedderError naming the file and the problem (missing, truncated,
  // corrupt, not an embedding model, no pooling, bad configuration), including "llama.cpp
  // backend not available in this build" when built without llama.cpp.
  static std::unique_ptr<LlamaEmbedder> create(const LlamaEmbedderConfig& config);
  // Same, over a model that is already loaded (e.g. held by a model pool, which then counts
  // this embedder as a user for as long as it lives).
  static std::unique_ptr<LlamaEmbedder> create(std::shared_ptr<LlamaModel> model,
                                               const LlamaEmbedderConfig& config);
  // Same, with the model taken from a model pool (loaded once, shared, single flight): the
  // embedder keeps the lease, so the model stays pinned while the embedder lives and becomes
  // evictable when it is destroyed.
  static std::unique_ptr<LlamaEmbedder> create(LlamaModelPool& pool,
                                               const LlamaEmbedderConfig& config);
  static std::unique_ptr<LlamaEmbedder> create(std::shared_ptr<LlamaModelLease> lease,
                                               const LlamaEmbedderConfig& config);

  ~LlamaEmbedder() override;

  std::string name() const override { return name_; }
  std::size_t dimensions() const override { return dimensions_; }
  std::size_t max_batch() const override { return max_batch_; }
  // "gguf/<SHA-256 of the model file>/<pooling>/<tokens per text>": the file's digest, taken
  // on the first call (a read of the whole file), and the settings that change the vectors.
  std::string identity() const override;
  // See the file comment. Throws EmbedderInputError for a refused text (empty, invalid UTF-8,
  // too long under Overflow::kRefuse, more than max_batch() texts) and EmbedderError when
  // llama.cpp fails; a failed call has no effect on later calls.
  using Embedder::embed;
  std::vector<std::vector<float>> embed(std::span<const std::string_view> texts) override;

  // The model's tokens for `text` ([CLS]/[SEP] included when add_special), before any limit
  // is applied. Throws EmbedderInputError for invalid UTF-8.
  std::vector<std::int32_t> tokenize(std::string_view text, bool add_special) const;
  // Most tokens one text may have (special tokens included).
  std::size_t max_tokens() const noexcept { return max_tokens_; }
  const std::shared_ptr<LlamaModel>& model() const noexcept { return model_; }

  // Replaces the LoRA adapters (with their scales) applied to later embed() calls; an empty
  // list removes them. Every adapter must belong to this embedder's model (EmbedderError).
  void set_adapters(const std::vector<std::pair<std::shared_ptr<LlamaLoraAdapter>, float>>& adapters);

 private:
  struct Worker;
  struct AdapterSet;
  LlamaEmbedder(std::shared_ptr<LlamaModel> model, const LlamaEmbedderConfig& config);
  Worker& acquire();
  void release(Worker& worker);
  std::vector<std::vector<std::int32_t>> prepare(std::span<const std::string_view> texts) const;
  void run(Worker& worker, const std::vector<std::vector<std::int32_t>>& tokens,
           std::size_t first, std::size_t count, std::vector<std::vector<float>>& out);

  // Declared first so it is released last: the contexts below use the model it pins.
  std::shared_ptr<LlamaModelLease> lease_;
  std::shared_ptr<LlamaModel> model_;
  LlamaEmbedderConfig config_;
  std::string name_;
  std::size_t dimensions_ = 0;
  std::size_t max_batch_ = 0;
  std::size_t max_tokens_ = 0;
  std::uint32_t batch_tokens_ = 0;
  std::uint32_t pack_tokens_ = 0;

  // Guards free_ and adapters_; workers_ is fixed after construction. A worker is used only
  // by the thread that took it from free_.
  mutable Mutex mutex_;
  CondVar worker_freed_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<Worker*> free_ PAGEKEEPER_GUARDED_BY(mutex_);
  std::shared_ptr<const AdapterSet> adapters_ PAGEKEEPER_GUARDED_BY(mutex_);

  mutable std::once_flag identity_once_;
  mutable std::string identity_;  // written once under identity_once_
};

}  // namespace pagekeeper
