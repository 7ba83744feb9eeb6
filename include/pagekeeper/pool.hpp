// pagekeeper/pool.hpp
//
// PagedResourcePool<K,V>: a byte-budgeted, sharded, thread-safe cache of values that are
// expensive to produce (embedding vectors, adapters, loaded models, KV slots). It is the one
// paging primitive of pagekeeper; every resource kind pages through it.
//
// What it guarantees
//   - Budget: after any insert, total_bytes <= max_bytes unless the bytes that cannot be
//     evicted (pinned entries, and entries a custom policy marks kNeverEvict) exceed it.
//     An over-budget insert evicts down to low_watermark * max_bytes (default 1.0: only what
//     is needed to fit). A value larger than max_bytes on its own is not cached (counted in
//     stats().rejected_oversize) and never throws on the caller's path.
//   - Single flight: concurrent load_or_share()/load_many() of one missing key run one
//     loader; all callers get its value, which is inserted exactly once, by the loader's
//     caller. A failure (an exception from the loader) reaches every waiter, caches nothing
//     and frees the in-flight slot, so a retry runs the loader again. Loaders run outside
//     every pool lock, so a loader may call get()/insert() on the same pool (but must not
//     wait for a load of a key it is itself loading).
//   - Pins: an entry with a live PinHandle is never evicted by the budget, by
//     evict_at_least() / evict_under_pressure() or by the broker; only evict() and clear()
//     remove it. A removed entry's value stays readable through handles that pin it.
//   - Statistics: hits + misses equals the number of lookups (get, and the lookup at the start
//     of load_or_share / load_many); total_bytes equals the sum of resident entry sizes.
//
// Design and locking rule
//   Keys hash into shards (a power of two). Each shard has a reader-writer lock, an
//   eviction policy object (an exact LRU list for the built-in policies) and an
//   open-addressing table in chunks of one cache line (F14's layout: seven hash tags matched
//   at once, seven pointers, an overflow count) whose words are atomics.
//   - Hits (get) never take a lock exclusively. When K and V are each one lock-free atomic
//     word (lock_free_reads()), get() takes no lock at all: it reads the key's home chunk,
//     copies the value and validates against the table's version (a seqlock that only
//     erasures and table growth advance), retrying or falling back to the shared lock if a
//     writer interfered. Other types are read under the shard's lock taken shared. The
//     lock-free hit is inlined into the caller; everything else is out of line.
//   - A hit is counted and queued in this thread's stripe of the shard's read rings
//     (Caffeine's striped read buffer; threads map to stripes by a small per-thread index,
//     so concurrent readers write different cache lines, and a reader never reads what the
//     drainer writes). Rings are replayed into the policy under the exclusive lock, when
//     one fills and before every eviction, so a single thread sees exact LRU. Under
//     concurrent reads a ring whose shard was busy when it filled is overwritten (lossy, as
//     in Caffeine): order is then approximate, never the budget, the pins or the hit and
//     miss counts. While several threads read one shard (the drain finds hits of two or
//     more stripes, twice running), its stripes queue one hit in 16 and only count the
//     others, so that readers do not spend their time replaying each other's hits; the
//     policy then sees a sample of the hits (recency and frequency approximate, hit ratio
//     measured in docs/ARCHITECTURE.md). Not in pools that sample miss-ratio curves.
//   - Writers (insert, eviction, pin, load completion) take one shard's lock exclusively; no
//     code path holds two shard locks at once, except custom-policy eviction and
//     verification, which take all of them in index order.
//   - New entries are staged: they wait in a 16-slot per-shard stage, which lookups search
//     first, and reach the table 16 at a time with their home lines loaded together (in a
//     pool larger than the caches, one memory wait per 16 inserts instead of one each). An
//     older entry of a staged key is replaced at that flush; until then lookups cannot reach
//     it, and stats(), snapshot() and verify_invariants() flush first.
//   total_bytes is an atomic changed only under the owning shard's lock.
//   The rule is checked at compile time: a shard's state is PAGEKEEPER_GUARDED_BY its
//   SharedMutex and the helpers that expect the lock say PAGEKEEPER_REQUIRES, so clang's
//   -Wthread-safety rejects an access without it (see pagekeeper/detail/mutex.hpp).
//   Entries live in a per-shard split arena (no per-entry malloc header): an entry's record
//   (key and value, what lookups read) and its 40-byte header (links, pins, recency, what
//   the LRU bookkeeping writes) lie in separate arrays, so the bookkeeping that follows hits
//   on one core never writes a line that lookups on another core read. With the table's
//   share this keeps bookkeeping under 64 bytes per entry (docs/PERFORMANCE.md has the
//   measured figure).
//
// Value type requirements: V is copy-constructible (get() returns a copy: use
// std::shared_ptr<const T> for large values). V's destructor runs under a shard lock and must
// not call back into the pool. The sizer, the key formatter, the removal listener, the clock
// and custom priorities must be cheap, thread-safe and must not call back into the pool.
//
// The parts live in pagekeeper/detail/: chunked_table.hpp (the table and its insert stage),
// split_arena.hpp (entry memory), read_buffer.hpp (read stripes and their drain),
// single_flight.hpp (loads in flight), and one file per eviction policy (lru_policy.hpp
// describes the policy seam).

#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bitset>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "pagekeeper/clock.hpp"
#include "pagekeeper/detail/atomic_word.hpp"
#include "pagekeeper/detail/chunked_table.hpp"
#include "pagekeeper/detail/custom_policy.hpp"
#include "pagekeeper/detail/ghost_keys.hpp"
#include "pagekeeper/detail/key_support.hpp"
#include "pagekeeper/detail/link_list.hpp"
#include "pagekeeper/detail/lru_policy.hpp"
#include "pagekeeper/detail/miss_ratio_sampler.hpp"
#include "pagekeeper/detail/mutex.hpp"
#include "pagekeeper/detail/read_buffer.hpp"
#include "pagekeeper/detail/secondary_tiers.hpp"
#include "pagekeeper/detail/single_flight.hpp"
#include "pagekeeper/detail/size_aware_lru_policy.hpp"
#include "pagekeeper/detail/split_arena.hpp"
#include "pagekeeper/detail/thread_index.hpp"
#include "pagekeeper/detail/tiny_lfu_policy.hpp"
#include "pagekeeper/errors.hpp"
#include "pagekeeper/eviction_policy.hpp"
#include "pagekeeper/pool_utility.hpp"
#include "pagekeeper/resource_pool.hpp"

namespace pagekeeper {

// A batch loader returned the wrong number of values, or a loader failed without an
// exception of its own type.
class LoadError : public Error {
 public:
  using Error::Error;
};

// Why an entry left a pool, as a removal listener is told.
enum class RemovalCause {
  kEvicted,          // the budget needed room (an insert, a load, set_max_bytes)
  kErased,           // an explicit erase(key)
  kReplaced,         // an insert or load of the same key (or an oversize value for it)
  kCleared,          // clear()
  kExpiredByBroker,  // evict_at_least() / evict_under_pressure(): memory pressure relief
};

inline const char* to_string(RemovalCause cause) noexcept {
  switch (cause) {
    case RemovalCause::kEvicted: return "evicted";
    case RemovalCause::kErased: return "erased";
    case RemovalCause::kReplaced: return "replaced";
    case RemovalCause::kCleared: return "cleared";
    case RemovalCause::kExpiredByBroker: return "expired-by-broker";
  }
  return "unknown";
}

template <class K, class V>
struct PoolConfig {
  // Required, non-empty: the tier name the broker and the metrics know this pool by.
  std::string name;
  // Required: the byte budget. 0 is allowed and means "caches nothing, not managed".
  std::uint64_t max_bytes = 0;
  // Required: bytes a value occupies; computed once, at insert.
  std::function<std::uint64_t(const V&)> sizer;
  // Required: the eviction order.
  std::optional<EvictionPolicy<V>> policy;
  // Fraction of max_bytes an over-budget insert evicts down to, in (0, 1].
  double low_watermark = 1.0;
  // Number of shards, a power of two in [1, 1024]; 0 lets the pool choose (1 for custom
  // policies and for budgets under 1 MiB, whose few entries want exact global order; else
  // 4 per hardware thread, between 4 and 64).
  std::uint32_t shards = 0;
  // Promotion delay (CacheLib's lruRefreshTime): a hit on an entry whose recency was
  // refreshed less than this many milliseconds ago counts as a hit but is not recorded for
  // promotion, so a hot working set stops taking the shard's lock exclusively to replay
  // reads. 0 (the default) keeps exact LRU order; with a delay, order is LRU at that
  // granularity and access counts skip the unrecorded hits.
  std::uint32_t lru_refresh_ms = 0;
  // Optional: how snapshot() prints keys. Defaults to the key itself for strings, to
  // std::to_string for arithmetic keys, to to_string(key) found by ADL, else "<key>".
  std::function<std::string(const K&)> key_formatter;
  // Optional: called once for every entry that leaves the pool (LevelDB's deleter,
  // Caffeine's RemovalListener) with its key, value, size in bytes and why. Not called for
  // the entries a destroyed pool still holds, nor for values that were never admitted
  // (stats().rejected_oversize). Runs under the entry's shard lock, on the thread that
  // removed it: it must be cheap, must not throw and must not call back into the pool.
  // A pinned entry's value stays readable through its handles after the call.
  std::function<void(const K&, const V&, std::uint64_t, RemovalCause)> removal_listener;
  // Optional: the clock for recency, load times and the promotion delay, in monotonic
  // milliseconds (default: pagekeeper::monotonic_ms()). Tests inject a manual clock. Must be
  // cheap, thread-safe and non-decreasing.
  std::function<std::int64_t()> clock;
  // Optional: the tiers below memory (a local disk, a shared store; see
  // pagekeeper/detail/secondary_tiers.hpp). On a miss, load_or_share()/load_many() ask them
  // for all the keys the call claimed, at once and inside the in-flight slots, before the
  // loader: a value they hold is inserted and returned like a loaded one (the loader never
  // sees its key), and the values the loader produced are handed to them to be written down
  // in the background. Single flight covers the whole chain. Null: no tiers.
  std::shared_ptr<SecondaryTiers<K, V>> tiers;
  // Miss-ratio curve estimation (SHARDS, detail/miss_ratio_sampler.hpp): the share of keys
  // sampled at first, in [0, 1] (0, the default, turns it off), and the most keys tracked over
  // all shards. Fed from inserts and from the drain of recorded hits, under the shard's lock:
  // the hit path itself is unchanged. See PagedResourcePool::estimated_miss_ratio().
  double curve_sampling_rate = 0.0;
  std::uint32_t curve_max_samples = 4096;
  // Ghost of evicted keys (detail/ghost_keys.hpp): how many of the most recent evictions
  // (by the budget or the broker) are remembered by key hash over all shards, so that a
  // re-load of one is counted (stats().ghost_hits, ghost()) with the budget that would have
  // kept it. 0 (the default) turns it off. Touched on the eviction and insert paths only,
  // under the shard's lock: the hit path is unchanged.
  std::uint32_t ghost_max_keys = 0;
};

// What one load_many() call did, for per-call accounting (never a difference of global
// counters). Every position of `keys` is counted once in exactly one of the three.
struct LoadManyStats {
  std::size_t hits = 0;    // found resident
  std::size_t loaded = 0;  // produced by this call's batch loader (duplicates included)
  std::size_t joined = 0;  // produced by a load already in flight elsewhere
  std::size_t loader_keys = 0;  // distinct keys handed to the batch loader
  // Of `loaded`: distinct keys whose value came from the tiers below memory
  // (PoolConfig::tiers), not from the loader; and of those, how many from each tier.
  std::size_t from_tiers = 0;
  std::array<std::size_t, kMaxSecondaryTiers> from_tier{};
};

template <class K, class V, class Hash = std::hash<K>, class KeyEqual = std::equal_to<K>>
class PagedResourcePool final : public ResourcePool, public PoolUtility {
  struct Core;
  struct Entry;

 public:
  using key_type = K;
  using value_type = V;
  using Config = PoolConfig<K, V>;

  // RAII pin on one entry. Movable, not copyable. While held, the entry cannot be evicted
  // except by erase()/clear(), and its value stays readable through value() even after such
  // a forced removal. release() is idempotent and runs on destruction. A handle from pin()
  // of a missing key is empty (operator bool is false). A handle keeps the pool's internals
  // alive, so it may outlive the pool object.
  class PinHandle {
   public:
    PinHandle() = default;
    PinHandle(const PinHandle&) = delete;
    PinHandle& operator=(const PinHandle&) = delete;
    PinHandle(PinHandle&& other) noexcept
        : core_(std::move(other.core_)), entry_(std::exchange(other.entry_, nullptr)),
          shard_(other.shard_) {}
    PinHandle& operator=(PinHandle&& other) noexcept {
      if (this != &other) {
        release();
        core_ = std::move(other.core_);
        entry_ = std::exchange(other.entry_, nullptr);
        shard_ = other.shard_;
      }
      return *this;
    }
    ~PinHandle() { release(); }

    explicit operator bool() const noexcept { return entry_ != nullptr; }
    // Requires: *this is non-empty.
    const V& value() const noexcept { return entry_->value(); }
    const V* operator->() const noexcept { return &entry_->value(); }
    const V& operator*() const noexcept { return entry_->value(); }
    const K& key() const noexcept { return entry_->key(); }

    // Drops the pin (idempotent).
    void release() noexcept {
      if (entry_ != nullptr) {
        core_->unpin(shard_, entry_);
        entry_ = nullptr;
        core_.reset();
      }
    }

   private:
    friend class PagedResourcePool;
    PinHandle(std::shared_ptr<Core> core, Entry* entry, std::uint32_t shard)
        : core_(std::move(core)), entry_(entry), shard_(shard) {}
    std::shared_ptr<Core> core_;
    Entry* entry_ = nullptr;
    std::uint32_t shard_ = 0;
  };

  // Throws std::invalid_argument naming the field when the configuration is invalid.
  explicit PagedResourcePool(Config config) : core_(std::make_shared<Core>(std::move(config))) {}

  PagedResourcePool(const PagedResourcePool&) = delete;
  PagedResourcePool& operator=(const PagedResourcePool&) = delete;

  const Config& config() const noexcept { return core_->config; }
  const std::string& name() const noexcept { return core_->config.name; }
  std::uint32_t shard_count() const noexcept { return core_->shard_count; }

  // Returns a copy of the value and refreshes its recency (a hit), or nullopt (a miss).
  // Always inlined, as the lock-free hit inside it is: GCC's size budget otherwise leaves
  // the whole hit out of line in a caller's loop, a call per lookup.
  [[gnu::always_inline]] std::optional<V> get(const K& key) const { return core_->get(key); }

  // True when `key` is resident. Counts nothing and refreshes nothing.
  bool contains(const K& key) const { return core_->contains(key); }

  // Inserts or replaces `key`, then enforces the budget (the new entry may itself be a
  // victim only if everything else is pinned). A replaced entry's pins stay with the old
  // value: handles keep reading what they pinned; the new entry starts unpinned.
  // A value larger than max_bytes is not cached (and a previous entry for `key` is removed,
  // since it is stale); returns false in that case, true when the value was admitted (it may
  // still be this insert's own victim when everything else is pinned or kNeverEvict).
  // Room is made before the key is looked up (see Core::insert), so replacing a resident key
  // in a full pool may evict up to the old value's size more than strictly needed.
  bool insert(K key, V value) {
    const std::uint64_t size = core_->config.sizer(value);
    return core_->insert(std::move(key), std::move(value), size);
  }

  // Single-flight load. `loader` is called as loader(key) or loader() and returns V; it
  // signals failure by throwing. Returns the cached value on a hit; otherwise joins the load
  // in flight for `key` or runs `loader` (outside every lock) and inserts its value once.
  // Rethrows the loader's exception to this caller and to every waiter. `stats`, when
  // given, receives what this call did (one of hits, loaded, joined is 1), as in load_many.
  template <class Loader>
  V load_or_share(const K& key, Loader&& loader, LoadManyStats* stats = nullptr) {
    LoadManyStats local;
    LoadManyStats& st = stats != nullptr ? *stats : local;
    st = LoadManyStats{};
    if (auto hit = core_->get(key)) {
      st.hits = 1;
      return std::move(*hit);
    }
    return core_->load_missing(key, std::forward<Loader>(loader), st);
  }

  // Bulk form (Caffeine's getAll). Returns the values of `keys` in order. One call of
  // batch_loader(const std::vector<K>&) -> std::vector<V> receives exactly the distinct keys
  // that are neither resident nor in flight elsewhere (with PoolConfig::tiers: nor held by
  // the tiers below; none: it is not called); keys in
  // flight elsewhere are joined, duplicates inside `keys` are loaded once. The loader must
  // return one value per key, in order (otherwise LoadError). A loader failure fails this
  // call, caches nothing of it and frees its in-flight slots (waiters that joined them get
  // the same exception). `stats`, when given, receives this call's own accounting.
  template <class BatchLoader>
  std::vector<V> load_many(const std::vector<K>& keys, BatchLoader&& batch_loader,
                           LoadManyStats* stats = nullptr) {
    return core_->load_many(keys, std::forward<BatchLoader>(batch_loader), stats);
  }

  // Pins `key` if resident (refreshing its recency, counting neither hit nor miss);
  // returns an empty handle otherwise.
  PinHandle pin(const K& key) {
    auto [entry, shard] = core_->pin(key);
    if (entry == nullptr) return PinHandle();
    return PinHandle(core_, entry, shard);
  }

  // Forced removal, pins ignored. Returns whether `key` was resident (then counts one
  // eviction).
  bool erase(const K& key) { return core_->erase_key(key); }

  // Drops every entry, pinned ones included, and resets hits, misses, evictions and
  // rejected_oversize to 0. Returns the number of entries dropped.
  // Loads in flight during clear() are detached: their waiters still receive the loaded
  // value (or error), but it is NOT inserted (it belongs to the state that was cleared), and
  // a load of the same key started after clear() runs its own loader.
  std::size_t clear() { return core_->clear(); }

  // Evicts unpinned entries in policy order until at least `bytes` are freed or none remain.
  // Returns the bytes freed (whole entries, so it may overshoot). 0 frees nothing.
  std::uint64_t evict_at_least(std::uint64_t bytes) override { return core_->evict_at_least(bytes); }

  // Evicts unpinned entries in policy order until total_bytes <= target_fraction *
  // max_bytes (runs even when under budget). Returns bytes freed.
  // Requires: target_fraction >= 0 (std::invalid_argument otherwise).
  std::uint64_t evict_under_pressure(double target_fraction) {
    if (!(target_fraction >= 0.0)) {
      throw std::invalid_argument("evict_under_pressure: target_fraction must be >= 0");
    }
    return core_->evict_to(core_->fraction_of_max(target_fraction), RemovalCause::kExpiredByBroker);
  }

  PoolStats stats() const override { return core_->stats(); }

  // The estimated LRU miss ratio with a budget of `bytes`, from the shards' samples (each
  // shard's distances scaled by the shard count); 0 when curve_sampling_rate is 0 or nothing
  // was sampled yet. Takes each shard's lock in turn (replaying its recorded hits).
  double estimated_miss_ratio(std::uint64_t bytes) const {
    return core_->reuse_histogram().miss_ratio(static_cast<double>(bytes));
  }
  std::vector<EntrySnapshot> snapshot() const override { return core_->snapshot(); }

  // Re-loads of entries the ghost remembered as recently evicted (PoolConfig::ghost_max_keys;
  // nullopt when it is 0), with the extra budget each needed, since creation or clear().
  // Takes each shard's lock in turn.
  std::optional<GhostReading> ghost() const override { return core_->ghost_reading(); }

  // PoolUtility, for a broker dividing a global budget (pool_utility.hpp). The curve is
  // estimated_miss_ratio(); it is known only with curve_sampling_rate > 0.
  double miss_ratio(std::uint64_t bytes) const override { return estimated_miss_ratio(bytes); }
  bool curve_known() const override { return core_->config.curve_sampling_rate > 0.0; }
  // Lookups (hits and misses) since creation; clear() does not lower it. Lock-free.
  std::uint64_t accesses() const override { return core_->lookups(); }
  // What one miss costs: the loader's measured time per byte times the bytes one loaded key
  // brings, both moving averages over the load_or_share() / load_many() calls that ran a
  // loader (or asked the tiers below); 0 before the first. Values inserted with insert()
  // are not measured.
  double miss_cost_seconds() const override { return core_->load_cost().miss_cost_seconds(); }
  // The loader's time per byte loaded (seconds), as above; 0 before the first load.
  double loader_seconds_per_byte() const { return core_->load_cost().seconds_per_byte; }
  // set_max_bytes().
  void set_budget(std::uint64_t bytes) override { set_max_bytes(bytes); }

  std::string tier_name() const override { return core_->config.name; }
  std::uint64_t capacity_bytes() const override { return core_->max_bytes(); }

  // Changes the byte budget at run time (a broker or an operator resizing a tier), then
  // evicts down to low_watermark * new_max if the pool is now over it. Returns bytes freed.
  // config().max_bytes keeps the value the pool was created with.
  std::uint64_t set_max_bytes(std::uint64_t new_max) {
    core_->set_max_bytes(new_max);
    core_->share_capacity();
    return core_->enforce_budget();
  }
  std::uint64_t usage_bytes() const override {
    return core_->total_bytes.load(std::memory_order_relaxed);
  }

  // For tests and debugging: takes every shard lock and checks the internal invariants
  // (bytes accounted equal the sum of entry sizes, table and policy agree, counters agree).
  // Returns an empty string when they hold, else a description of the first violation.
  std::string verify_invariants() const { return core_->verify_invariants(); }

  // True when get() reads without taking any lock (K and V are each one lock-free atomic
  // word: integers, pointers, small trivially copyable structs); otherwise get() takes the
  // shard's lock shared. Either way it never takes a lock exclusively on the hit path
  // except to replay a full read ring (once per 64 hits per thread, skipped when contended).
  static constexpr bool lock_free_reads() noexcept { return kOptimisticReads; }

  // Bytes of pool bookkeeping per resident entry beyond sizeof(K) + sizeof(V): the entry
  // header and the record's padding (the hash table's share comes on top, at its current
  // load). For the overhead figure.
  static constexpr std::size_t entry_header_bytes() noexcept {
    return sizeof(Entry) + sizeof(Record) - sizeof(K) - sizeof(V);
  }

 private:
  // ---------------------------------------------------------------------------------------
  using Link = pool_detail::Link;
  static constexpr std::uint32_t kDetachedBit = 1;
  // Set on a header whose entry was destroyed (it sits in the arena's free list until reused).
  static constexpr std::uint32_t kFreedBit = 0x80000000u;
  static constexpr std::uint32_t kLargeSize = 0xffffffffu;
  static constexpr std::uint32_t kPinUnit = 2;
  static constexpr std::int64_t kMaxLoadedSeconds = (std::int64_t{1} << 29) - 1;

  // Keys and values that are single lock-free atomic words (integers, pointers, small
  // trivially copyable structs) are read by get() without taking any lock: a seqlock-style
  // optimistic read validated by the shard table's version (see Core::get). Other types are
  // read under the shard's lock taken shared.
  static constexpr bool kOptimisticReads =
      pool_detail::is_atomic_word<K>() && pool_detail::is_atomic_word<V>();

  // What a lookup reads of an entry: its key and value, in the arena's record array (see
  // SplitArena), apart from the header that the LRU bookkeeping writes. With optimistic
  // reads, lock-free readers may read a record while it is being (re)built, so key and value
  // are written only through atomic_ref, never initialized (the record is not constructed:
  // both are trivially copyable).
  struct Record {
    alignas(pool_detail::atomic_word_alignment<K>()) K key;
    alignas(pool_detail::atomic_word_alignment<V>()) V value;

    // The key and value as a lock-free reader sees them. Requires: kOptimisticReads.
    // Acquire, so the version check that follows cannot be satisfied by a stale version
    // (no standalone fences: ThreadSanitizer does not model them).
    K racy_key() const noexcept {
      return std::atomic_ref<K>(const_cast<K&>(key)).load(std::memory_order_acquire);
    }
    V racy_value() const noexcept {
      return std::atomic_ref<V>(const_cast<V&>(value)).load(std::memory_order_acquire);
    }
  };

  // An entry's header: list links, pin state, recency, size. Its record is found from its
  // address (record()); Entry* is what the policy, pins and read rings hold.
  struct Entry : Link {
    Entry(std::uint32_t size_field, std::uint32_t loaded_s, std::int64_t now)
        : size_small(size_field), loaded_at_s(loaded_s), curve_sampled(0), policy_tag(0) {
      set_last_access(now);
    }
    // pins * kPinUnit | detached, or kFreedBit once destroyed. Detached entries are out of the
    // table and list; the last unpin of a detached entry frees it (exactly one party sees pins
    // reach 0 with the bit set, so exactly one frees).
    std::atomic<std::uint32_t> state{0};
    std::atomic<std::uint32_t> access_count{1};
    // Sizes below 4 GiB live here; kLargeSize means "see the shard's large_sizes map" (only
    // multi-GiB values such as whole models), which keeps the header at 40 bytes.
    std::uint32_t size_small;
    // Seconds since the pool was created (1 s resolution, 17-year range); whether the key is
    // in the shard's miss-ratio sample (set at insert, cleared when the sample drops it: the
    // drain looks at nothing else of the entries it does not sample); and two bits the
    // shard's policy keeps for itself (which of its lists holds the entry). Written only
    // under the shard's exclusive lock.
    std::uint32_t loaded_at_s : 29;
    std::uint32_t curve_sampled : 1;
    std::uint32_t policy_tag : 2;
    // Monotonic ms of the last recorded access. Accessed only through atomic_ref (see
    // last_access()), and without an initializer: the constructor's store is atomic, since
    // a drainer may read a reused header's field racily (it skips freed ones).
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-member-init)
    std::int64_t last_access_raw;

    Record& record() const noexcept { return *static_cast<Record*>(Arena::record_of(this)); }
    const K& key() const noexcept { return record().key; }
    const V& value() const noexcept { return record().value; }

    std::uint32_t pins() const noexcept { return state.load(std::memory_order_acquire) / kPinUnit; }
    std::int64_t last_access() const noexcept {
      return std::atomic_ref<std::int64_t>(const_cast<std::int64_t&>(last_access_raw))
          .load(std::memory_order_relaxed);
    }
    void set_last_access(std::int64_t ms) noexcept {
      std::atomic_ref<std::int64_t>(last_access_raw).store(ms, std::memory_order_relaxed);
    }
  };

  using Arena = pool_detail::SplitArena<sizeof(Record), alignof(Record), sizeof(Entry), alignof(Entry)>;

  static Record* record_of(const Entry* e) noexcept { return &e->record(); }
  // Null for null.
  static Entry* entry_of(const Record* r) noexcept {
    return r == nullptr ? nullptr : static_cast<Entry*>(Arena::header_of(r));
  }

  using Flight = pool_detail::Flight<V>;

  // What the shard's table needs to know of the entry layout (see ChunkedTable).
  struct TableNode {
    using Key = K;
    using Equal = KeyEqual;
    using Entry = PagedResourcePool::Entry;
    using Record = PagedResourcePool::Record;
    static constexpr bool kOptimisticReads = PagedResourcePool::kOptimisticReads;
    static Entry* entry_of(const Record* r) noexcept { return PagedResourcePool::entry_of(r); }
    static Record* record_of(const Entry* e) noexcept { return PagedResourcePool::record_of(e); }
  };
  using Table = pool_detail::ChunkedTable<TableNode>;

  using ReadStripe = pool_detail::ReadStripe<Entry>;
  using StripeRef = pool_detail::StripeRef<Entry>;
  static constexpr std::uint32_t kRingSize = pool_detail::kRingSize;

  // One eviction policy object per shard (see detail/lru_policy.hpp for the seam).
  using ShardPolicy = std::variant<pool_detail::LruPolicy<Entry>, pool_detail::SizeAwareLruPolicy<Entry>,
                                   pool_detail::TinyLfuPolicy<Entry>, pool_detail::CustomPolicy<Entry>>;

  struct ShardGhost {
    explicit ShardGhost(std::size_t max_keys) : keys(max_keys) {}
    pool_detail::GhostKeys keys;
    pool_detail::GhostDepths depths;  // pool-wide depths (scaled by the shard count)
    std::uint64_t hits = 0;
  };

  // Moving averages of what loads cost (see miss_cost_seconds()).
  struct LoadCost {
    double seconds_per_byte = 0.0;
    double bytes_per_key = 0.0;
    double miss_cost_seconds() const noexcept { return seconds_per_byte * bytes_per_key; }
  };

  // Locking rule: the members marked PAGEKEEPER_GUARDED_BY(mutex) are written with `mutex`
  // held exclusively and read with it held at least shared; clang's -Wthread-safety checks
  // it. The only unlocked uses of them are the member functions below marked
  // PAGEKEEPER_NO_THREAD_SAFETY_ANALYSIS (lock-free hits and prefetches).
  struct alignas(64) Shard {
    mutable SharedMutex mutex;
    Table table PAGEKEEPER_GUARDED_BY(mutex);
    ShardPolicy policy PAGEKEEPER_GUARDED_BY(mutex);  // the eviction order of this shard's entries
    Arena arena PAGEKEEPER_GUARDED_BY(mutex);
    std::unordered_map<K, std::shared_ptr<Flight>, Hash, KeyEqual> inflight
        PAGEKEEPER_GUARDED_BY(mutex);
    std::unordered_map<const Entry*, std::uint64_t> large_sizes PAGEKEEPER_GUARDED_BY(mutex);
    std::uint64_t bytes PAGEKEEPER_GUARDED_BY(mutex) = 0;
    // The stripes' hit and miss totals at the last clear() (stats report the difference).
    std::uint64_t hits_at_clear PAGEKEEPER_GUARDED_BY(mutex) = 0;
    std::uint64_t misses_at_clear PAGEKEEPER_GUARDED_BY(mutex) = 0;
    // Whether other threads read this shard at the same time (its stripes then sample).
    pool_detail::ReaderConcurrency readers PAGEKEEPER_GUARDED_BY(mutex);
    // --- atomics ---
    std::atomic<std::uint64_t> pinned_entries{0};
    std::atomic<std::uint64_t> evictions{0};
    // Set at construction. Written by readers without the lock (see ReadStripe); drained
    // under the exclusive lock.
    std::unique_ptr<ReadStripe[]> stripes;
    // This shard's miss-ratio samples; absent when curves are off (config.curve_sampling_rate
    // says which, from construction on).
    std::optional<pool_detail::MissRatioSampler> sampler PAGEKEEPER_GUARDED_BY(mutex);
    // This shard's ghost of evicted keys and the depths of its re-loads; null when off.
    std::unique_ptr<ShardGhost> ghost PAGEKEEPER_GUARDED_BY(mutex);

    // A lock-free reader's probe of the table (kOptimisticReads): read_begin(), then
    // find_racy() and a copy of the value, then read_validate() rejects whatever a writer
    // may have changed meanwhile (a seqlock on the table's version; see ChunkedTable).
    [[gnu::always_inline]] std::uint32_t read_begin() const noexcept
        PAGEKEEPER_NO_THREAD_SAFETY_ANALYSIS {
      return table.read_begin();
    }
    [[gnu::always_inline]] const Record* find_racy(std::uint64_t h, const K& key,
                                                   const KeyEqual& eq) const noexcept
        PAGEKEEPER_NO_THREAD_SAFETY_ANALYSIS {
      return table.find_racy(h, key, eq);
    }
    [[gnu::always_inline]] bool read_validate(std::uint32_t version) const noexcept
        PAGEKEEPER_NO_THREAD_SAFETY_ANALYSIS {
      return table.read_validate(version);
    }
    // Prefetches read only the table's and the policy's atomics and fixed addresses.
    void prefetch(std::uint64_t h) const noexcept PAGEKEEPER_NO_THREAD_SAFETY_ANALYSIS {
      table.prefetch(h);
    }
    void prefetch_insert(std::uint64_t h) const noexcept PAGEKEEPER_NO_THREAD_SAFETY_ANALYSIS {
      std::visit([h](const auto& p) { p.prefetch_insert(h); }, policy);
    }
  };

  struct Core {
    explicit Core(Config cfg) : config(validate(std::move(cfg))) {
      shard_count = choose_shards(config);
      shard_mask = shard_count - 1;
      shards = std::make_unique<Shard[]>(shard_count);
      const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
      stripe_count = std::clamp<std::uint32_t>(2 * hw, 4u, 16u);
      for (std::uint32_t i = 0; i < shard_count; ++i) {
        shards[i].stripes = std::make_unique<ReadStripe[]>(stripe_count + 1);
        if (config.curve_sampling_rate > 0.0) {
          shards[i].sampler.emplace(config.curve_sampling_rate,
                                    std::max<std::size_t>(16, config.curve_max_samples / shard_count));
        }
        if (config.ghost_max_keys > 0) {
          shards[i].ghost = std::make_unique<ShardGhost>(
              std::max<std::size_t>(16, config.ghost_max_keys / shard_count));
        }
        build_policy(shards[i].policy);
        const bool by_hash = std::visit(
            [](const auto& p) { return std::remove_cvref_t<decltype(p)>::kReplaysByHash; },
            shards[i].policy);
        for (std::uint32_t k = 0; k <= stripe_count; ++k) shards[i].stripes[k].carries_hashes = by_hash;
      }
      orders_across_shards = std::visit(
          [](const auto& p) { return std::remove_cvref_t<decltype(p)>::kOrdersAcrossShards; },
          shards[0].policy);
      share_capacity();
      if (!config.key_formatter) {
        config.key_formatter = [](const K& k) { return pool_detail::default_key_text(k); };
      }
    }

    ~Core() {
      for (std::uint32_t i = 0; i < shard_count; ++i) {
        Shard& s = shards[i];
        // Pinned entries still referenced by handles cannot exist here: handles own the core.
        std::vector<Entry*> all;
        s.table.for_each([&](Entry* e) { all.push_back(e); });
        for (Entry* e : all) destroy(s, e);
      }
    }

    static Config validate(Config c) {
      if (c.name.empty()) throw std::invalid_argument("pool config: name must not be empty");
      if (!c.sizer) throw std::invalid_argument("pool config '" + c.name + "': sizer is required");
      if (!c.policy) throw std::invalid_argument("pool config '" + c.name + "': policy is required");
      if (!(c.curve_sampling_rate >= 0.0 && c.curve_sampling_rate <= 1.0)) {
        throw std::invalid_argument("pool config '" + c.name +
                                    "': curve_sampling_rate must be in [0, 1]");
      }
      if (!(c.low_watermark > 0.0 && c.low_watermark <= 1.0)) {
        throw std::invalid_argument("pool config '" + c.name +
                                    "': low_watermark must be in (0, 1]");
      }
      if (c.shards != 0 && (c.shards > 1024 || !std::has_single_bit(c.shards))) {
        throw std::invalid_argument("pool config '" + c.name +
                                    "': shards must be 0 (auto) or a power of two <= 1024");
      }
      return c;
    }

    static std::uint32_t choose_shards(const Config& c) {
      if (c.shards != 0) return c.shards;
      if (c.policy->kind() == EvictionPolicy<V>::Kind::kCustom) return 1;  // exact global order
      if (c.max_bytes < (std::uint64_t{1} << 20)) return 1;
      const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
      return std::clamp<std::uint32_t>(std::bit_ceil(hw * 4u), 4u, 64u);
    }

    std::uint64_t hash_of(const K& key) const { return pool_detail::mix64(hasher(key)); }
    // What the table calls to recover an entry's hash when it must move it.
    auto rehasher() const {
      return [this](const Entry* e) { return hash_of(e->key()); };
    }
    std::uint32_t shard_of(std::uint64_t h) const noexcept {
      return static_cast<std::uint32_t>(h) & shard_mask;
    }

    std::uint64_t fraction_of_max(double fraction) const noexcept {
      const long double v = static_cast<long double>(max_bytes()) * fraction;
      if (v >= static_cast<long double>(UINT64_MAX)) return UINT64_MAX;
      return static_cast<std::uint64_t>(v);  // floor
    }

    // The one place a policy object is built from the configured EvictionPolicy.
    void build_policy(ShardPolicy& p) const {
      switch (config.policy->kind()) {
        case EvictionPolicy<V>::Kind::kLru:
          p.template emplace<pool_detail::LruPolicy<Entry>>();
          return;
        case EvictionPolicy<V>::Kind::kSizeAwareLru:
          p.template emplace<pool_detail::SizeAwareLruPolicy<Entry>>(config.policy->sample());
          return;
        case EvictionPolicy<V>::Kind::kTinyLfu:
          p.template emplace<pool_detail::TinyLfuPolicy<Entry>>(config.policy->tiny_lfu_options(), shard_count);
          return;
        case EvictionPolicy<V>::Kind::kCustom:
          p.template emplace<pool_detail::CustomPolicy<Entry>>();
          return;
      }
    }

    // What policy hooks learn about an entry beyond its header (see lru_policy.hpp). Made
    // under the shard's lock (context_of) and used only within the hook it is passed to.
    struct PolicyContext {
      const Core& core;
      const Shard& shard;
      std::uint64_t size(const Entry* e) const {
        shard.mutex.assert_held_shared();
        return size_of(shard, e);
      }
      std::uint64_t hash(const Entry* e) const { return core.hash_of(e->key()); }
    };
    PolicyContext context_of(const Shard& s) const noexcept { return {*this, s}; }

    // Tells every shard's policy its share of the budget. Takes each shard's lock in turn.
    void share_capacity() {
      const std::uint64_t share = max_bytes() / shard_count;
      for (std::uint32_t i = 0; i < shard_count; ++i) {
        WriterMutexLock lock(shards[i].mutex);
        with_policy(shards[i], [share](auto& policy) { policy.set_capacity(share); });
      }
    }

    // Calls fn(policy) with the shard's policy object as its own type.
    template <class Fn>
    static decltype(auto) with_policy(Shard& s, Fn&& fn) PAGEKEEPER_REQUIRES(s.mutex) {
      return std::visit(std::forward<Fn>(fn), s.policy);
    }

    // The pool's clock: the configured one, else monotonic_ms().
    std::int64_t now_ms() const { return config.clock ? config.clock() : monotonic_ms(); }

    // Replays the shard's read rings into its policy, stamping each entry's recency and
    // access count, and starts or stops the stripes' sampling by how many of them had hits
    // to replay (see ReaderConcurrency; never with a curve sampler). Requires: exclusive
    // lock. Reads recorded while it runs are either replayed or left for the next drain.
    void drain_reads(Shard& s) const noexcept PAGEKEEPER_REQUIRES(s.mutex) {
      std::uint32_t active_stripes = 0;
      std::int64_t now = 0;
      std::uint64_t unsampled = 0;  // replayed hits on keys outside the curve's sample
      // A stripe's hits on sampled keys, in order, with their key hashes where the stripe
      // carries them. The sampler takes them after the policy has applied the whole stripe
      // (see record_sampled_hits): by then their keys, which the second pass starts loading
      // when it has no hash, have arrived (a key read there waited on the load, which was
      // most of what sampling cost a hit).
      std::array<Entry*, kRingSize> sampled_hits;
      std::array<std::uint64_t, kRingSize> sampled_hashes;
      for (std::uint32_t k = 0; k <= stripe_count; ++k) {
        ReadStripe& st = s.stripes[k];
        if (!pool_detail::has_undrained(st)) continue;
        ++active_stripes;
        if (now == 0) now = now_ms();
        std::size_t sampled = 0;
        with_policy(s, [&](auto& policy) {
          pool_detail::drain_stripe(
              st, /*shared=*/k == stripe_count,
              [&](std::uint64_t h) { policy.prefetch_access(h); },
              [](const Entry* e) {
                return (e->state.load(std::memory_order_relaxed) & (kDetachedBit | kFreedBit)) == 0;
              },
              [&](const Entry* e) { return hash_of(e->key()); },
              [&](const Entry* e, std::uint64_t /*h*/) {
                s.mutex.assert_held();  // runs inside this function
                policy.prefetch_relink(e);
                // The key of a sampled hit, for record_sampled_hits. Branch-free (which hits
                // are sampled is as good as random): an unsampled one prefetches its own
                // header, already loaded.
                if (s.sampler && !st.carries_hashes) {
                  const void* key = e->curve_sampled != 0 ? Arena::record_of(e) : static_cast<const void*>(e);
                  __builtin_prefetch(key);
                }
              },
              [&](Entry* e, std::uint64_t h) {
                s.mutex.assert_held();  // runs inside this function
                touch(e, now);
                policy.on_access(e, h, context_of(s));
                if (!s.sampler) return;
                // Branch-free: whether a hit is sampled is as good as random, and a
                // mispredicted branch each cost more than storing every entry.
                const std::size_t is_sampled = e->curve_sampled;
                sampled_hits[sampled] = e;
                sampled_hashes[sampled] = h;
                sampled += is_sampled;
                unsampled += 1 - is_sampled;
              });
        });
        if (sampled != 0) {
          record_sampled_hits(s, sampled_hits.data(), st.carries_hashes ? sampled_hashes.data() : nullptr,
                              sampled);
        }
      }
      if (active_stripes == 0) return;
      if (s.sampler) {
        if (unsampled != 0) s.sampler->count_unsampled(unsampled);
      } else if (const auto mask = s.readers.drained(active_stripes)) {
        // Only without a curve sampler: the curve counts every hit, so all are replayed.
        for (std::uint32_t k = 0; k <= stripe_count; ++k) {
          s.stripes[k].sample_mask.store(*mask, std::memory_order_relaxed);
        }
      }
    }

    // Hands n hits on sampled keys (at most kRingSize) to the sampler, in order, having
    // hashed all their keys (unless `hashes` has their key hashes already) and started
    // loading all their slots first, so those loads overlap. (Prefetching their tree cells
    // as well did not pay.) Requires: exclusive lock on s.
    void record_sampled_hits(Shard& s, Entry* const* hits, const std::uint64_t* hashes,
                             std::size_t n) const noexcept PAGEKEEPER_REQUIRES(s.mutex) {
      std::array<std::uint64_t, kRingSize> sample_hashes;
      for (std::size_t i = 0; i < n; ++i) {
        const std::uint64_t h = hashes != nullptr ? hashes[i] : hash_of(hits[i]->key());
        sample_hashes[i] = pool_detail::MissRatioSampler::sample_hash(h);
        s.sampler->prefetch(sample_hashes[i]);
      }
      for (std::size_t i = 0; i < n; ++i) {
        // An earlier hit of the batch may have dropped this key: access() then only counts it.
        // The header is written only then (rarely).
        if (!record_sample(s, sample_hashes[i], size_of(s, hits[i]))) [[unlikely]] hits[i]->curve_sampled = 0;
      }
    }

    // One access to the key of hash h, of `size` bytes, for the curve. Returns whether the
    // key is (still) in the sample; it never re-enters once out (the sampling threshold only
    // falls). Requires: exclusive lock on s. A sample that cannot be recorded (no memory) is
    // dropped.
    static bool sample(Shard& s, std::uint64_t h, std::uint64_t size) noexcept
        PAGEKEEPER_REQUIRES(s.mutex) {
      return record_sample(s, pool_detail::MissRatioSampler::sample_hash(h), size);
    }
    // sample() of a key whose sample hash is known.
    static bool record_sample(Shard& s, std::uint64_t sample_hash, std::uint64_t size) noexcept
        PAGEKEEPER_REQUIRES(s.mutex) {
      try {
        s.sampler->access(sample_hash, size);
      } catch (...) {  // NOLINT(bugprone-empty-catch): a lost sample only blurs the curve
      }
      return s.sampler->sampled(sample_hash);
    }

    pool_detail::ReuseHistogram reuse_histogram() const {
      pool_detail::ReuseHistogram all;
      if (config.curve_sampling_rate <= 0.0) return all;  // no shard has a sampler
      for (std::uint32_t i = 0; i < shard_count; ++i) {
        Shard& s = shards[i];
        ShardLock lock(*this, s);  // replays the hits still in the read rings first
        all.add(s.sampler->histogram(), static_cast<double>(shard_count));
      }
      return all;
    }

    // Requires: exclusive lock (the only writer of recency and access counts).
    static void touch(Entry* e, std::int64_t now) noexcept {
      e->set_last_access(now);
      e->access_count.store(e->access_count.load(std::memory_order_relaxed) + 1,
                            std::memory_order_relaxed);
    }

    // Holds a shard's lock exclusively from construction to destruction (or unlock()).
    // Taking it replays the shard's recorded reads into its policy first, so that every
    // holder sees current recency. Observers that walk or count the table also call
    // flush_stage(), so that a staged entry and the older one it replaces are never both
    // seen.
    class PAGEKEEPER_SCOPED_CAPABILITY ShardLock {
     public:
      ShardLock(const Core& core, Shard& s) PAGEKEEPER_ACQUIRE(s.mutex) : mutex_(s.mutex) {
        mutex_.lock();
        core.drain_reads(s);
      }
      ~ShardLock() PAGEKEEPER_RELEASE() {
        if (held_) mutex_.unlock();
      }
      ShardLock(const ShardLock&) = delete;
      ShardLock& operator=(const ShardLock&) = delete;

      // Lets go early (before waiting on another caller's load).
      void unlock() PAGEKEEPER_RELEASE() {
        mutex_.unlock();
        held_ = false;
      }

     private:
      SharedMutex& mutex_;
      bool held_ = true;
    };

    // This thread's read stripe of shard s. Threads whose index is below stripe_count own
    // their stripe (indices of live threads are distinct, and a stripe passes to the next
    // holder of an index through the registry's mutex), so its counters take plain
    // increments instead of read-modify-writes: on the hit path that is the difference
    // between a full memory barrier per hit and none. Other threads share the last stripe.
    StripeRef stripe_of(Shard& s) const noexcept {
      const std::uint32_t i = pool_detail::thread_index();
      if (i < stripe_count) return {s.stripes[i], true};
      return {s.stripes[stripe_count], false};
    }

    [[gnu::always_inline]] static void bump(std::atomic<std::uint64_t>& counter, bool owned) noexcept {
      pool_detail::bump(counter, owned);
    }

    static std::uint64_t size_of(const Shard& s, const Entry* e)
        PAGEKEEPER_REQUIRES_SHARED(s.mutex) {
      if (e->size_small != kLargeSize) return e->size_small;
      return s.large_sizes.at(e);
    }

    // ----- entry lifetime (exclusive lock) -----
    Entry* create(Shard& s, K&& key, V&& value, std::uint64_t size, std::int64_t now)
        PAGEKEEPER_REQUIRES(s.mutex) {
      void* header = s.arena.allocate();
      auto* record = static_cast<Record*>(Arena::record_of(header));
      const std::uint32_t size_field = size >= kLargeSize ? kLargeSize : static_cast<std::uint32_t>(size);
      const std::int64_t age_s = std::max<std::int64_t>(0, (now - epoch_ms) / 1000);
      const auto loaded_s = static_cast<std::uint32_t>(std::min<std::int64_t>(age_s, kMaxLoadedSeconds));
      try {
        if (size_field == kLargeSize) s.large_sizes.emplace(static_cast<const Entry*>(header), size);
        if constexpr (kOptimisticReads) {
          // Release: a reader whose acquire load sees these (a reused record) also sees the
          // version change of the erase that freed the record before, and fails validation.
          std::atomic_ref<K>(record->key).store(key, std::memory_order_release);
          std::atomic_ref<V>(record->value).store(value, std::memory_order_release);
        } else {
          ::new (static_cast<void*>(record)) Record{std::move(key), std::move(value)};
        }
      } catch (...) {
        s.large_sizes.erase(static_cast<const Entry*>(header));
        s.arena.deallocate(header);
        throw;
      }
      return std::construct_at(static_cast<Entry*>(header), size_field, loaded_s, now);
    }
    static void destroy(Shard& s, Entry* e) noexcept PAGEKEEPER_REQUIRES(s.mutex) {
      if (e->size_small == kLargeSize) s.large_sizes.erase(e);
      // A read ring may still name this header; the mark tells the drainer to skip it.
      e->state.store(kFreedBit, std::memory_order_relaxed);
      if constexpr (!kOptimisticReads) std::destroy_at(&e->record());
      std::destroy_at(e);
      s.arena.deallocate(e);
    }

    // Removes e from table, policy and accounting, tells the removal listener why, and frees
    // e unless a pin keeps it alive. Requires: exclusive lock on s.
    void detach(Shard& s, Entry* e, std::uint64_t h, RemovalCause cause) noexcept
        PAGEKEEPER_REQUIRES(s.mutex) {
      s.table.erase(h, e);
      with_policy(s, [&](auto& policy) { policy.on_remove(e, context_of(s)); });
      const std::uint64_t size = size_of(s, e);
      s.bytes -= size;
      total_bytes.fetch_sub(size, std::memory_order_relaxed);
      if (config.removal_listener) config.removal_listener(e->key(), e->value(), size, cause);
      if (s.ghost && (cause == RemovalCause::kEvicted || cause == RemovalCause::kExpiredByBroker)) {
        s.ghost->keys.remember(h, size);
      }
      // Unpinned (the common case): nobody can pin it (pin() needs this lock) and nobody
      // holds a pin to release, so no read-modify-write is needed. The acquire pairs with
      // the last unpin's release.
      if (e->state.load(std::memory_order_acquire) == 0) {
        destroy(s, e);
        return;
      }
      const std::uint32_t old = e->state.fetch_or(kDetachedBit, std::memory_order_acq_rel);
      if (old / kPinUnit == 0) {
        destroy(s, e);
      } else {
        s.pinned_entries.fetch_sub(1, std::memory_order_relaxed);
      }
    }

    // Counts one eviction. Requires: exclusive lock on s (the counter's only writers hold it,
    // so a plain increment suffices).
    static void count_eviction(Shard& s) noexcept PAGEKEEPER_REQUIRES(s.mutex) {
      bump(s.evictions, /*owned=*/true);
    }

    // Evicts `victim` (an unpinned entry picked from s by policy), counts it and starts
    // loading the next victim. Returns the bytes freed. Requires: exclusive lock on s.
    std::uint64_t evict_locked(Shard& s, Entry* victim, RemovalCause cause) noexcept
        PAGEKEEPER_REQUIRES(s.mutex) {
      const std::uint64_t size = detach_newest(s, victim, hash_of(victim->key()), cause);
      count_eviction(s);
      prefetch_next_victim(s);
      return size;
    }

    // ----- operations -----
    // True when a hit on e falls inside the promotion delay (counted, not queued).
    [[gnu::always_inline]] bool within_refresh(const Entry* e) const noexcept {
      return config.lru_refresh_ms != 0 &&
             now_ms() - e->last_access() < static_cast<std::int64_t>(config.lru_refresh_ms);
    }

    // Counts the hit on e, whose key has hash h, in this thread's stripe, queued for
    // promotion unless it falls in the promotion delay. Returns true when the caller should
    // try_drain() the shard. Always inlined, as within_refresh: GCC's budget left them out
    // of the hit path.
    [[gnu::always_inline]] bool record_hit(StripeRef st, Entry* e, std::uint64_t h) const noexcept {
      if (within_refresh(e)) {
        bump(st.stripe.unqueued_hits, st.owned);
        return false;
      }
      return pool_detail::record_read(st, e, h);
    }

    // Drains s unless its lock is held: whoever holds it drains on release anyway, so a
    // reader does not queue behind it. Out of line: once per kRingSize hits. Also flushes
    // the insert stage, so that while a pool is only read its lookups skip the stage.
    [[gnu::noinline]] void try_drain(Shard& s) noexcept {
      if (!s.mutex.try_lock()) return;
      drain_reads(s);
      flush_stage(s);
      s.mutex.unlock();
    }

    // Inlined into the caller: on a hit the work is a few dozen instructions around two
    // dependent loads (the home chunk, then the record), and a caller that looks up many keys in a
    // row (a batch, a scan) gets several lookups in flight at once only if each is short.
    [[gnu::always_inline]] std::optional<V> get(const K& key) { return get_hashed(key, hash_of(key)); }

    // get() of a key whose hash (hash_of) the caller computed. The inline part is the
    // lock-free hit: one probe, validated; everything else (a miss, a writer removing entries,
    // types read under the lock) goes to get_retry().
    [[gnu::always_inline]] std::optional<V> get_hashed(const K& key, std::uint64_t h) {
      if constexpr (kOptimisticReads) {
        Shard& s = shards[shard_of(h)];
        const std::uint32_t version = s.read_begin();
        if (const Record* r = s.find_racy(h, key, key_equal)) [[likely]] {
          const V value = r->racy_value();
          if (s.read_validate(version)) [[likely]] {
            if (record_hit(stripe_of(s), entry_of(r), h)) [[unlikely]] try_drain(s);
            return value;
          }
        }
      }
      return get_retry(key, h);
    }

    // The rest of get(): a miss, or a lock-free read that met a writer (a few retries, then
    // the shared lock), or a type that is always read under the lock.
    [[gnu::noinline]] std::optional<V> get_retry(const K& key, std::uint64_t h) {
      Shard& s = shards[shard_of(h)];
      const StripeRef st = stripe_of(s);
      if constexpr (kOptimisticReads) {
        // Lock-free: probe, copy the value, then check that no writer removed an entry meanwhile.
        for (int attempt = 0; attempt < 4; ++attempt) {
          const std::uint32_t version = s.read_begin();
          if ((version & 1u) != 0) break;
          const Record* r = s.find_racy(h, key, key_equal);
          V value{};
          if (r != nullptr) value = r->racy_value();
          if (!s.read_validate(version)) continue;
          if (r == nullptr) {
            bump(st.stripe.misses, st.owned);
            return std::nullopt;
          }
          if (record_hit(st, entry_of(r), h)) try_drain(s);
          return value;
        }
      }
      return get_locked(s, st, h, key);
    }

    // get() under the shard's lock taken shared: for keys and values that are not atomic
    // words, and for lock-free reads that kept meeting a writer.
    [[gnu::noinline]] std::optional<V> get_locked(Shard& s, StripeRef st, std::uint64_t h,
                                                   const K& key) {
      std::optional<V> result;
      Entry* e = nullptr;
      {
        ReaderMutexLock lock(s.mutex);
        e = s.table.find(h, key, key_equal);
        if (e == nullptr) {
          bump(st.stripe.misses, st.owned);
          return std::nullopt;
        }
        result.emplace(e->value());
        if (!record_hit(st, e, h)) return result;
      }
      try_drain(s);
      return result;
    }

    bool contains(const K& key) const {
      const std::uint64_t h = hash_of(key);
      Shard& s = shards[shard_of(h)];
      ReaderMutexLock lock(s.mutex);
      return s.table.find(h, key, key_equal) != nullptr;
    }

    std::pair<Entry*, std::uint32_t> pin(const K& key) {
      const std::uint64_t h = hash_of(key);
      const std::uint32_t si = shard_of(h);
      Shard& s = shards[si];
      // Pins are rare next to reads: take the lock exclusively and refresh recency directly
      // (a pin is not a hit, so it must not go through the read buffer).
      ShardLock lock(*this, s);
      Entry* e = s.table.find(h, key, key_equal);
      if (e == nullptr) return {nullptr, si};
      const std::uint32_t old = e->state.fetch_add(kPinUnit, std::memory_order_acq_rel);
      if (old / kPinUnit == 0) s.pinned_entries.fetch_add(1, std::memory_order_relaxed);
      e->set_last_access(now_ms());
      with_policy(s, [&](auto& policy) { policy.on_pin(e, context_of(s)); });
      return {e, si};
    }

    void unpin(std::uint32_t si, Entry* e) noexcept {
      Shard& s = shards[si];
      // Not the last pin: no lock (pin() holds the lock exclusively, so the count cannot
      // rise from under a holder of the shared lock below).
      std::uint32_t current = e->state.load(std::memory_order_relaxed);
      while (current / kPinUnit > 1) {
        if (e->state.compare_exchange_weak(current, current - kPinUnit, std::memory_order_acq_rel)) {
          return;
        }
      }
      // The last pin: its count and the shard's pinned_entries change together under the
      // shard lock, so a holder of the lock (verify_invariants, eviction) never sees one
      // without the other.
      std::uint32_t old = 0;
      {
        ReaderMutexLock lock(s.mutex);
        old = e->state.fetch_sub(kPinUnit, std::memory_order_acq_rel);
        if (old / kPinUnit != 1) return;  // another handle released in between
        if ((old & kDetachedBit) == 0) {
          s.pinned_entries.fetch_sub(1, std::memory_order_relaxed);
          return;
        }
      }
      // Last pin of an entry that was forcibly removed: nobody else can reach it; free it.
      WriterMutexLock lock(s.mutex);
      destroy(s, e);
    }

    // Requires: exclusive lock on s. Inserts or replaces (a replaced main-table entry goes at
    // the next flush of the stage). Strong guarantee: if it throws (building the entry, or
    // growing the table), the shard is as it was, an older value for the key included.
    void insert_locked(Shard& s, std::uint64_t h, K&& key, V&& value, std::uint64_t size)
        PAGEKEEPER_REQUIRES(s.mutex) {
      // Built before anything else changes: building is what may throw.
      Entry* e = create(s, std::move(key), std::move(value), size, now_ms());
      // Only the stage is searched here: an older entry in the main array is found and
      // detached when the stage is flushed (until then lookups see the staged one). When an
      // older one is staged, detaching it frees a stage position and the table already has
      // room for it (stage() made room when it came), so staging the new one cannot throw.
      if (Entry* old = s.table.find_staged(h, e->key(), key_equal)) {
        detach(s, old, h, RemovalCause::kReplaced);
      }
      try {
        if (s.table.stage_full()) flush_stage(s);
        s.table.stage(h, e, rehasher());
      } catch (...) {  // the table could not grow: nothing was inserted
        destroy(s, e);
        throw;
      }
      with_policy(s, [&](auto& policy) { policy.on_insert(e, context_of(s)); });
      if (s.sampler) e->curve_sampled = sample(s, h, size) ? 1 : 0;
      if (s.ghost) recall_ghost(s, h);
      s.bytes += size;
      total_bytes.fetch_add(size, std::memory_order_relaxed);
    }

    // An insert of the key of hash h: counts a re-load if the ghost remembers its eviction.
    // Requires: exclusive lock on s.
    void recall_ghost(Shard& s, std::uint64_t h) const noexcept PAGEKEEPER_REQUIRES(s.mutex) {
      if (const auto depth = s.ghost->keys.recall(h)) {
        ++s.ghost->hits;
        s.ghost->depths.add(*depth * shard_count);
      }
    }

    // Moves s's staged entries into its main table, detaching the older entries they
    // replace (a replacement, not an eviction). The home lines of all of them are loaded
    // together first. Requires: exclusive lock on s.
    void flush_stage(Shard& s) noexcept PAGEKEEPER_REQUIRES(s.mutex) {
      const std::uint32_t n = s.table.staged_count();
      if (n == 0) return;
      for (std::uint32_t k = 0; k < n; ++k) s.table.prefetch(s.table.staged_hash(k));
      for (std::uint32_t k = 0; k < n; ++k) {
        if (Entry* old = s.table.place_staged_unless_present(k, key_equal)) {
          detach(s, old, s.table.staged_hash(k), RemovalCause::kReplaced);
          s.table.place_staged(k);
        }
      }
      s.table.end_flush();
    }

    // Detaches e, the newest entry for its key (the one lookups return), for `cause`. If e
    // is still staged, an older entry for the key in the main table is detached too (as
    // replaced): it would otherwise become visible again. Returns the bytes freed.
    // Requires: exclusive lock on s.
    std::uint64_t detach_newest(Shard& s, Entry* e, std::uint64_t h, RemovalCause cause) noexcept
        PAGEKEEPER_REQUIRES(s.mutex) {
      Entry* older = s.table.is_staged(h, e) ? s.table.find_main(h, e->key(), key_equal) : nullptr;
      std::uint64_t freed = size_of(s, e);
      if (older != nullptr) {
        freed += size_of(s, older);
        detach(s, older, h, RemovalCause::kReplaced);
      }
      detach(s, e, h, cause);
      return freed;
    }

    // Requires: exclusive lock on s. Removes a stale entry for a value that will not be cached.
    void reject_oversize_locked(Shard& s, std::uint64_t h, const K& key)
        PAGEKEEPER_REQUIRES(s.mutex) {
      rejected_oversize.fetch_add(1, std::memory_order_relaxed);
      if (Entry* old = s.table.find(h, key, key_equal)) detach_newest(s, old, h, RemovalCause::kReplaced);
    }

    bool insert(K key, V value, std::uint64_t size) {
      const std::uint64_t h = hash_of(key);
      Shard& s = shards[shard_of(h)];
      // The key's home line, needed when the stage is flushed (it often stays cached until
      // then) or at once when it already holds the key.
      s.prefetch(h);
      // Likewise what the policy will touch for it (needs no lock either).
      s.prefetch_insert(h);
      {
        ShardLock lock(*this, s);
        if (size > max_bytes()) {
          reject_oversize_locked(s, h, key);
          return false;
        }
        // Room is made before the lookup of the new key, so that in a large pool the
        // eviction work overlaps the load of the key's table slot. The cost: a replacing
        // insert into a full pool may evict up to the replaced value's size more than
        // strictly needed.
        make_room_locked(s, size);
        insert_locked(s, h, std::move(key), std::move(value), size);
      }
      enforce_budget(shard_of(h));
      return true;
    }

    // Before an insert of `incoming` bytes into s would put the pool over budget, evicts
    // from s (down to the low watermark, as enforce_budget() would after the insert) under
    // the lock the insert already holds: one lock round instead of two, and in a large pool
    // the victims' lines are already in cache (prefetch_next_victim) while the new key's
    // slot is still loading. Custom policies order across shards: enforce_budget() handles
    // them. Requires: exclusive lock on s.
    void make_room_locked(Shard& s, std::uint64_t incoming) noexcept PAGEKEEPER_REQUIRES(s.mutex) {
      if (orders_across_shards) return;
      if (total_bytes.load(std::memory_order_relaxed) + incoming <= max_bytes()) return;
      const std::uint64_t target = low_watermark_bytes();
      while (total_bytes.load(std::memory_order_relaxed) + incoming > target) {
        Entry* victim = pick_victim(s);
        if (victim == nullptr) return;
        evict_locked(s, victim, RemovalCause::kEvicted);
      }
    }

    static constexpr std::uint32_t kAnyShard = UINT32_MAX;

    // `near`: the shard just written, whose tail is compared first (see oldest_shard).
    std::uint64_t enforce_budget(std::uint32_t near = kAnyShard) {
      if (total_bytes.load(std::memory_order_relaxed) > max_bytes()) {
        return evict_to(low_watermark_bytes(), RemovalCause::kEvicted, near);
      }
      return 0;
    }

    std::uint64_t max_bytes() const noexcept { return max_bytes_.load(std::memory_order_relaxed); }
    std::uint64_t low_watermark_bytes() const noexcept {
      return low_watermark_bytes_.load(std::memory_order_relaxed);
    }
    void set_max_bytes(std::uint64_t new_max) noexcept {
      max_bytes_.store(new_max, std::memory_order_relaxed);
      low_watermark_bytes_.store(fraction_of_max(config.low_watermark), std::memory_order_relaxed);
    }

    static double seconds_since(std::chrono::steady_clock::time_point start) noexcept {
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }

    template <class Loader>
    V invoke_loader(Loader& loader, const K& key) {
      if constexpr (std::is_invocable_v<Loader&, const K&>) {
        return loader(key);
      } else {
        return loader();
      }
    }

    // Inserts a loaded value if `flight` still owns the slot for `key` (clear() detaches
    // slots), and frees the slot. Requires: exclusive lock on s.
    bool complete_locked(Shard& s, std::uint64_t h, const K& key,
                         const std::shared_ptr<Flight>& flight, const V& value,
                         std::uint64_t size) PAGEKEEPER_REQUIRES(s.mutex) {
      auto it = s.inflight.find(key);
      if (it == s.inflight.end() || it->second != flight) return false;
      s.inflight.erase(it);
      inflight_count.fetch_sub(1, std::memory_order_relaxed);
      if (size > max_bytes()) {
        reject_oversize_locked(s, h, key);
        return false;
      }
      K k = key;
      V v = value;
      make_room_locked(s, size);  // as insert() does: same lock, this shard's victims
      insert_locked(s, h, std::move(k), std::move(v), size);
      return true;
    }

    // Requires: exclusive lock on s.
    void abandon_locked(Shard& s, const K& key, const std::shared_ptr<Flight>& flight)
        PAGEKEEPER_REQUIRES(s.mutex) {
      auto it = s.inflight.find(key);
      if (it != s.inflight.end() && it->second == flight) {
        s.inflight.erase(it);
        inflight_count.fetch_sub(1, std::memory_order_relaxed);
      }
    }

    template <class Loader>
    V load_missing(const K& key, Loader&& loader, LoadManyStats& stats) {
      const std::uint64_t h = hash_of(key);
      Shard& s = shards[shard_of(h)];
      std::shared_ptr<Flight> flight;
      {
        ShardLock lock(*this, s);
        if (Entry* e = s.table.find(h, key, key_equal)) {  // raced in
          stats.hits = 1;
          return e->value();
        }
        auto it = s.inflight.find(key);
        if (it != s.inflight.end()) {
          std::shared_ptr<Flight> joined = it->second;
          joined->joined = true;
          lock.unlock();
          stats.joined = 1;
          return joined->wait();  // rethrows the loader's exception
        }
        stats.loaded = 1;
        stats.loader_keys = 1;
        flight = std::make_shared<Flight>();
        s.inflight.emplace(key, flight);
        inflight_count.fetch_add(1, std::memory_order_relaxed);
      }
      std::optional<V> value;
      std::uint64_t size = 0;
      const auto load_start = std::chrono::steady_clock::now();
      try {
        if (config.tiers) {
          const std::vector<K> one{key};
          auto load_one = [&](const std::vector<K>&) {
            std::vector<V> produced;
            produced.push_back(invoke_loader(loader, key));
            return produced;
          };
          std::vector<V> values = pool_detail::load_through(*config.tiers, one, load_one, stats.from_tiers,
                                                                 stats.from_tier);
          if (values.size() != 1) throw LoadError("pool '" + config.name + "': tiers lost a value");
          stats.loader_keys = 1 - stats.from_tiers;
          value.emplace(std::move(values.front()));
        } else {
          value.emplace(invoke_loader(loader, key));
        }
        size = config.sizer(*value);
        record_load(seconds_since(load_start), size, 1);
      } catch (...) {
        {
          ShardLock lock(*this, s);
          abandon_locked(s, key, flight);
        }
        flight->set_exception(std::current_exception());
        throw;
      }
      bool inserted = false;
      {
        ShardLock lock(*this, s);
        inserted = complete_locked(s, h, key, flight, *value, size);
      }
      if (flight->joined) flight->set_value(*value);
      if (inserted) enforce_budget(shard_of(h));
      return std::move(*value);
    }

    // Distinct missing keys -> positions in `keys` (the first inline: duplicates are rare,
    // and this runs per key on the all-miss path).
    struct Pending {
      std::uint64_t hash;
      std::size_t first_position;
      std::vector<std::size_t> more_positions;
      std::shared_ptr<Flight> flight;  // ours, or the one we joined
      bool ours = false;
      bool resolved = false;  // found resident after all (raced in)

      std::size_t count() const noexcept { return 1 + more_positions.size(); }
      template <class Fn>
      void for_each_position(Fn&& fn) const {
        fn(first_position);
        for (std::size_t pos : more_positions) fn(pos);
      }
    };

    template <class BatchLoader>
    std::vector<V> load_many(const std::vector<K>& keys, BatchLoader&& batch_loader,
                             LoadManyStats* out_stats) {
      LoadManyStats local;
      std::vector<std::optional<V>> results(keys.size());
      // Every key's table home line first, so that in a large pool the batch waits on
      // memory about once rather than once per key.
      std::vector<std::uint64_t> hashes(keys.size());
      for (std::size_t i = 0; i < keys.size(); ++i) {
        hashes[i] = hash_of(keys[i]);
        shards[shard_of(hashes[i])].prefetch(hashes[i]);
      }
      // The distinct missing keys (a key is keys[first_position]), found again through a
      // small open-addressing index over this call's keys: no allocation per key.
      std::vector<Pending> pending;
      pending.reserve(keys.size());  // never reallocates: pointers into it stay valid
      constexpr std::uint32_t kNoPending = UINT32_MAX;
      const std::size_t index_mask = std::bit_ceil(std::max<std::size_t>(2 * keys.size(), 2)) - 1;
      std::vector<std::uint32_t> index(index_mask + 1, kNoPending);
      for (std::size_t i = 0; i < keys.size(); ++i) {
        std::size_t slot = hashes[i] & index_mask;
        Pending* duplicate = nullptr;
        for (; index[slot] != kNoPending; slot = (slot + 1) & index_mask) {
          Pending& p = pending[index[slot]];
          if (p.hash == hashes[i] && key_equal(keys[p.first_position], keys[i])) {
            duplicate = &p;
            break;
          }
        }
        if (duplicate != nullptr) {
          // A duplicate of a key this call already found missing: count the lookup as a miss
          // too, so hits + misses equals lookups.
          const StripeRef st = stripe_of(shards[shard_of(duplicate->hash)]);
          bump(st.stripe.misses, st.owned);
          duplicate->more_positions.push_back(i);
          continue;
        }
        if (auto hit = get_hashed(keys[i], hashes[i])) {
          results[i] = std::move(hit);
          ++local.hits;
          continue;
        }
        index[slot] = static_cast<std::uint32_t>(pending.size());
        Pending& p = pending.emplace_back();
        p.hash = hashes[i];
        p.first_position = i;
      }

      // Claim in-flight slots (or join others'), shard by shard: missing keys are visited in
      // shard order so each shard's lock is taken once per batch, not once per key.
      std::vector<std::pair<std::uint32_t, Pending*>> by_shard;
      by_shard.reserve(pending.size());
      for (Pending& p : pending) by_shard.emplace_back(shard_of(p.hash), &p);
      std::sort(by_shard.begin(), by_shard.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
      std::vector<K> to_load;
      std::vector<Pending*> ours;  // in shard order, like to_load
      to_load.reserve(by_shard.size());
      ours.reserve(by_shard.size());
      // This call's flights in one allocation (each handed out through an aliasing pointer)
      // rather than one per missing key.
      std::shared_ptr<Flight[]> flights;
      std::size_t flights_used = 0;
      for (std::size_t begin = 0; begin < by_shard.size();) {
        const std::uint32_t si = by_shard[begin].first;
        Shard& s = shards[si];
        ShardLock lock(*this, s);
        std::size_t end = begin;
        for (; end < by_shard.size() && by_shard[end].first == si; ++end) {
          Pending& p = *by_shard[end].second;
          const K& key = keys[p.first_position];
          if (Entry* e = s.table.find(p.hash, key, key_equal)) {  // raced in
            p.for_each_position([&](std::size_t pos) { results[pos] = e->value(); });
            local.hits += p.count();
            p.resolved = true;
            continue;
          }
          auto it = s.inflight.find(key);
          if (it != s.inflight.end()) {
            p.flight = it->second;
            p.flight->joined = true;
            continue;
          }
          // (Not make_shared<Flight[]>: libstdc++ 12 copies a prototype element into each.)
          if (!flights) flights = std::shared_ptr<Flight[]>(new Flight[by_shard.size()]);
          p.flight = std::shared_ptr<Flight>(flights, &flights[flights_used++]);
          p.ours = true;
          s.inflight.emplace(key, p.flight);
          inflight_count.fetch_add(1, std::memory_order_relaxed);
          to_load.push_back(key);
          ours.push_back(&p);
        }
        begin = end;
      }

      if (!to_load.empty()) {
        std::vector<V> values;
        std::vector<std::uint64_t> sizes;
        const auto load_start = std::chrono::steady_clock::now();
        try {
          values = config.tiers
                       ? pool_detail::load_through(*config.tiers, to_load, batch_loader, local.from_tiers,
                                                   local.from_tier)
                       : batch_loader(static_cast<const std::vector<K>&>(to_load));
          if (values.size() != to_load.size()) {
            throw LoadError("pool '" + config.name + "': batch loader returned " +
                            std::to_string(values.size()) + " values for " +
                            std::to_string(to_load.size()) + " keys");
          }
          sizes.reserve(values.size());
          std::uint64_t loaded_bytes = 0;
          for (const V& v : values) {
            sizes.push_back(config.sizer(v));
            loaded_bytes += sizes.back();
          }
          record_load(seconds_since(load_start), loaded_bytes, values.size());
        } catch (...) {
          const std::exception_ptr error = std::current_exception();
          for (std::size_t j = 0; j < ours.size(); ++j) {
            Shard& s = shards[shard_of(ours[j]->hash)];
            {
              ShardLock lock(*this, s);
              abandon_locked(s, to_load[j], ours[j]->flight);
            }
            if (ours[j]->flight->joined) ours[j]->flight->set_exception(error);
          }
          throw;
        }
        // Insert shard by shard (ours is in shard order), then wake joiners outside locks.
        bool inserted = false;
        for (std::size_t begin = 0; begin < ours.size();) {
          const std::uint32_t si = shard_of(ours[begin]->hash);
          std::size_t end = begin;
          {
            Shard& s = shards[si];
            ShardLock shard_lock(*this, s);
            for (; end < ours.size() && shard_of(ours[end]->hash) == si; ++end) {
              inserted |= complete_locked(s, ours[end]->hash, to_load[end], ours[end]->flight,
                                          values[end], sizes[end]);
            }
          }
          for (std::size_t j = begin; j < end; ++j) {
            Pending& p = *ours[j];
            if (p.flight->joined) p.flight->set_value(values[j]);
            for (std::size_t pos : p.more_positions) results[pos] = values[j];
            results[p.first_position] = std::move(values[j]);  // its last use
            local.loaded += p.count();
          }
          begin = end;
        }
        local.loader_keys = to_load.size() - local.from_tiers;
        if (inserted) enforce_budget();
      }

      // Wait for loads we joined (after completing ours, so two batches joining each other
      // cannot deadlock).
      for (Pending& p : pending) {
        if (p.ours || p.resolved) continue;
        const V& v = p.flight->wait();  // rethrows the other loader's failure
        p.for_each_position([&](std::size_t pos) { results[pos] = v; });
        local.joined += p.count();
      }

      std::vector<V> out;
      out.reserve(results.size());
      for (auto& r : results) out.push_back(std::move(*r));
      if (out_stats != nullptr) *out_stats = local;
      return out;
    }

    bool erase_key(const K& key) {
      const std::uint64_t h = hash_of(key);
      Shard& s = shards[shard_of(h)];
      ShardLock lock(*this, s);
      Entry* e = s.table.find(h, key, key_equal);
      if (e == nullptr) return false;
      detach_newest(s, e, h, RemovalCause::kErased);
      count_eviction(s);
      return true;
    }

    std::size_t clear() {
      std::size_t dropped = 0;
      for (std::uint32_t i = 0; i < shard_count; ++i) {
        Shard& s = shards[i];
        ShardLock lock(*this, s);
        std::vector<Entry*> all;
        all.reserve(s.table.size());
        s.table.for_each([&](Entry* e) { all.push_back(e); });
        for (Entry* e : all) detach(s, e, hash_of(e->key()), RemovalCause::kCleared);
        s.arena.reset_if_unused();  // not while a handle still pins a dropped entry
        dropped += all.size();
        inflight_count.fetch_sub(s.inflight.size(), std::memory_order_relaxed);
        s.inflight.clear();
        if (s.ghost) s.ghost = std::make_unique<ShardGhost>(s.ghost->keys.capacity());
        s.hits_at_clear = stripe_hits(s);
        s.misses_at_clear = stripe_misses(s);
        s.evictions.store(0, std::memory_order_relaxed);
      }
      rejected_oversize.store(0, std::memory_order_relaxed);
      return dropped;
    }

    // ----- eviction -----
    // Asks shard s's policy for its next victim (policies that order within a shard).
    // Returns nullptr when s has no unpinned entry. Requires: exclusive lock.
    Entry* pick_victim(Shard& s) noexcept PAGEKEEPER_REQUIRES(s.mutex) {
      const std::size_t limit = s.table.size();
      return with_policy(s, [&](auto& policy) {
        return policy.victim(limit, context_of(s));
      });
    }

    // In a pool larger than the caches every eviction would wait on memory four times: for
    // the victim's header, its record (the key, to find its table slot), its predecessor
    // (whose link changes) and its home line in the table. After each eviction the next
    // victim's header is already in cache (its link just changed), and its record was
    // started one eviction ago: start loading its predecessor's header and record, and its
    // own home line, now; the next eviction from this shard finds all of them in cache.
    // Requires: exclusive lock on s.
    void prefetch_next_victim(Shard& s) const noexcept PAGEKEEPER_REQUIRES(s.mutex) {
      with_policy(s, [&](const auto& policy) {
        policy.prefetch_victim([&](const Entry* next, const Link* after) {
          // Both lines of the header (40 bytes may straddle two). A record's address is
          // arithmetic on its header's, so it needs no load (for a list's sentinel it is a
          // harmless address: a prefetch never faults).
          __builtin_prefetch(after, 1);
          __builtin_prefetch(reinterpret_cast<const char*>(after) + sizeof(Entry) - 1, 1);
          __builtin_prefetch(Arena::record_of(after));
          const std::uint64_t h = hash_of(next->key());
          s.prefetch(h);
          return h;
        });
      });
    }

    // Where to evict next. After an insert (`near` given) it is the shard written, as in
    // LevelDB's sharded cache: keys hash uniformly, so shard tails age alike, and peeking at
    // other shards' tails would cost cache misses on every insert of a large pool; other
    // shards are used only when that one has no unpinned entry left. Otherwise (broker
    // relief, explicit calls) the shard whose least recent candidate is oldest, by a cheap
    // peek at every tail; ties go to the shard after `rotor` so none is favoured.
    std::uint32_t oldest_shard(std::uint32_t near) noexcept {
      if (near != kAnyShard) return near;
      const std::uint32_t start = rotor.fetch_add(1, std::memory_order_relaxed) & shard_mask;
      std::uint32_t best = start;
      std::int64_t best_age = INT64_MAX;
      for (std::uint32_t k = 0; k < shard_count; ++k) {
        const std::uint32_t i = (start + k) & shard_mask;
        const std::int64_t t = tail_hint(shards[i]);
        if (t < best_age) {
          best_age = t;
          best = i;
        }
      }
      return best;
    }

    // A racy read of the shard's tail timestamp: only a hint for choosing where to evict.
    static std::int64_t tail_hint(Shard& s) noexcept {
      if (!s.mutex.try_lock_shared()) return INT64_MAX - 1;
      const std::int64_t coldest = std::visit(
          [](const auto& policy) { return policy.coldest_access(); }, std::as_const(s.policy));
      s.mutex.unlock_shared();
      return coldest;
    }

    // Evicts unpinned entries in policy order while `more(freed)` holds, telling the removal
    // listener `cause`. Returns bytes freed.
    template <class More>
    std::uint64_t evict_while(More&& more, RemovalCause cause, std::uint32_t near = kAnyShard) {
      if (orders_across_shards) return rank_all_and_evict(more, cause);
      std::uint64_t freed = 0;
      if (shard_count == 1) {
        Shard& s = shards[0];
        ShardLock lock(*this, s);
        while (more(freed)) {
          Entry* victim = pick_victim(s);
          if (victim == nullptr) break;
          freed += evict_locked(s, victim, cause);
        }
        return freed;
      }
      std::bitset<1024> exhausted;  // shard_count <= 1024; no allocation on the insert path
      std::uint32_t exhausted_count = 0;
      while (more(freed) && exhausted_count < shard_count) {
        if (near != kAnyShard && exhausted[near]) near = kAnyShard;
        std::uint32_t si = oldest_shard(near);
        if (exhausted[si]) {
          // Hints can be stale; fall back to the next shard that still has candidates.
          const std::uint32_t base = si;
          for (std::uint32_t k = 1; k < shard_count && exhausted[si]; ++k) {
            si = (base + k) & shard_mask;
          }
        }
        Shard& s = shards[si];
        ShardLock lock(*this, s);
        // Take a few victims per lock to amortize it; hints are refreshed per round.
        for (int n = 0; n < 8 && more(freed); ++n) {
          Entry* victim = pick_victim(s);
          if (victim == nullptr) {
            exhausted[si] = true;
            ++exhausted_count;
            break;
          }
          freed += evict_locked(s, victim, cause);
        }
      }
      return freed;
    }

    // Eviction for policies that rank the whole pool at once (custom priorities).
    template <class More>
    std::uint64_t rank_all_and_evict(More& more, RemovalCause cause) {
      // Take every shard lock in index order (the only multi-lock path, always in this order).
      // The analysis cannot follow locks held in a container: each use below asserts its
      // shard's lock, held from here to the end of the function.
      std::vector<std::unique_lock<SharedMutex>> locks;
      locks.reserve(shard_count);
      for (std::uint32_t i = 0; i < shard_count; ++i) {
        Shard& s = shards[i];
        locks.emplace_back(s.mutex);
        s.mutex.assert_held();
        drain_reads(s);
        flush_stage(s);  // so that no candidate replaces another
      }
      struct Candidate {
        std::int64_t priority;
        std::uint32_t shard;
        Entry* entry;
      };
      std::vector<Candidate> candidates;
      const auto& fn = config.policy->priority();
      for (std::uint32_t i = 0; i < shard_count; ++i) {
        Shard& s = shards[i];
        s.mutex.assert_held();
        s.table.for_each([&](Entry* e) {
          s.mutex.assert_held();
          if (e->pins() > 0) return;
          const std::int64_t p = fn(view_of(s, e), e->value());
          if (p != kNeverEvict) candidates.push_back({p, i, e});
        });
      }
      std::sort(candidates.begin(), candidates.end(),
                [](const Candidate& a, const Candidate& b) { return a.priority < b.priority; });
      std::uint64_t freed = 0;
      for (const Candidate& c : candidates) {
        if (!more(freed)) break;
        Shard& s = shards[c.shard];
        s.mutex.assert_held();
        freed += size_of(s, c.entry);
        detach(s, c.entry, hash_of(c.entry->key()), cause);
        count_eviction(s);
      }
      return freed;
    }

    std::uint64_t evict_at_least(std::uint64_t want) {
      if (want == 0) return 0;
      return evict_while([want](std::uint64_t freed) { return freed < want; }, RemovalCause::kExpiredByBroker);
    }

    std::uint64_t evict_to(std::uint64_t target, RemovalCause cause, std::uint32_t near = kAnyShard) {
      return evict_while(
          [this, target](std::uint64_t) { return total_bytes.load(std::memory_order_relaxed) > target; },
          cause, near);
    }

    EntryView view_of(const Shard& s, const Entry* e) const PAGEKEEPER_REQUIRES_SHARED(s.mutex) {
      EntryView v;
      v.size_bytes = size_of(s, e);
      v.pin_count = e->pins();
      v.loaded_at_ms = epoch_ms + static_cast<std::int64_t>(e->loaded_at_s) * 1000;
      v.last_access_at_ms = e->last_access();
      v.access_count = e->access_count.load(std::memory_order_relaxed);
      return v;
    }

    // ----- observation -----
    // Totals since the pool was created (clear() subtracts its snapshot of them).
    std::uint64_t stripe_hits(const Shard& s) const noexcept {
      std::uint64_t n = 0;
      for (std::uint32_t k = 0; k <= stripe_count; ++k) {
        n += s.stripes[k].recorded.load(std::memory_order_relaxed) +
             s.stripes[k].unqueued_hits.load(std::memory_order_relaxed);
      }
      return n;
    }
    std::uint64_t stripe_misses(const Shard& s) const noexcept {
      std::uint64_t n = 0;
      for (std::uint32_t k = 0; k <= stripe_count; ++k) {
        n += s.stripes[k].misses.load(std::memory_order_relaxed);
      }
      return n;
    }

    // Not const: flushes the stages, so that an entry replaced by a staged one is not
    // counted beside it.
    PoolStats stats() {
      PoolStats st;
      st.name = config.name;
      for (std::uint32_t i = 0; i < shard_count; ++i) {
        Shard& s = shards[i];
        {
          ShardLock lock(*this, s);
          flush_stage(s);  // so that a staged entry and the one it replaces count once
          st.entry_count += s.table.size();
          st.hits += stripe_hits(s) - s.hits_at_clear;
          st.misses += stripe_misses(s) - s.misses_at_clear;
          if (s.ghost) st.ghost_hits += s.ghost->hits;
        }
        st.pinned_count += s.pinned_entries.load(std::memory_order_relaxed);
        st.evictions += s.evictions.load(std::memory_order_relaxed);
      }
      st.total_bytes = total_bytes.load(std::memory_order_relaxed);
      st.max_bytes = max_bytes();
      st.pressure = st.max_bytes == 0
                        ? 0.0
                        : static_cast<double>(st.total_bytes) / static_cast<double>(st.max_bytes);
      st.inflight = inflight_count.load(std::memory_order_relaxed);
      st.rejected_oversize = rejected_oversize.load(std::memory_order_relaxed);
      return st;
    }

    std::optional<GhostReading> ghost_reading() {
      if (config.ghost_max_keys == 0) return std::nullopt;
      GhostReading reading;
      for (std::uint32_t i = 0; i < shard_count; ++i) {
        Shard& s = shards[i];
        WriterMutexLock lock(s.mutex);
        reading.hits += s.ghost->hits;
        reading.depths.add(s.ghost->depths);
      }
      return reading;
    }

    // Lookups since creation, never lowered by clear(). Relaxed reads of the stripes.
    std::uint64_t lookups() const noexcept {
      std::uint64_t n = 0;
      for (std::uint32_t i = 0; i < shard_count; ++i) n += stripe_hits(shards[i]) + stripe_misses(shards[i]);
      return n;
    }

    // One loader call (or tier read) that took `seconds` for `keys` values of `bytes` in all.
    void record_load(double seconds, std::uint64_t bytes, std::size_t keys) noexcept {
      if (bytes == 0 || keys == 0) return;
      const double per_byte = seconds / static_cast<double>(bytes);
      const double per_key = static_cast<double>(bytes) / static_cast<double>(keys);
      MutexLock lock(load_cost_mutex);
      if (load_cost_.bytes_per_key == 0.0) {
        load_cost_ = {per_byte, per_key};
        return;
      }
      load_cost_.seconds_per_byte += kLoadCostWeight * (per_byte - load_cost_.seconds_per_byte);
      load_cost_.bytes_per_key += kLoadCostWeight * (per_key - load_cost_.bytes_per_key);
    }
    LoadCost load_cost() const {
      MutexLock lock(load_cost_mutex);
      return load_cost_;
    }

    std::vector<EntrySnapshot> snapshot() {
      std::vector<EntrySnapshot> out;
      for (std::uint32_t i = 0; i < shard_count; ++i) {
        Shard& s = shards[i];
        ShardLock lock(*this, s);  // replays pending reads so recency and counts are current
        flush_stage(s);
        s.table.for_each([&](Entry* e) {
          s.mutex.assert_held();  // runs inside this loop's lock
          const EntryView v = view_of(s, e);
          out.push_back({config.key_formatter(e->key()), v.size_bytes, v.pin_count, v.loaded_at_ms,
                         v.last_access_at_ms, v.access_count});
        });
      }
      return out;
    }

    // Flushes the stages first (a staged entry and the one it replaces are both listed).
    std::string verify_invariants() {
      // Every shard lock, in index order. The analysis cannot follow locks held in a
      // container: each use below asserts its shard's lock, held to the end of the function.
      std::vector<std::unique_lock<SharedMutex>> locks;
      for (std::uint32_t i = 0; i < shard_count; ++i) {
        Shard& s = shards[i];
        locks.emplace_back(s.mutex);
        s.mutex.assert_held();
        flush_stage(s);
      }
      std::uint64_t sum_all = 0;
      std::ostringstream err;
      for (std::uint32_t i = 0; i < shard_count; ++i) {
        Shard& s = shards[i];
        s.mutex.assert_held();
        std::uint64_t sum = 0, listed = 0, pinned = 0;
        with_policy(s, [&](const auto& policy) {
          if (const std::string own = policy.audit(context_of(s)); !own.empty()) err << "shard " << i << ": " << own;
        });
        with_policy(s, [&](const auto& policy) {
          policy.for_each([&](const Entry* e) {
            s.mutex.assert_held();
            sum += size_of(s, e);
            ++listed;
            if (e->pins() > 0) ++pinned;
            if (e->state.load() & kDetachedBit) err << "shard " << i << ": detached entry in policy; ";
            if (s.table.find(hash_of(e->key()), e->key(), key_equal) != e) {
              err << "shard " << i << ": entry the policy holds is missing from the table; ";
            }
          });
        });
        if (const std::string table = s.table.audit(rehasher()); !table.empty()) {
          err << "shard " << i << ": " << table;
        }
        if (listed != s.table.size()) {
          err << "shard " << i << ": policy holds " << listed << " entries, table " << s.table.size()
              << "; ";
        }
        if (sum != s.bytes) err << "shard " << i << ": bytes " << s.bytes << " != sum " << sum << "; ";
        if (pinned != s.pinned_entries.load()) {
          err << "shard " << i << ": pinned_entries " << s.pinned_entries.load() << " != " << pinned
              << "; ";
        }
        sum_all += sum;
      }
      if (sum_all != total_bytes.load()) {
        err << "total_bytes " << total_bytes.load() << " != sum " << sum_all << "; ";
      }
      return err.str();
    }

    Config config;
    // Creation time; entries store their load time as whole seconds since it.
    const std::int64_t epoch_ms = now_ms();
    std::uint32_t shard_count = 1;
    std::uint32_t shard_mask = 0;
    // Owned read stripes per shard (plus one shared by threads with larger indices).
    std::uint32_t stripe_count = 1;
    std::unique_ptr<Shard[]> shards;
    Hash hasher;
    KeyEqual key_equal;
    std::atomic<std::uint64_t> total_bytes{0};
    std::atomic<std::uint64_t> max_bytes_{config.max_bytes};
    // fraction_of_max(config.low_watermark), kept beside max_bytes_ so that an insert into a
    // full pool does not redo the floating-point product.
    std::atomic<std::uint64_t> low_watermark_bytes_{fraction_of_max(config.low_watermark)};
    std::atomic<std::uint64_t> inflight_count{0};
    std::atomic<std::uint64_t> rejected_oversize{0};
    std::atomic<std::uint32_t> rotor{0};
    // Whether the policy ranks the whole pool at once (set once, at construction).
    bool orders_across_shards = false;
    // Each load's weight in the moving averages of its cost.
    static constexpr double kLoadCostWeight = 0.1;
    mutable Mutex load_cost_mutex;
    LoadCost load_cost_ PAGEKEEPER_GUARDED_BY(load_cost_mutex);
  };

  std::shared_ptr<Core> core_;
};

}  // namespace pagekeeper
