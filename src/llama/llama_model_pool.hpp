// llama/llama_model_pool.hpp (internal to the llama component)
//
// LlamaModelPool: where loaded llama.cpp models live. A PagedResourcePool keyed by the model
// file's canonical path whose values are std::shared_ptr<LlamaModel> charged at the model's
// tensor bytes (LlamaModel::size_bytes), with size-aware LRU eviction. It gives:
//   - single-flight loading: concurrent acquire() of one path load the file once;
//   - pinning while in use: acquire() returns a LlamaModelLease that pins the entry, so the
//     budget, the broker and evict_at_least() never take a model someone is running; an
//     embedder created from the pool holds its lease for its whole life;
//   - eviction when idle: once every lease is gone the model is an ordinary entry, and
//     evicting it frees the llama_model (the value's destructor).
// Register resource_pool() with the PressureBroker so memory pressure can evict idle models
// (and, with Config::curve_sampling_rate, so a global budget is divided by what a model load
// costs: the pool's budget then belongs to the broker, which sets it with set_budget()).
//
// A model larger than the whole budget is not cached: acquire() still returns a working lease
// (it owns the model) whose pinned() is false, and every acquire() of it loads it again.
//
// Thread safety: every method may be called concurrently from any thread. A lease is a
// movable value used by one owner at a time; the LlamaModel it refers to is thread-safe (see
// llama_runtime.hpp).

#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "llama/llama_runtime.hpp"
#include "pagekeeper/pool.hpp"

namespace pagekeeper {

using LlamaModelCache = PagedResourcePool<std::string, std::shared_ptr<LlamaModel>>;

// A model in use: keeps it loaded and (when pinned()) pinned in its pool until destroyed.
class LlamaModelLease {
 public:
  LlamaModelLease(LlamaModelCache::PinHandle pin, std::shared_ptr<LlamaModel> model)
      : pin_(std::move(pin)), model_(std::move(model)) {}
  const std::shared_ptr<LlamaModel>& model() const noexcept { return model_; }
  // True when the pool holds the model and this lease pins it.
  bool pinned() const noexcept { return static_cast<bool>(pin_); }

 private:
  LlamaModelCache::PinHandle pin_;
  std::shared_ptr<LlamaModel> model_;
};

class LlamaModelPool {
 public:
  struct Config {
    // Tier name for the broker and metrics.
    std::string name = "llama-models";
    // Budget in bytes of model tensors (default 4 GiB).
    std::uint64_t max_bytes = std::uint64_t{4} << 30;
    // Eviction policy among loaded models.
    CachePolicy policy = CachePolicy::kTinyLfu;
    // Miss-ratio curve sampling (PoolConfig::curve_sampling_rate), in [0, 1]; 0 turns it
    // off. With it on, the pool is a PoolUtility a broker can divide a global budget with:
    // its curve is the SHARDS estimate, its accesses the acquire() lookups and its miss cost
    // the measured LlamaModel::load time per byte times a model's bytes.
    double curve_sampling_rate = 0.0;
  };

  // Throws std::invalid_argument for an invalid configuration (empty name).
  explicit LlamaModelPool(Config config);

  // Returns a lease on the model at `path`, loading it (LlamaModel::load, single flight) when
  // it is not resident. Throws what LlamaModel::load throws (LlamaError, TierUnavailable);
  // a failed load caches nothing, so a later acquire() tries again.
  std::shared_ptr<LlamaModelLease> acquire(const std::filesystem::path& path);

  // Whether the model at `path` is resident now.
  bool resident(const std::filesystem::path& path) const;

  // Removes the model at `path` from the pool, pinned or not: leases keep their model alive
  // until they go, and the memory is freed with the last. Returns whether it was resident.
  bool unload(const std::filesystem::path& path);

  // The pool as the broker sees it.
  std::shared_ptr<LlamaModelCache> resource_pool() const noexcept { return cache_; }

  // The key a path is stored under (its canonical form when it exists).
  static std::string key_for(const std::filesystem::path& path);

 private:
  std::shared_ptr<LlamaModelCache> cache_;
};

}  // namespace pagekeeper
