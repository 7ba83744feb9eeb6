// EmbeddingService: the process's embedding cache on top of PagedResourcePool::load_many.

#include "pagekeeper/embedding_service.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <iterator>
#include <span>
#include <stdexcept>
#include <utility>

#include "pagekeeper/tier_record.hpp"

namespace pagekeeper {
namespace {

// A relief through EmbeddingService::resource_pool() (evict_at_least, set_budget) in progress
// on this thread. The pool's removal listener runs on the evicting thread, under a shard lock,
// so it only records here the dimension counts of the vectors the relief evicted; once the
// pool call has returned, the tier trims those slabs and no others (a trim walks a slab's
// free chunks under its mutex, stalling that slab's misses meanwhile, and a slab the relief
// evicted nothing from has nothing of the relief's to give back). Evictions on other threads
// (inserts making room, direct calls on pool()) are not the relief's: they keep their chunks
// for the next vectors. Nested scopes are kept as a stack.
class ReliefScope {
 public:
  // `storage` identifies the service whose pool's evictions count (compared, never followed).
  explicit ReliefScope(const void* storage) noexcept : storage_(storage), outer_(current_) { current_ = this; }
  ~ReliefScope() { current_ = outer_; }
  ReliefScope(const ReliefScope&) = delete;
  ReliefScope& operator=(const ReliefScope&) = delete;

  // The removal listener's side: a vector of `dimensions` floats left the pool of `storage`
  // by `cause`. Cheap, allocates nothing.
  static void note_removal(const void* storage, std::size_t dimensions, RemovalCause cause) noexcept {
    ReliefScope* scope = current_;
    if (scope == nullptr || scope->storage_ != storage) return;
    if (cause != RemovalCause::kEvicted && cause != RemovalCause::kExpiredByBroker) return;
    const auto end = scope->dimensions_.begin() + scope->distinct_;
    if (std::find(scope->dimensions_.begin(), end, dimensions) != end) return;
    if (scope->distinct_ == scope->dimensions_.size()) {
      scope->overflowed_ = true;
      return;
    }
    scope->dimensions_[scope->distinct_++] = dimensions;
  }

  bool evicted_any() const noexcept { return distinct_ > 0 || overflowed_; }
  // More distinct dimension counts than recorded: every slab is the relief's.
  bool overflowed() const noexcept { return overflowed_; }
  std::span<const std::size_t> dimensions() const noexcept { return {dimensions_.data(), distinct_}; }

 private:
  static thread_local ReliefScope* current_;
  const void* storage_;
  ReliefScope* outer_;
  // The service's slabs number at most EmbeddingService::kMaxSlabs; vectors of further
  // dimension counts live on the heap, which may add a few more distinct counts.
  std::array<std::size_t, 2 * EmbeddingService::kMaxSlabs> dimensions_{};
  std::size_t distinct_ = 0;
  bool overflowed_ = false;
};

thread_local ReliefScope* ReliefScope::current_ = nullptr;

EmbeddingService::Pool::Config pool_config(const EmbeddingServiceConfig& config,
                                           std::shared_ptr<EmbeddingTiers> tiers, const void* storage) {
  EmbeddingService::Pool::Config pc;
  pc.removal_listener = [storage](const EmbeddingKey&, const EmbeddingVector& vector, std::uint64_t,
                                  RemovalCause cause) { ReliefScope::note_removal(storage, vector.size(), cause); };
  pc.tiers = std::move(tiers);
  pc.name = config.pool_name;
  pc.max_bytes = config.max_bytes;
  pc.sizer = [](const EmbeddingVector& v) -> std::uint64_t {
    return v.memory_bytes() + sizeof(EmbeddingKey);
  };
  pc.policy = eviction_policy_for<EmbeddingVector>(config.policy);
  pc.low_watermark = config.low_watermark;
  pc.shards = config.shards;
  pc.key_formatter = [](const EmbeddingKey& key) { return key.to_string(); };
  pc.ghost_max_keys = config.ghost_max_keys;
  pc.curve_sampling_rate = config.curve_sampling_rate;
  return pc;
}

// Branch-free, eight lanes at a time, so it compiles to SIMD even at -O2: a float is NaN or
// infinite exactly when its exponent bits are all ones.
bool all_finite(std::span<const float> values) {
  constexpr std::uint32_t kExponent = 0x7f800000u;
  std::uint32_t lanes[8] = {};
  std::size_t i = 0;
  for (; i + 8 <= values.size(); i += 8) {
    for (std::size_t k = 0; k < 8; ++k) {
      const auto bits = std::bit_cast<std::uint32_t>(values[i + k]);
      lanes[k] |= static_cast<std::uint32_t>((bits & kExponent) == kExponent);
    }
  }
  std::uint32_t any = 0;
  for (; i < values.size(); ++i) {
    any |= static_cast<std::uint32_t>((std::bit_cast<std::uint32_t>(values[i]) & kExponent) == kExponent);
  }
  for (const std::uint32_t lane : lanes) any |= lane;
  return any == 0;
}

Mutex g_default_mutex;
std::shared_ptr<EmbeddingService> g_default PAGEKEEPER_GUARDED_BY(g_default_mutex);

// A slab's largest block: a sixteenth of the budget (so a small cache maps little beyond it),
// between 64 KiB and 2 MiB (larger blocks save nothing: the kernel still populates them a
// page at a time).
std::size_t slab_block_bytes(std::uint64_t max_bytes) {
  constexpr std::uint64_t kMin = std::uint64_t{64} << 10;
  constexpr std::uint64_t kMax = std::uint64_t{2} << 20;
  return static_cast<std::size_t>(std::clamp(std::bit_floor(max_bytes / 16), kMin, kMax));
}

// What the pool's lookup says of a call's texts; a joined text counts as a miss too.
void take_lookup_counts(EmbedAccounting& accounting, const LoadManyStats& stats) {
  accounting.hits = stats.hits;
  accounting.joined = stats.joined;
  accounting.misses = stats.loaded + stats.joined;
  accounting.from_tiers = stats.from_tiers;
  accounting.from_tier = stats.from_tier;
}

}  // namespace

// The service's vector storage: one slab per dimension count.
// Locking rule: `mutex` guards the list; each slab is thread-safe. The list never shrinks,
// so a pointer from slab_for() stays valid while the Storage lives. Vectors may outlive it.
struct EmbeddingService::Storage {
  Storage(std::size_t block_bytes, bool ahead) : max_block_bytes(block_bytes), map_ahead(ahead) {}

  // The slab for vectors of `dimensions` (> 0) floats, created on first use; null when
  // kMaxSlabs exist already and `beyond_cap` is false.
  VectorSlab* slab_for(std::size_t dimensions, bool beyond_cap) {
    MutexLock lock(mutex);
    if (VectorSlab* slab = find_locked(dimensions)) return slab;
    if (slabs.size() >= kMaxSlabs && !beyond_cap) return nullptr;
    slabs.push_back(std::make_unique<VectorSlab>(
        dimensions, VectorSlab::Options{.first_block_bytes = std::size_t{64} << 10,
                                        .max_block_bytes = max_block_bytes,
                                        .map_ahead = map_ahead}));
    return slabs.back().get();
  }

  std::optional<VectorSlab::Stats> stats(std::size_t dimensions) const {
    MutexLock lock(mutex);
    if (const VectorSlab* slab = find_locked(dimensions)) return slab->stats();
    return std::nullopt;
  }

  std::vector<VectorSlab::Stats> all_stats() const {
    MutexLock lock(mutex);
    std::vector<VectorSlab::Stats> out;
    out.reserve(slabs.size());
    for (const std::unique_ptr<VectorSlab>& slab : slabs) out.push_back(slab->stats());
    return out;
  }

  // Returns every slab's unused blocks to the kernel (VectorSlab::trim); returns the bytes.
  // Trims outside `mutex` (slabs are never removed), so misses that look up their slab
  // meanwhile wait only for the slab being trimmed, if it is theirs.
  std::uint64_t trim() { return trim_slabs([](const VectorSlab&) { return true; }); }

  // The same for the slabs of the dimension counts a relief evicted vectors of.
  std::uint64_t trim(const ReliefScope& relief) {
    if (!relief.evicted_any()) return 0;
    if (relief.overflowed()) return trim();
    return trim_slabs([&relief](const VectorSlab& slab) {
      const std::span<const std::size_t> evicted = relief.dimensions();
      return std::find(evicted.begin(), evicted.end(), slab.dimensions()) != evicted.end();
    });
  }

 private:
  template <class Wanted>
  std::uint64_t trim_slabs(Wanted&& wanted) {
    std::vector<VectorSlab*> to_trim;
    {
      MutexLock lock(mutex);
      for (const std::unique_ptr<VectorSlab>& slab : slabs) {
        if (wanted(*slab)) to_trim.push_back(slab.get());
      }
    }
    std::uint64_t unmapped = 0;
    for (VectorSlab* slab : to_trim) unmapped += slab->trim();
    return unmapped;
  }

  VectorSlab* find_locked(std::size_t dimensions) const PAGEKEEPER_REQUIRES(mutex) {
    for (const std::unique_ptr<VectorSlab>& slab : slabs) {
      if (slab->dimensions() == dimensions) return slab.get();
    }
    return nullptr;
  }

  const std::size_t max_block_bytes;  // largest block a slab maps (from the budget)
  const bool map_ahead;              // VectorSlab::Options::map_ahead for every slab
  mutable Mutex mutex;
  std::vector<std::unique_ptr<VectorSlab>> slabs PAGEKEEPER_GUARDED_BY(mutex);
};

class EmbeddingService::TrimmingTier final : public ResourcePool, public PoolUtility {
 public:
  TrimmingTier(std::shared_ptr<Pool> pool, std::shared_ptr<Storage> storage)
      : pool_(std::move(pool)), storage_(std::move(storage)) {}

  std::string tier_name() const override { return pool_->tier_name(); }
  std::uint64_t capacity_bytes() const override { return pool_->capacity_bytes(); }
  std::uint64_t usage_bytes() const override { return pool_->usage_bytes(); }
  double pressure() const override { return pool_->pressure(); }
  // Then trims the slabs of the vectors it evicted (the pool's removal listener names them).
  std::uint64_t evict_at_least(std::uint64_t bytes) override {
    const ReliefScope relief(storage_.get());
    const std::uint64_t freed = pool_->evict_at_least(bytes);
    storage_->trim(relief);
    return freed;
  }
  std::vector<EntrySnapshot> snapshot() const override { return pool_->snapshot(); }
  PoolStats stats() const override { return pool_->stats(); }
  std::optional<GhostReading> ghost() const override { return pool_->ghost(); }

  // The pool's utility; set_budget() trims the slabs of the vectors a smaller budget evicted.
  double miss_ratio(std::uint64_t bytes) const override { return pool_->miss_ratio(bytes); }
  bool curve_known() const override { return pool_->curve_known(); }
  std::uint64_t accesses() const override { return pool_->accesses(); }
  double miss_cost_seconds() const override { return pool_->miss_cost_seconds(); }
  void set_budget(std::uint64_t bytes) override {
    const ReliefScope relief(storage_.get());
    pool_->set_max_bytes(bytes);
    storage_->trim(relief);
  }

 private:
  std::shared_ptr<Pool> pool_;
  std::shared_ptr<Storage> storage_;
};

// The codec between the pool and `chain` (null without tiers). A model's identity and
// length are asked of its embedder once (a GGUF file's digest is a read of the file); only
// models that state an identity use the tiers.
std::shared_ptr<EmbeddingTiers> EmbeddingService::make_tiers(std::shared_ptr<TierChain> chain,
                                                             std::shared_ptr<ModelRegistry> models,
                                                             std::shared_ptr<Storage> storage) {
  if (!chain) return nullptr;
  struct Described {
    Mutex mutex;
    std::map<std::string, std::optional<EmbeddingTiers::Model>, std::less<>> models
        PAGEKEEPER_GUARDED_BY(mutex);
  };
  auto described = std::make_shared<Described>();
  return std::make_shared<EmbeddingTiers>(
      std::move(chain),
      [described, models = std::move(models), storage = std::move(storage)](const std::string& canonical)
          -> std::optional<EmbeddingTiers::Model> {
        {
          MutexLock lock(described->mutex);
          auto it = described->models.find(canonical);
          if (it != described->models.end()) return it->second;
        }
        std::shared_ptr<Embedder> embedder = models->embedder(canonical);
        std::optional<EmbeddingTiers::Model> model;
        const std::string identity = embedder->identity();
        if (!identity.empty() && embedder->dimensions() > 0 && embedder->name() == canonical) {
          model = EmbeddingTiers::Model{identity_digest(identity), embedder->dimensions(),
                                        storage->slab_for(embedder->dimensions(), /*beyond_cap=*/true)};
        }
        MutexLock lock(described->mutex);
        described->models.emplace(canonical, model);
        return model;
      });
}

EmbeddingService::EmbeddingService(EmbeddingServiceConfig config)
    : models_(config.models ? std::move(config.models) : ModelRegistry::with_builtin_models()),
      storage_(std::make_shared<Storage>(slab_block_bytes(config.max_bytes), config.map_storage_ahead)),
      tiers_(make_tiers(config.tiers, models_, storage_)),
      pool_(std::make_shared<Pool>(pool_config(config, tiers_, storage_.get()))),
      tier_(std::make_shared<TrimmingTier>(pool_, storage_)) {}

std::map<std::string, std::uint64_t> EmbeddingService::embedded_texts() const {
  MutexLock lock(embedded_mutex_);
  return embedded_texts_;
}

std::optional<VectorSlab::Stats> EmbeddingService::storage_stats(std::size_t dimensions) const {
  return storage_->stats(dimensions);
}

std::vector<VectorSlab::Stats> EmbeddingService::storage_stats() const { return storage_->all_stats(); }

std::shared_ptr<EmbeddingService> EmbeddingService::process_default() {
  MutexLock lock(g_default_mutex);
  if (!g_default) g_default = std::make_shared<EmbeddingService>();
  return g_default;
}

std::shared_ptr<EmbeddingService> EmbeddingService::init_process_default(
    EmbeddingServiceConfig config) {
  MutexLock lock(g_default_mutex);
  if (g_default) {
    throw std::logic_error(
        "EmbeddingService::init_process_default: the process-wide embedding service already "
        "exists (init_process_default must run before the first process_default call)");
  }
  g_default = std::make_shared<EmbeddingService>(std::move(config));
  return g_default;
}

std::uint64_t EmbeddingService::entry_bytes(std::size_t dimensions) {
  return sizeof(EmbeddingVector) + EmbeddingVector::chunk_bytes(dimensions) + sizeof(EmbeddingKey);
}

EmbedResult EmbeddingService::embed(std::string_view text, std::string_view model) {
  std::string canonical = models_->resolve(model);
  EmbeddingKey key{canonical, sha256(text)};
  // One key: the pool's single-key load (one lookup on a hit, no batch bookkeeping).
  EmbedAccounting accounting;
  LoadManyStats stats;
  EmbeddingVector vector = pool_->load_or_share(
      key,
      [&] { return std::move(embed_uncached(canonical, std::span(&text, 1), accounting).front()); },
      &stats);
  take_lookup_counts(accounting, stats);
  return EmbedResult{std::move(vector), std::move(canonical), accounting};
}

EmbedBatchResult EmbeddingService::embed_batch(std::span<const std::string> texts,
                                               std::string_view model) {
  std::string canonical = models_->resolve(model);
  if (texts.empty()) return EmbedBatchResult{{}, std::move(canonical), {}};
  std::vector<std::string_view> views(texts.begin(), texts.end());
  std::vector<EmbeddingKey> keys;
  keys.reserve(views.size());
  for (const std::string_view text : views) keys.push_back(EmbeddingKey{canonical, sha256(text)});
  return run(std::move(canonical), views, std::move(keys));
}

std::optional<EmbedBatchResult> EmbeddingService::embed_batch_if_cached(std::span<const std::string> texts,
                                                                        std::string_view model) {
  if (texts.empty()) return std::nullopt;
  std::string canonical = models_->resolve(model);
  std::vector<EmbeddingKey> keys;
  keys.reserve(texts.size());
  for (const std::string& text : texts) {
    keys.push_back(EmbeddingKey{canonical, sha256(text)});
    if (!pool_->contains(keys.back())) return std::nullopt;  // counts nothing
  }
  EmbedBatchResult result{{}, std::move(canonical), {}};
  result.vectors.reserve(keys.size());
  for (const EmbeddingKey& key : keys) {
    std::optional<EmbeddingVector> vector = pool_->get(key);
    if (!vector) return std::nullopt;  // evicted since the check
    result.vectors.push_back(std::move(*vector));
    ++result.accounting.hits;
  }
  return result;
}

EmbedBatchResult EmbeddingService::run(std::string canonical,
                                       std::span<const std::string_view> texts,
                                       std::vector<EmbeddingKey> keys) {
  EmbedAccounting accounting;
  // Runs outside every pool lock, with exactly the distinct keys nobody has cached or is
  // embedding. Any exception leaves the pool unchanged for these keys.
  auto embed_missing = [&](const std::vector<EmbeddingKey>& missing) {
    // Which text each missing key came from: a sorted index (one allocation) rather than a
    // hash map (one per key), since this runs for every text on the all-miss path.
    // Sorted by the key's hash (the content hash's first 8 bytes, as the pool hashes it).
    const EmbeddingKeyHash hash_of;
    std::vector<std::pair<std::size_t, std::size_t>> index;
    index.reserve(keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) index.emplace_back(hash_of(keys[i]), i);
    std::sort(index.begin(), index.end());
    std::vector<std::string_view> missing_texts;
    missing_texts.reserve(missing.size());
    for (const EmbeddingKey& key : missing) {
      const std::size_t prefix = hash_of(key);
      auto it = std::lower_bound(index.begin(), index.end(), std::pair<std::size_t, std::size_t>{prefix, 0});
      // Equal prefixes (2^-64 per pair) fall back to comparing whole hashes.
      while (it != index.end() && it->first == prefix && !(keys[it->second].content_hash == key.content_hash)) ++it;
      if (it == index.end() || it->first != prefix) {
        throw std::logic_error("EmbeddingService: the pool asked for a key this call does not hold");
      }
      missing_texts.push_back(texts[it->second]);
    }
    return embed_uncached(canonical, missing_texts, accounting);
  };

  LoadManyStats stats;
  std::vector<EmbeddingVector> vectors = pool_->load_many(keys, embed_missing, &stats);
  take_lookup_counts(accounting, stats);
  return EmbedBatchResult{std::move(vectors), std::move(canonical), accounting};
}

std::vector<EmbeddingVector> EmbeddingService::embed_uncached(
    const std::string& canonical, std::span<const std::string_view> texts,
    EmbedAccounting& accounting) const {
  std::shared_ptr<Embedder> embedder = models_->embedder(canonical);
  if (embedder->name() != canonical) {
    throw EmbedderError("embedding model '" + canonical + "' is provided by an embedder named '" +
                        embedder->name() + "'");
  }
  const std::size_t dims = embedder->dimensions();
  if (dims == 0) throw EmbedderError("embedding model '" + canonical + "' has 0 dimensions");
  VectorSlab& slab = *storage_->slab_for(dims, /*beyond_cap=*/true);
  const std::size_t chunk_size = std::max<std::size_t>(1, embedder->max_batch());
  std::vector<EmbeddingVector> values;
  if (texts.size() > chunk_size) values.reserve(texts.size());
  // Chunks are views of the caller's texts: nothing is copied on the way to the embedder,
  // and the embedder writes each vector into the compact form the pool stores.
  for (std::size_t begin = 0; begin < texts.size(); begin += chunk_size) {
    const std::span<const std::string_view> chunk =
        texts.subspan(begin, std::min(chunk_size, texts.size() - begin));
    std::vector<EmbeddingVector> produced;
    try {
      produced = embedder->embed_compact(chunk, slab);
    } catch (const EmbedderError&) {
      throw;
    } catch (const std::exception& e) {
      throw EmbedderError("embedding model '" + canonical + "' failed: " + e.what());
    }
    ++accounting.embedder_calls;
    accounting.embedded += chunk.size();
    {
      MutexLock lock(embedded_mutex_);
      embedded_texts_[canonical] += chunk.size();
    }
    if (produced.size() != chunk.size()) {
      throw EmbedderError("embedding model '" + canonical + "' returned " +
                          std::to_string(produced.size()) + " vectors for " +
                          std::to_string(chunk.size()) + " texts");
    }
    for (const EmbeddingVector& vector : produced) {
      if (vector.size() != dims) {
        throw EmbedderError("embedding model '" + canonical + "' returned a vector of " +
                            std::to_string(vector.size()) + " dimensions, expected " +
                            std::to_string(dims));
      }
      if (!all_finite(vector.values())) {
        throw EmbedderError("embedding model '" + canonical +
                            "' returned a vector with a non-finite value");
      }
    }
    if (chunk.size() == texts.size()) return produced;  // one chunk: its vectors are the result
    values.insert(values.end(), std::make_move_iterator(produced.begin()),
                  std::make_move_iterator(produced.end()));
  }
  return values;
}

bool EmbeddingService::put(std::string_view text, std::string_view model,
                           std::span<const float> vector) {
  if (vector.empty()) throw std::invalid_argument("EmbeddingService::put: empty vector");
  if (!all_finite(vector)) {
    throw std::invalid_argument("EmbeddingService::put: vector has a non-finite value");
  }
  EmbeddingKey key{models_->resolve(model), sha256(text)};
  VectorSlab* slab = storage_->slab_for(vector.size(), /*beyond_cap=*/false);
  return pool_->insert(std::move(key), slab != nullptr ? slab->copy(vector) : EmbeddingVector(vector));
}

bool EmbeddingService::contains(std::string_view text, std::string_view model) const {
  return pool_->contains(EmbeddingKey{models_->resolve(model), sha256(text)});
}

std::size_t EmbeddingService::clear() {
  const std::size_t dropped = pool_->clear();
  storage_->trim();
  return dropped;
}

PoolStats EmbeddingService::stats() const { return pool_->stats(); }

}  // namespace pagekeeper
