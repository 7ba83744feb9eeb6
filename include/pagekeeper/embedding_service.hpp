// pagekeeper/embedding_service.hpp
//
// EmbeddingService: the one embedding cache of a process. Every entry point (library calls,
// the server, the command-line indexer) embeds through it, so a text embedded by one is a
// hit for all the others (the original system cached only inside one request handler and
// its own indexer saw 0 hits in 64, re-embedding the same files on every pass).
//
//   - Keys: EmbeddingKey{canonical model name, SHA-256 of the exact text bytes}. The model
//     name is resolved through the ModelRegistry first, so aliases share slots.
//   - Storage: one PagedResourcePool named `embedding-cache` (256 MiB by default, size-aware
//     LRU). A value is an EmbeddingVector (float32, one chunk, no spare capacity) built in the
//     service's VectorSlab for its dimension count, so filling the cache maps memory a block
//     at a time and eviction recycles chunks without malloc; its size in the budget is
//     EmbeddingVector::memory_bytes() + sizeof(EmbeddingKey), i.e. 1632 bytes for 384
//     dimensions (the pool's own per-entry bookkeeping is not included). The slabs keep their
//     blocks for the next vectors; clear() returns to the kernel what no vector uses any more
//     (VectorSlab::trim: empty blocks, and the pages runs of free chunks cover wholly), and
//     every eviction a PressureBroker makes through resource_pool() does so in the slabs of
//     the vectors it evicted (the pool's removal listener names them).
//   - embed_batch(): one pool lookup per text; the distinct texts that are neither cached
//     nor being embedded by another request go to the embedder (each exactly once, in
//     chunks of at most max_batch()); texts another request is embedding are joined. The
//     result is in input order with this call's own accounting.
//   - Failures: an embedder error fails the call with an EmbedderError naming the model;
//     nothing of that call is cached and no in-flight slot is left behind (requests that
//     joined it get the same error; a retry embeds again). A result of the wrong count or
//     dimension, or with a non-finite number, is an EmbedderError, never a crash.
//   - A cache hit never touches the embedder: resolving a name does not load a model.
//
// Thread safety: every method may be called concurrently from any thread. The service
// holds no lock of its own around embedder calls (the pool's single-flight slots replace
// the original's global model mutex); the pool and the registry state their own rules.

#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pagekeeper/embedding_key.hpp"
#include "pagekeeper/embedding_tiers.hpp"
#include "pagekeeper/embedding_vector.hpp"
#include "pagekeeper/model_registry.hpp"
#include "pagekeeper/pool.hpp"
#include "pagekeeper/resource_pool.hpp"
#include "pagekeeper/detail/mutex.hpp"
#include "pagekeeper/detail/vector_slab.hpp"

namespace pagekeeper {

// What one embed()/embed_batch() call did. Counted per input position except `embedded`
// and `embedder_calls`: hits + misses == number of texts, and joined <= misses.
struct EmbedAccounting {
  std::size_t hits = 0;            // texts whose vector was already cached
  std::size_t misses = 0;          // texts not cached when looked up (embedded here or joined)
  std::size_t joined = 0;          // of the misses: texts another request was embedding
  std::size_t from_tiers = 0;      // of the misses: texts a tier below memory held
  std::array<std::size_t, kMaxSecondaryTiers> from_tier{};  // of those, by tier (nearest first)
  std::size_t embedded = 0;        // distinct texts this call sent to the embedder
  std::size_t embedder_calls = 0;  // Embedder::embed() calls this call made
};

struct EmbedResult {
  EmbeddingVector vector;
  std::string model;  // canonical name the vector belongs to
  EmbedAccounting accounting;
};

struct EmbedBatchResult {
  std::vector<EmbeddingVector> vectors;  // in input order
  std::string model;
  EmbedAccounting accounting;
};

struct EmbeddingServiceConfig {
  std::string pool_name = "embedding-cache";
  std::uint64_t max_bytes = std::uint64_t{256} << 20;
  // Models to serve. Null -> ModelRegistry::with_builtin_models().
  std::shared_ptr<ModelRegistry> models;
  // Passed to the pool (see PoolConfig).
  double low_watermark = 1.0;
  std::uint32_t shards = 0;
  // The pool's ghost of evicted keys, so re-embedding of texts evicted shortly before is
  // counted (PoolStats::ghost_hits) and a broker can say the cache thrashes.
  std::uint32_t ghost_max_keys = 4096;
  // The pool's miss-ratio curve sampling (off by default: it costs hits); a broker dividing
  // a global budget needs it on.
  double curve_sampling_rate = 0.0;
  // Tiers below memory (local disk, Redis), asked on a miss before the embedder; null: none.
  // Vectors of models without an identity (Embedder::identity()) bypass them.
  std::shared_ptr<TierChain> tiers{};
  // Eviction policy: W-TinyLFU keeps the vectors asked for again through an indexer's scan
  // of a large tree, which flushes an LRU cache of everything hot.
  CachePolicy policy = CachePolicy::kTinyLfu;
  // Vector storage maps its next block on a background thread while the cache fills, so
  // no request waits on the kernel for the cache's memory (VectorSlab::Options::map_ahead).
  bool map_storage_ahead = true;
};

class EmbeddingService {
 public:
  using Pool = PagedResourcePool<EmbeddingKey, EmbeddingVector, EmbeddingKeyHash>;

  // A separate service with its own pool (tests, tools). Throws std::invalid_argument for
  // an invalid pool configuration.
  explicit EmbeddingService(EmbeddingServiceConfig config = {});

  // The process-wide service, created with the default configuration on first use. Every
  // entry point of the process should embed through this one instance.
  static std::shared_ptr<EmbeddingService> process_default();
  // Creates the process-wide service with `config`. Must run before the first
  // process_default() call (a server does it at boot); otherwise throws std::logic_error,
  // since a second instance would be a second cache.
  static std::shared_ptr<EmbeddingService> init_process_default(EmbeddingServiceConfig config);

  // The vector of `text` under `model` (a canonical name, an alias or "default").
  // Throws UnknownModelError, EmbedderInputError (input the model refuses) or EmbedderError.
  EmbedResult embed(std::string_view text, std::string_view model = "default");

  // Vectors of `texts` in input order. An empty list returns an empty result (the model
  // name must still be known; nothing is loaded). Same errors as embed().
  EmbedBatchResult embed_batch(std::span<const std::string> texts,
                               std::string_view model = "default");

  // The vectors of `texts` when every one is cached in memory now (counted as hits, recency
  // refreshed), or nullopt when one is not: then nothing is loaded, no lower tier is asked,
  // no embedder runs, and nothing is counted (unless one is evicted between its check and
  // its read: the reads made then count as the pool's hits and miss). For callers that must not wait, such as
  // a server's I/O thread, which then hands the request to embed_batch() elsewhere. Throws
  // UnknownModelError. An empty list gives nullopt.
  std::optional<EmbedBatchResult> embed_batch_if_cached(std::span<const std::string> texts,
                                                        std::string_view model = "default");

  // Stores a precomputed vector for `text` under `model` (replacing a cached one). The
  // vector is trusted to come from that model; it must be non-empty and finite
  // (std::invalid_argument otherwise). Returns false when it is too large to cache.
  bool put(std::string_view text, std::string_view model, std::span<const float> vector);

  // Whether `text` is cached under `model`; counts nothing, loads nothing.
  bool contains(std::string_view text, std::string_view model = "default") const;

  // Drops every cached vector and resets the pool's counters; returns the entries dropped.
  // Then returns to the kernel the storage no vector uses any more (VectorSlab::trim;
  // vectors callers still hold keep theirs).
  std::size_t clear();
  PoolStats stats() const;

  // The pool, for inspection and direct use. Its evictions free vectors into the slabs,
  // which keep the memory for the next vectors.
  std::shared_ptr<Pool> pool() const { return pool_; }
  // The pool as a PressureBroker sees it (register this one, not pool()): the same tier,
  // name, budget and statistics, but an eviction through it (evict_at_least, or set_budget
  // lowering the budget) then trims the slabs of the vectors it evicted (VectorSlab::trim;
  // the pool's removal listener reports them), so relieving memory pressure lowers the process's
  // resident memory, not only the cache's accounting. What comes back is what the evicted
  // vectors emptied: nearly all of it in a cache that filled in order, less after churn,
  // since a page stays while any vector on it lives (docs/PERFORMANCE.md). Always the same
  // object; it keeps the pool and the storage alive.
  std::shared_ptr<ResourcePool> resource_pool() const { return tier_; }
  ModelRegistry& models() const { return *models_; }
  // The tiers below memory (null when none are configured).
  std::shared_ptr<TierChain> tiers() const { return tiers_ ? tiers_->chain_ptr() : nullptr; }
  // Texts sent to each model's embedder since the service started, by canonical name.
  std::map<std::string, std::uint64_t> embedded_texts() const;

  // Budget bytes one cached vector of `dimensions` floats occupies.
  static std::uint64_t entry_bytes(std::size_t dimensions);

  // The storage of vectors of `dimensions` floats (nullopt before the first such vector).
  std::optional<VectorSlab::Stats> storage_stats(std::size_t dimensions) const;
  // The storage of every dimension count that has had a vector, in order of first use.
  std::vector<VectorSlab::Stats> storage_stats() const;

  // put() gives a slab to at most this many dimension counts (vectors of further ones are
  // built on the heap); every embedder's dimension count gets one (there are few models).
  static constexpr std::size_t kMaxSlabs = 8;

 private:
  // Embeds through the pool; keys[i] is the key of texts[i] under `canonical`.
  EmbedBatchResult run(std::string canonical, std::span<const std::string_view> texts,
                       std::vector<EmbeddingKey> keys);
  // Calls the embedder of `canonical` on `texts` (in chunks of its max_batch()) and checks
  // what it returns; counts the calls and texts in `accounting`. Runs outside pool locks.
  std::vector<EmbeddingVector> embed_uncached(const std::string& canonical,
                                              std::span<const std::string_view> texts,
                                              EmbedAccounting& accounting) const;

  // The slabs, one per dimension count (defined in embedding_service.cpp). Shared with
  // resource_pool(), which a broker may hold longer than the service.
  struct Storage;
  // resource_pool()'s implementation: the pool, whose evictions also trim the slabs they
  // evicted from.
  class TrimmingTier;
  // The pool's tiers: the codec between it and `chain` (null without a chain).
  static std::shared_ptr<EmbeddingTiers> make_tiers(std::shared_ptr<TierChain> chain,
                                                    std::shared_ptr<ModelRegistry> models,
                                                    std::shared_ptr<Storage> storage);

  // Built in this order: the tiers' codec uses the registry and the storage, the pool the
  // tiers.
  std::shared_ptr<ModelRegistry> models_;
  std::shared_ptr<Storage> storage_;
  std::shared_ptr<EmbeddingTiers> tiers_;  // null without tiers
  std::shared_ptr<Pool> pool_;
  std::shared_ptr<ResourcePool> tier_;  // resource_pool()

  mutable Mutex embedded_mutex_;
  mutable std::map<std::string, std::uint64_t> embedded_texts_
      PAGEKEEPER_GUARDED_BY(embedded_mutex_);
};

}  // namespace pagekeeper
