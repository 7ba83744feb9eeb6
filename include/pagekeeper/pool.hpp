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
//   Keys hash into shards (a power of two). Each shard has a reader-writer lock, an exact
//   LRU list and an open-addressing table in chunks of one cache line (F14's layout: seven
//   hash tags matched at once, seven pointers, an overflow count) whose words are atomics.
//   - Hits (get) never take a lock exclusively. When K and V are each one lock-free atomic
//     word (lock_free_reads()), get() takes no lock at all: it reads the key's home chunk,
//     copies the value and validates against the table's version (a seqlock that only
//     erasures and table growth advance), retrying or falling back to the shared lock if a
//     writer interfered. Other types are read under the shard's lock taken shared. The
//     lock-free hit is inlined into the caller; everything else is out of line.
//   - A hit is counted and queued in this thread's stripe of the shard's read rings
//     (Caffeine's striped read buffer; threads map to stripes by a small per-thread index,
//     so concurrent readers write different cache lines, and a reader never reads what the
//     drainer writes). Rings are replayed into the LRU list under the exclusive lock, when
//     one fills and before every eviction, so a single thread sees exact LRU. Under
//     concurrent reads a ring whose shard was busy when it filled is overwritten (lossy, as
//     in Caffeine): order is then approximate, never the budget, the pins or the hit and
//     miss counts.
//   - Writers (insert, eviction, pin, load completion) take one shard's lock exclusively; no
//     code path holds two shard locks at once, except custom-policy eviction and
//     verification, which take all of them in index order.
//   - New entries are staged: they wait in a 16-slot per-shard stage, which lookups search
//     first, and reach the table 16 at a time with their home lines loaded together (in a
//     pool larger than the caches, one memory wait per 16 inserts instead of one each). An
//     older entry of a staged key is replaced at that flush; until then lookups cannot reach
//     it, and stats(), snapshot() and verify_invariants() flush first.
//   total_bytes is an atomic changed only under the owning shard's lock.
//   Entries live in a per-shard split arena (no per-entry malloc header): an entry's record
//   (key and value, what lookups read) and its 40-byte header (links, pins, recency, what
//   the LRU bookkeeping writes) lie in separate arrays, so the bookkeeping that follows hits
//   on one core never writes a line that lookups on another core read. With the table's
//   share this keeps bookkeeping under 64 bytes per entry (docs/PERFORMANCE.md has the
//   measured figure).
//
// Value type requirements: V is copy-constructible (get() returns a copy: use
// std::shared_ptr<const T> for large values). V's destructor runs under a shard lock and must
// not call back into the pool. The sizer, the key formatter and custom priorities must be
// cheap, thread-safe and must not call back into the pool.

#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <bitset>
#include <cstdint>
#include <exception>
#include <functional>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <sys/mman.h>

#include "pagekeeper/clock.hpp"
#include "pagekeeper/eviction_policy.hpp"
#include "pagekeeper/resource_pool.hpp"

namespace pagekeeper {

// A batch loader returned the wrong number of values, or a loader failed without an
// exception of its own type.
class LoadError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

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
};

// What one load_many() call did, for per-call accounting (never a difference of global
// counters). Every position of `keys` is counted once in exactly one of the three.
struct LoadManyStats {
  std::size_t hits = 0;    // found resident
  std::size_t loaded = 0;  // produced by this call's batch loader (duplicates included)
  std::size_t joined = 0;  // produced by a load already in flight elsewhere
  std::size_t loader_keys = 0;  // distinct keys handed to the batch loader
};

namespace pool_detail {

inline std::uint64_t mix64(std::uint64_t h) noexcept {
  // MurmurHash3's finalizer: every input bit affects every output bit, so shard, tag and
  // table index can come from disjoint bit ranges even for identity hashes.
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

template <class K>
std::string default_key_text(const K& key) {
  if constexpr (std::is_convertible_v<const K&, std::string>) {
    return std::string(key);
  } else if constexpr (std::is_arithmetic_v<K>) {
    return std::to_string(key);
  } else if constexpr (requires(const K& k) { { to_string(k) } -> std::convertible_to<std::string>; }) {
    return to_string(key);
  } else {
    return "<key>";
  }
}

// Fixed-size allocator for pool entries stored as two parts: a record (what a lookup reads:
// key and value) and a header (what the LRU bookkeeping writes: links, pin state, recency).
// A block keeps the records of its entries in one array and their headers in another, so the
// bookkeeping that one core does after a hit never writes a line that a lookup on another
// core reads (when two cores do not share a cache, such a line costs every later reader a
// transfer), and a lookup's lines hold records only, several per line. Blocks are
// kBlockBytes and aligned to that size, so each part finds its partner by arithmetic. No
// per-entry allocator header; freed entries are reused through an intrusive free list
// through their headers. Blocks come from regions that double from one block up to 32 (2 MiB
// with the default block size), mapped directly: a block's untouched pages cost nothing, so
// a small pool holds a few pages, not whole blocks. Not thread-safe: each shard uses its own
// under its exclusive lock. Memory returns to the system on destruction.
template <std::size_t RecordSize, std::size_t RecordAlign, std::size_t HeaderSize, std::size_t HeaderAlign>
class SplitArena {
  static_assert(RecordSize % RecordAlign == 0 && HeaderSize % HeaderAlign == 0);
  static_assert(HeaderSize >= sizeof(void*), "the free list links through headers");

 public:
  static constexpr std::size_t kBlockBytes =
      std::bit_ceil(std::max<std::size_t>(std::size_t{64} << 10, 64 * (RecordSize + HeaderSize)));
  // Headers start on their own cache line after the records.
  static constexpr std::size_t kHeadersAlign = std::max<std::size_t>(64, HeaderAlign);
  static constexpr std::size_t kPerBlock = (kBlockBytes - kHeadersAlign) / (RecordSize + HeaderSize);
  static constexpr std::size_t kHeadersOffset =
      (kPerBlock * RecordSize + kHeadersAlign - 1) / kHeadersAlign * kHeadersAlign;
  static_assert(kHeadersOffset + kPerBlock * HeaderSize <= kBlockBytes);
  static_assert(RecordAlign <= kBlockBytes && HeaderAlign <= kBlockBytes);

  SplitArena() = default;
  SplitArena(const SplitArena&) = delete;
  SplitArena& operator=(const SplitArena&) = delete;
  ~SplitArena() {
    for (const Region& r : regions_) ::munmap(r.memory, r.blocks * kBlockBytes);
  }

  // The record of the entry whose header is at `header`, and the reverse.
  static void* record_of(const void* header) noexcept {
    const auto p = reinterpret_cast<std::uintptr_t>(header);
    const std::uintptr_t base = p & ~std::uintptr_t{kBlockBytes - 1};
    return reinterpret_cast<void*>(base + (p - base - kHeadersOffset) / HeaderSize * RecordSize);
  }
  static void* header_of(const void* record) noexcept {
    const auto p = reinterpret_cast<std::uintptr_t>(record);
    const std::uintptr_t base = p & ~std::uintptr_t{kBlockBytes - 1};
    return reinterpret_cast<void*>(base + kHeadersOffset + (p - base) / RecordSize * HeaderSize);
  }

  // Returns the header of a free entry (its record is record_of() it). Throws std::bad_alloc.
  void* allocate() {
    if (free_ != nullptr) {
      void* p = free_;
      free_ = *static_cast<void**>(free_);
      // The next allocation reads the new head's link: start loading it now (freed entries
      // of a large pool are cold by the time they are reused).
      if (free_ != nullptr) __builtin_prefetch(free_, 1);
      ++live_;
      return p;
    }
    // Regions fill in order: after reset_if_unused() the kept ones are carved again from the first.
    while (current_ < regions_.size() && regions_[current_].used == regions_[current_].blocks * kPerBlock) {
      ++current_;
    }
    if (current_ == regions_.size()) add_region();
    Region& r = regions_[current_];
    const std::size_t n = r.used++;
    ++live_;
    return r.memory + (n / kPerBlock) * kBlockBytes + kHeadersOffset + (n % kPerBlock) * HeaderSize;
  }

  void deallocate(void* header) noexcept {
    *static_cast<void**>(header) = free_;
    free_ = header;
    --live_;
  }

  // When no entry is in use, forgets the free list and carves the kept regions again from
  // the start: allocations that follow (a pool refilled after clear()) walk memory in order
  // instead of a free list scattered over it. Returns whether it did. The memory stays
  // mapped (a lock-free reader may still look at an old record).
  bool reset_if_unused() noexcept {
    if (live_ != 0) return false;
    for (Region& r : regions_) r.used = 0;
    free_ = nullptr;
    current_ = 0;
    return true;
  }

 private:
  struct Region {
    std::byte* memory;   // kBlockBytes-aligned
    std::size_t blocks;
    std::size_t used;    // entries carved, in block order
  };

  void add_region() {
    const std::size_t blocks = regions_.empty() ? 1 : std::min<std::size_t>(regions_.back().blocks * 2, 32);
    const std::size_t bytes = blocks * kBlockBytes;
    // Map one block more than needed and trim, so the region starts on a block boundary.
    void* raw = ::mmap(nullptr, bytes + kBlockBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) throw std::bad_alloc();
    const auto start = reinterpret_cast<std::uintptr_t>(raw);
    const std::uintptr_t aligned = (start + kBlockBytes - 1) & ~std::uintptr_t{kBlockBytes - 1};
    if (aligned > start) ::munmap(raw, aligned - start);
    if (const std::uintptr_t tail = start + kBlockBytes - aligned; tail > 0) {
      ::munmap(reinterpret_cast<void*>(aligned + bytes), tail);
    }
    try {
      regions_.push_back({reinterpret_cast<std::byte*>(aligned), blocks, 0});
    } catch (...) {
      ::munmap(reinterpret_cast<void*>(aligned), bytes);
      throw;
    }
  }

  std::vector<Region> regions_;
  std::size_t current_ = 0;  // the region being carved
  void* free_ = nullptr;
  std::size_t live_ = 0;  // entries allocated and not yet deallocated
};

// Small per-thread numbers: the lowest number not held by a live thread, taken on a thread's
// first use and given back when it exits, so that N live threads hold 0..N-1 however many
// threads came and went. Used to spread threads over the read stripes of a shard so that
// concurrent readers write different cache lines; collisions cost contention, never
// correctness. Thread-safe (one mutex, taken once per thread).
class ThreadIndexRegistry {
 public:
  static ThreadIndexRegistry& instance() {
    static auto* registry = new ThreadIndexRegistry();  // never destroyed: threads may outlive statics
    return *registry;
  }
  std::uint32_t acquire() {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto it = std::find(held_.begin(), held_.end(), false);
    if (it != held_.end()) {
      *it = true;
      return static_cast<std::uint32_t>(it - held_.begin());
    }
    held_.push_back(true);
    return static_cast<std::uint32_t>(held_.size() - 1);
  }
  void release(std::uint32_t index) {
    std::lock_guard<std::mutex> lock(mutex_);
    held_[index] = false;
  }

 private:
  std::mutex mutex_;
  std::vector<bool> held_;
};

// The fast path reads a constant-initialized thread_local (no TLS guard); the first call on
// a thread takes an index from the registry and registers its return at thread exit.
namespace thread_index_detail {
inline thread_local std::uint32_t cached = 0;  // index + 1; 0: none yet

[[gnu::noinline]] inline std::uint32_t assign() noexcept {
  struct Holder {
    std::uint32_t index = ThreadIndexRegistry::instance().acquire();
    Holder() = default;
    Holder(const Holder&) = delete;
    Holder& operator=(const Holder&) = delete;
    ~Holder() {
      cached = 0;
      ThreadIndexRegistry::instance().release(index);
    }
  };
  thread_local const Holder holder;
  cached = holder.index + 1;
  return holder.index;
}
}  // namespace thread_index_detail

inline std::uint32_t thread_index() noexcept {
  const std::uint32_t c = thread_index_detail::cached;
  if (c != 0) [[likely]] return c - 1;
  return thread_index_detail::assign();
}

// True when T can be read and written as one lock-free atomic word (std::atomic_ref) and
// needs no constructor or destructor: keys and values of this kind are read without any lock.
template <class T>
constexpr bool is_atomic_word() {
  if constexpr (std::is_trivially_copyable_v<T> && std::is_trivially_default_constructible_v<T> &&
                std::is_trivially_destructible_v<T>) {
    return std::atomic_ref<T>::is_always_lock_free;
  } else {
    return false;
  }
}

template <class T>
constexpr std::size_t atomic_word_alignment() {
  if constexpr (is_atomic_word<T>()) {
    return std::max(alignof(T), std::atomic_ref<T>::required_alignment);
  } else {
    return alignof(T);
  }
}

}  // namespace pool_detail

template <class K, class V, class Hash = std::hash<K>, class KeyEqual = std::equal_to<K>>
class PagedResourcePool final : public ResourcePool {
  struct Core;
  struct Entry;

 public:
  using key_type = K;
  using value_type = V;
  using Config = PoolConfig<K, V>;

  // RAII pin on one entry. Movable, not copyable. While held, the entry cannot be evicted
  // except by evict()/clear(), and its value stays readable through value() even after such
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
  std::optional<V> get(const K& key) const { return core_->get(key); }

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
  // that are neither resident nor in flight elsewhere (none: it is not called); keys in
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
  bool evict(const K& key) { return core_->evict_key(key); }

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
    return core_->evict_to(core_->fraction_of_max(target_fraction));
  }

  PoolStats stats() const override { return core_->stats(); }
  std::vector<EntrySnapshot> snapshot() const override { return core_->snapshot(); }
  std::string tier_name() const override { return core_->config.name; }
  std::uint64_t capacity_bytes() const override { return core_->max_bytes(); }

  // Changes the byte budget at run time (a broker or an operator resizing a tier), then
  // evicts down to low_watermark * new_max if the pool is now over it. Returns bytes freed.
  // config().max_bytes keeps the value the pool was created with.
  std::uint64_t set_max_bytes(std::uint64_t new_max) {
    core_->set_max_bytes(new_max);
    return core_->enforce_budget();
  }
  std::uint64_t usage_bytes() const override {
    return core_->total_bytes.load(std::memory_order_relaxed);
  }

  // For tests and debugging: takes every shard lock and checks the internal invariants
  // (bytes accounted equal the sum of entry sizes, table and list agree, counters agree).
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
  struct Link {
    Link* prev = nullptr;
    Link* next = nullptr;
  };

  static constexpr std::uint32_t kDetachedBit = 1;
  // Set on a header whose entry was destroyed (it sits in the arena's free list until reused).
  static constexpr std::uint32_t kFreedBit = 0x80000000u;
  static constexpr std::uint32_t kLargeSize = 0xffffffffu;
  static constexpr std::uint32_t kPinUnit = 2;

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
  // address (record()); Entry* is what the list, pins and read rings hold.
  struct Entry : Link {
    Entry(std::uint32_t size_field, std::uint32_t loaded_s, std::int64_t now)
        : size_small(size_field), loaded_at_s(loaded_s) {
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
    // Seconds since the pool was created (1 s resolution, 136-year range).
    std::uint32_t loaded_at_s;
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

  // One load in flight: the loader's caller completes it, joiners wait on it. Lighter than
  // std::promise/shared_future (no call_once, no futex wake when nobody waits), which matters
  // on the all-miss path of a batch: one slot per missing key.
  struct Flight {
    std::mutex mutex;
    std::condition_variable ready;
    bool done = false;         // guarded by mutex
    std::size_t waiters = 0;   // guarded by mutex
    std::optional<V> value;    // written once, before done; immutable after
    std::exception_ptr error;  // likewise
    // Set under the shard's lock by a caller that joins this load. The loader's caller
    // completes the flight only if someone joined: the in-flight slot is removed under the
    // same lock first, so nobody can join after it reads this.
    bool joined = false;

    void set_value(const V& v) {
      bool notify = false;
      {
        std::lock_guard<std::mutex> lock(mutex);
        value.emplace(v);
        done = true;
        notify = waiters > 0;
      }
      if (notify) ready.notify_all();
    }
    void set_exception(std::exception_ptr e) {
      bool notify = false;
      {
        std::lock_guard<std::mutex> lock(mutex);
        error = std::move(e);
        done = true;
        notify = waiters > 0;
      }
      if (notify) ready.notify_all();
    }
    // Blocks until completed; returns the value or rethrows the loader's exception. The
    // reference stays valid while the caller holds its shared_ptr to this flight.
    const V& wait() {
      std::unique_lock<std::mutex> lock(mutex);
      ++waiters;
      ready.wait(lock, [this] { return done; });
      --waiters;
      if (error) std::rethrow_exception(error);
      return *value;
    }
  };

  // Open-addressing table of record pointers in chunks of one cache line (F14's layout): a
  // control word with seven 8-bit hash tags (0: empty slot) and an overflow count, then
  // seven pointers. A lookup reads one control word, matches the key's tag in all seven
  // lanes at once (SWAR) and touches only the records whose tag matches, so a hit costs
  // the key's home line plus its record, with no probe loop to mispredict: how far a key sits
  // from its home slot varies, and a branch on each slot loaded mispredicts often, which
  // throws away the lookups the processor had started after it. A chunk's overflow count
  // says how many keys whose probe passed it live further on (saturating at 255): a lookup
  // stops at the first chunk whose count is zero. Chunks follow each other linearly.
  //
  // Locking rule: every mutation happens under the owning shard's exclusive lock. Control
  // words and slots are atomics, so with kOptimisticReads a reader may probe without any
  // lock: mutations that remove or move entries (erase, growth) run inside a write window
  // that makes the version odd and then advances it, and a lock-free reader validates its
  // probe against the version it started from (a seqlock). Plain inserts only fill an empty
  // slot, pointer first and tag second, both with release order after the entry was built,
  // so a reader sees the entry whole or not at all. A replaced chunk array may still be
  // probed by such a reader, so it is retired, not freed, while the table lives: a large
  // (mmap'd) one gives its pages back to the system at once (MADV_DONTNEED; a late reader
  // then sees empty chunks and fails validation), a small one is kept (less than 64 KiB in
  // all). The same holds without optimistic reads, so that prefetch() may be called without
  // the lock (load_many prefetches a batch's home lines).
  //
  // Staged inserts: a new entry first goes to a small stage (kStageSize slots on the
  // reader-visible lines, always in cache) and reaches the main array when the stage is
  // flushed, kStageSize at a time with their home lines prefetched together. In a table
  // larger than the caches, placing a key means waiting on one random line of memory; a
  // flush waits on all of them at once instead of one per insert. Lookups search the stage
  // first (skipped unless a 64-bit filter of staged hashes says it may match), so the newest
  // entry for a key wins; the main array may still hold an older entry for a staged key
  // until the flush, which the owner removes then (see Core::flush_stage). Staging never
  // moves a slot that a reader may be probing except inside a write window.
  class Table {
   public:
    Table() = default;
    Table(const Table&) = delete;
    Table& operator=(const Table&) = delete;
    ~Table() {
      if (Chunks* a = chunks_.load(std::memory_order_relaxed)) release(a, a->bytes, a->mapped);
      for (const Retired& r : retired_) release(r.chunks, r.bytes, r.mapped);
    }

    static constexpr std::uint32_t kStageSize = 16;

    // Lookup for holders of the shard lock (shared or exclusive): the newest entry for key.
    Entry* find(std::uint64_t h, const K& key, const KeyEqual& eq) const noexcept {
      return entry_of(find_in<false>(h, key, eq));
    }
    // Lookup in the stage only (cheap: no memory beyond the table's own lines). Requires: the lock.
    Entry* find_staged(std::uint64_t h, const K& key, const KeyEqual& eq) const noexcept {
      return entry_of(find_staged_in<false>(h, key, eq));
    }
    // Lookup in the main array only (an entry that a staged one replaces). Requires: the lock.
    Entry* find_main(std::uint64_t h, const K& key, const KeyEqual& eq) const noexcept {
      return entry_of(find_main_in<false>(chunks_.load(std::memory_order_relaxed), h, key, eq));
    }

    // Lookup for lock-free readers: returns the record of a candidate that is only valid if
    // read_validate(v) holds afterwards, where v = read_begin() was taken before. The entry
    // may be freed or reused at any time: read it only with Record::racy_key/racy_value.
    // Requires: kOptimisticReads.
    Record* find_racy(std::uint64_t h, const K& key, const KeyEqual& eq) const noexcept {
      return find_in<true>(h, key, eq);
    }
    // The version a lock-free read starts from; odd while a writer removes or moves entries.
    std::uint32_t read_begin() const noexcept { return version_.load(std::memory_order_acquire); }
    // True when no entry was removed or moved since read_begin() returned `v` (and v was
    // even). Every load the read made (control words, slots, key, value) was an acquire, so
    // none of them can be ordered after this one, and any of them that saw a write inside a
    // window makes this load see the window's odd version (a seqlock without standalone
    // fences, which ThreadSanitizer does not model).
    bool read_validate(std::uint32_t v) const noexcept {
      return (v & 1u) == 0 && version_.load(std::memory_order_relaxed) == v;
    }

    // Adds e to the stage. Grows the main array first if it could not take every staged
    // entry, so that flushing never allocates. Requires: exclusive lock; the stage is not
    // full; no staged entry has this key; e is fully built. rehash(e) recomputes an entry's
    // hash (needed when the table grows). Throws std::bad_alloc (nothing changed).
    template <class Rehash>
    void stage(std::uint64_t h, Entry* e, Rehash&& rehash) {
      const std::uint32_t n = staged_count_.load(std::memory_order_relaxed);
      const Chunks* a = chunks_.load(std::memory_order_relaxed);
      if (a == nullptr || (count_ + n + 1) * 4 > (a->mask + 1) * kChunkSlots * 3) grow(rehash);
      staged_hash_[n] = h;
      // Release: a reader that sees the count or the filter bit sees the slot and the entry.
      staged_[n].store(staged_tag(h) | reinterpret_cast<std::uintptr_t>(record_of(e)), std::memory_order_release);
      staged_count_.store(n + 1, std::memory_order_release);
      staged_filter_.store(staged_filter_.load(std::memory_order_relaxed) | filter_bit(h),
                           std::memory_order_release);
    }
    bool stage_full() const noexcept {
      return staged_count_.load(std::memory_order_relaxed) == kStageSize;
    }
    std::uint32_t staged_count() const noexcept { return staged_count_.load(std::memory_order_relaxed); }
    Entry* staged_entry(std::uint32_t i) const noexcept {
      return entry_of(staged_record_of(staged_[i].load(std::memory_order_relaxed)));
    }
    std::uint64_t staged_hash(std::uint32_t i) const noexcept { return staged_hash_[i]; }
    // Whether e (with hash h) is staged. Requires: the lock.
    bool is_staged(std::uint64_t h, const Entry* e) const noexcept { return staged_index(h, e) < kStageSize; }

    // Places staged entry k in the main array unless the main array holds an entry with the
    // same key: then returns that entry and places nothing. A reader that misses the entry
    // in the main array meanwhile finds it in the stage, which is emptied only by
    // end_flush(). Requires: exclusive lock; room made by stage().
    Entry* place_staged_unless_present(std::uint32_t k, const KeyEqual& eq) noexcept {
      Chunks* a = chunks_.load(std::memory_order_relaxed);
      const std::uint64_t h = staged_hash_[k];
      Entry* e = staged_entry(k);
      if (Record* present = find_main_in<false>(a, h, e->key(), eq)) return entry_of(present);
      place(a, h, e);
      ++count_;
      return nullptr;
    }
    // Places staged entry k in the main array. Requires: exclusive lock; room made by
    // stage(); no entry with its key in the main array.
    void place_staged(std::uint32_t k) noexcept {
      place(chunks_.load(std::memory_order_relaxed), staged_hash_[k], staged_entry(k));
      ++count_;
    }
    // Empties the stage once every staged entry was placed. It moves nothing a reader needs:
    // every entry the stage held is in the main array now. Requires: exclusive lock.
    void end_flush() noexcept {
      staged_filter_.store(0, std::memory_order_release);
      staged_count_.store(0, std::memory_order_release);
    }

    // Requires: exclusive lock; e is present (staged or in the main array) with hash h.
    void erase(std::uint64_t h, const Entry* e) noexcept {
      if (const std::uint32_t k = staged_index(h, e); k < kStageSize) {
        unstage(k);
        return;
      }
      Chunks* a = chunks_.load(std::memory_order_relaxed);
      const Record* r = record_of(e);
      const std::uint64_t tag = tag_of(h);
      const std::size_t home = a->home(h);
      for (std::size_t c = home;; c = (c + 1) & a->mask) {
        Chunk& chunk = a->chunk(c);
        const std::uint64_t ctrl = chunk.ctrl.load(std::memory_order_relaxed);
        for (std::uint64_t m = match(ctrl, tag); m != 0; m &= m - 1) {
          const unsigned lane = lane_of(m);
          if (chunk.slot[lane].load(std::memory_order_relaxed) != r) continue;
          // A window: a reader may hold e's record, and e is freed (and its memory reused)
          // after this returns.
          WriteWindow window(*this);
          chunk.ctrl.store(ctrl & ~(std::uint64_t{0xff} << (8 * lane)), std::memory_order_release);
          chunk.slot[lane].store(nullptr, std::memory_order_release);
          // e's probe passed the chunks from its home to this one: take it off their counts.
          for (std::size_t d = home; d != c; d = (d + 1) & a->mask) {
            std::atomic<std::uint64_t>& passed = a->chunk(d).ctrl;
            const std::uint64_t word = passed.load(std::memory_order_relaxed);
            if (overflow_of(word) != kOverflowSaturated) {
              passed.store(word - kOverflowOne, std::memory_order_release);
            }
          }
          --count_;
          return;
        }
      }
    }

    // Visits every entry, staged ones included (so an entry and a staged one replacing it
    // are both visited until the flush). Requires: the shard lock (shared or exclusive).
    template <class Fn>
    void for_each(Fn&& fn) const {
      for_each_occupied(chunks_.load(std::memory_order_relaxed),
                        [&](std::size_t, unsigned, const Record* r) { fn(entry_of(r)); });
      for (std::uint32_t k = 0, n = staged_count(); k < n; ++k) fn(staged_entry(k));
    }

    // Starts loading the line a lookup of hash h reads (its home chunk). Needs no lock:
    // replaced arrays stay mapped (a stale one only wastes the prefetch).
    void prefetch(std::uint64_t h) const noexcept {
      const Chunks* a = chunks_.load(std::memory_order_acquire);
      if (a == nullptr) return;
      __builtin_prefetch(&a->chunk(a->home(h)));
    }

    // Entries held, staged ones included. Requires: the lock.
    std::size_t size() const noexcept { return count_ + staged_count(); }

    // Checks the main array's own invariants: the entry count, and every chunk's overflow
    // count against the entries whose probe passes it (exact below saturation; a saturated
    // count may overstate, never understate). rehash(e) recomputes an entry's hash. Returns
    // "" or what is wrong. Requires: exclusive lock. O(entries x probe length).
    template <class Rehash>
    std::string audit(Rehash&& rehash) const {
      const Chunks* a = chunks_.load(std::memory_order_relaxed);
      if (a == nullptr) return count_ == 0 ? "" : "entries counted without an array; ";
      std::vector<std::uint64_t> passing(a->mask + 1, 0);
      std::size_t found = 0;
      std::ostringstream err;
      for_each_occupied(a, [&](std::size_t c, unsigned lane, const Record* r) {
        if (r == nullptr) {
          err << "chunk " << c << " lane " << lane << ": tag without entry; ";
          return;
        }
        ++found;
        const std::uint64_t h = rehash(entry_of(r));
        const std::uint64_t ctrl = a->chunk(c).ctrl.load(std::memory_order_relaxed);
        if (((ctrl >> (8 * lane)) & 0xff) != tag_of(h)) err << "chunk " << c << ": wrong tag; ";
        for (std::size_t d = a->home(h); d != c; d = (d + 1) & a->mask) ++passing[d];
      });
      for (std::size_t c = 0; c <= a->mask; ++c) {
        const std::uint64_t stored = overflow_of(a->chunk(c).ctrl.load(std::memory_order_relaxed));
        if (stored != std::min(passing[c], kOverflowSaturated) && stored != kOverflowSaturated) {
          err << "chunk " << c << ": overflow " << stored << ", " << passing[c] << " pass it; ";
        }
      }
      if (found != count_) err << "array holds " << found << " entries, counted " << count_ << "; ";
      return err.str();
    }

   private:
    static constexpr unsigned kChunkSlots = 7;
    static constexpr std::uint64_t kLaneLow = 0x0001010101010101ULL;   // 1 in each tag lane
    static constexpr std::uint64_t kLaneLow7 = 0x007f7f7f7f7f7f7fULL;  // low 7 bits of each lane
    static constexpr std::uint64_t kLaneHigh = 0x0080808080808080ULL;  // top bit of each lane
    static constexpr std::uint64_t kOverflowOne = std::uint64_t{1} << 56;
    static constexpr std::uint64_t kOverflowSaturated = 0xff;
    // Chunk arrays from this size on are mmap'd, so that a retired one can return its pages.
    static constexpr std::size_t kMapBytes = std::size_t{64} << 10;
    static constexpr std::size_t kHeaderBytes = 64;

    // One cache line: bytes 0..6 of ctrl are the tags of slots 0..6 (0: empty), byte 7 the
    // overflow count. Slots point at records, which is what a lookup reads.
    struct alignas(64) Chunk {
      std::atomic<std::uint64_t> ctrl;
      std::array<std::atomic<Record*>, kChunkSlots> slot;
    };
    static_assert(sizeof(Chunk) == 64);

    // One chunk array: a header, then the chunks. A header zeroed by MADV_DONTNEED reads as
    // mask 0 and shift 0, so a late reader probes chunk 0 only, finds it empty and fails
    // validation.
    struct Chunks {
      std::size_t mask;  // chunk count - 1
      unsigned shift;    // 64 - log2(chunk count), at most 63 (two chunks or more)
      bool mapped;
      std::size_t bytes;

      Chunk& chunk(std::size_t c) const noexcept {
        auto* base = reinterpret_cast<std::byte*>(const_cast<Chunks*>(this)) + kHeaderBytes;
        return reinterpret_cast<Chunk*>(base)[c];
      }
      std::size_t home(std::uint64_t h) const noexcept {
        return static_cast<std::size_t>(h >> shift) & mask;
      }
    };
    struct Retired {
      Chunks* chunks;
      std::size_t bytes;
      bool mapped;
    };

    // Makes the version odd for its lifetime (only with optimistic readers).
    class WriteWindow {
     public:
      explicit WriteWindow(Table& t) noexcept : table_(t) {
        if constexpr (kOptimisticReads) {
          start_ = t.version_.load(std::memory_order_relaxed);
          // Relaxed is enough: the stores inside the window are releases, so a reader that
          // sees one of them sees this odd version too.
          t.version_.store(start_ + 1, std::memory_order_relaxed);
        }
      }
      ~WriteWindow() {
        if constexpr (kOptimisticReads) table_.version_.store(start_ + 2, std::memory_order_release);
      }
      WriteWindow(const WriteWindow&) = delete;
      WriteWindow& operator=(const WriteWindow&) = delete;

     private:
      Table& table_;
      std::uint32_t start_ = 0;
    };

    template <bool kRacy>
    static bool key_matches(const Record* r, const K& key, const KeyEqual& eq) noexcept {
      if constexpr (kRacy) {
        return eq(r->racy_key(), key);
      } else {
        return eq(r->key, key);
      }
    }

    template <bool kRacy>
    Record* find_in(std::uint64_t h, const K& key, const KeyEqual& eq) const noexcept {
      const Chunks* a = chunks_.load(std::memory_order_acquire);
      if (Record* r = find_staged_in<kRacy>(h, key, eq)) return r;
      return find_main_in<kRacy>(a, h, key, eq);
    }

    template <bool kRacy>
    Record* find_staged_in(std::uint64_t h, const K& key, const KeyEqual& eq) const noexcept {
      if ((staged_filter_.load(std::memory_order_acquire) & filter_bit(h)) == 0) return nullptr;
      const std::uintptr_t tag = staged_tag(h);
      // A racy reader may see a count from a later stage generation: stay in bounds.
      const std::uint32_t n = std::min(staged_count_.load(std::memory_order_acquire), kStageSize);
      for (std::uint32_t k = 0; k < n; ++k) {
        const std::uintptr_t s = staged_[k].load(std::memory_order_acquire);
        if (s != 0 && (s & kStagedTagMask) == tag && key_matches<kRacy>(staged_record_of(s), key, eq)) {
          return staged_record_of(s);
        }
      }
      return nullptr;
    }

    template <bool kRacy>
    static Record* find_main_in(const Chunks* a, std::uint64_t h, const K& key, const KeyEqual& eq) noexcept {
      if (a == nullptr) return nullptr;
      const std::uint64_t tag = tag_of(h);
      const std::size_t mask = a->mask;
      // Bounded: a racy reader may see an array that is being rewritten.
      for (std::size_t c = a->home(h), n = 0; n <= mask; c = (c + 1) & mask, ++n) {
        const Chunk& chunk = a->chunk(c);
        const std::uint64_t ctrl = chunk.ctrl.load(std::memory_order_acquire);
        for (std::uint64_t m = match(ctrl, tag); m != 0; m &= m - 1) {
          Record* r = chunk.slot[lane_of(m)].load(std::memory_order_acquire);
          // Null only for a racy reader that met an erase (it then fails validation).
          if (r != nullptr && key_matches<kRacy>(r, key, eq)) return r;
        }
        if (overflow_of(ctrl) == 0) return nullptr;
      }
      return nullptr;
    }

    // Calls fn(chunk index, lane, record) for every slot of `a` (may be null) that holds a
    // tag. Requires: the lock.
    template <class Fn>
    static void for_each_occupied(const Chunks* a, Fn&& fn) {
      if (a == nullptr) return;
      for (std::size_t c = 0; c <= a->mask; ++c) {
        const Chunk& chunk = a->chunk(c);
        for (std::uint64_t m = occupied(chunk.ctrl.load(std::memory_order_relaxed)); m != 0; m &= m - 1) {
          const unsigned lane = lane_of(m);
          fn(c, lane, chunk.slot[lane].load(std::memory_order_relaxed));
        }
      }
    }

    // Places e in the first free slot of its probe, counting it on every full chunk it
    // passes. Requires: exclusive lock; a free slot exists.
    static void place(Chunks* a, std::uint64_t h, Entry* e) noexcept {
      const std::uint64_t tag = tag_of(h);
      for (std::size_t c = a->home(h);; c = (c + 1) & a->mask) {
        Chunk& chunk = a->chunk(c);
        const std::uint64_t ctrl = chunk.ctrl.load(std::memory_order_relaxed);
        if (const std::uint64_t free = match(ctrl, 0)) {
          const unsigned lane = lane_of(free);
          chunk.slot[lane].store(record_of(e), std::memory_order_release);
          chunk.ctrl.store(ctrl | (tag << (8 * lane)), std::memory_order_release);
          return;
        }
        if (overflow_of(ctrl) != kOverflowSaturated) {
          chunk.ctrl.store(ctrl + kOverflowOne, std::memory_order_release);
        }
      }
    }

    // The main array's tag of hash h: 8 bits that neither the shard, the stage filter nor
    // (in arrays below 2^40 chunks) the home chunk use; never 0, which marks an empty slot.
    static std::uint64_t tag_of(std::uint64_t h) noexcept {
      const std::uint64_t t = (h >> 16) & 0xff;
      return t == 0 ? 1 : t;
    }
    // One bit (the top bit of the lane) for each of the seven tag lanes of ctrl equal to
    // tag. Exact: the addition cannot carry from one lane into the next.
    static std::uint64_t match(std::uint64_t ctrl, std::uint64_t tag) noexcept {
      const std::uint64_t x = ctrl ^ (kLaneLow * tag);
      return ~(((x & kLaneLow7) + kLaneLow7) | x | kLaneLow7) & kLaneHigh;
    }
    static std::uint64_t occupied(std::uint64_t ctrl) noexcept { return ~match(ctrl, 0) & kLaneHigh; }
    static unsigned lane_of(std::uint64_t bits) noexcept {
      return static_cast<unsigned>(std::countr_zero(bits)) >> 3;
    }
    static std::uint64_t overflow_of(std::uint64_t ctrl) noexcept { return ctrl >> 56; }

    // Stage slots hold tag | Record*, the tag in the top 8 bits (user-space pointers use 48).
    static constexpr std::uintptr_t kStagedPtrMask = (std::uintptr_t{1} << 48) - 1;
    static constexpr std::uintptr_t kStagedTagMask = std::uintptr_t{0xff} << 56;
    static std::uintptr_t staged_tag(std::uint64_t h) noexcept {
      return static_cast<std::uintptr_t>((h >> 16) & 0xff) << 56;
    }
    static Record* staged_record_of(std::uintptr_t s) noexcept {
      return reinterpret_cast<Record*>(s & kStagedPtrMask);
    }
    // Stage filter bit: hash bits that neither the shard, the tag nor (in tables below 2^34
    // chunks) the home position use.
    static std::uint64_t filter_bit(std::uint64_t h) noexcept { return std::uint64_t{1} << ((h >> 24) & 63); }

    // The stage position of e, or kStageSize. Requires: the lock.
    std::uint32_t staged_index(std::uint64_t h, const Entry* e) const noexcept {
      if ((staged_filter_.load(std::memory_order_relaxed) & filter_bit(h)) == 0) return kStageSize;
      const auto p = reinterpret_cast<std::uintptr_t>(record_of(e));
      for (std::uint32_t k = 0, n = staged_count(); k < n; ++k) {
        if ((staged_[k].load(std::memory_order_relaxed) & kStagedPtrMask) == p) return k;
      }
      return kStageSize;
    }

    // Removes stage position k (the last one moves into it). Requires: exclusive lock.
    void unstage(std::uint32_t k) noexcept {
      WriteWindow window(*this);  // a reader scanning the stage could miss the moved entry
      const std::uint32_t last = staged_count() - 1;
      staged_hash_[k] = staged_hash_[last];
      staged_[k].store(staged_[last].load(std::memory_order_relaxed), std::memory_order_release);
      staged_[last].store(0, std::memory_order_release);
      std::uint64_t filter = 0;
      for (std::uint32_t i = 0; i < last; ++i) filter |= filter_bit(staged_hash_[i]);
      staged_count_.store(last, std::memory_order_release);
      staged_filter_.store(filter, std::memory_order_release);
    }

    static Chunks* allocate(std::size_t chunk_count) {
      const std::size_t bytes = kHeaderBytes + chunk_count * sizeof(Chunk);
      const bool mapped = bytes >= kMapBytes;
      void* memory = nullptr;
      if (mapped) {
        memory = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (memory == MAP_FAILED) throw std::bad_alloc();
      } else {
        memory = ::operator new(bytes, std::align_val_t(kHeaderBytes));
      }
      auto* a = ::new (memory) Chunks{chunk_count - 1, 64u - static_cast<unsigned>(std::countr_zero(chunk_count)),
                                      mapped, bytes};
      std::uninitialized_value_construct_n(&a->chunk(0), chunk_count);  // all empty
      return a;
    }
    static void release(Chunks* a, std::size_t bytes, bool mapped) noexcept {
      if (mapped) {
        ::munmap(a, bytes);
      } else {
        ::operator delete(a, std::align_val_t(kHeaderBytes));
      }
    }

    // Rebuilds into an array twice the size, publishes it, retires the old one.
    template <class Rehash>
    Chunks* grow(Rehash& rehash) {
      Chunks* old = chunks_.load(std::memory_order_relaxed);
      const std::size_t n = old == nullptr ? 4 : (old->mask + 1) * 2;
      Chunks* fresh = allocate(n);
      for_each_occupied(old, [&](std::size_t, unsigned, const Record* r) {
        Entry* e = entry_of(r);
        place(fresh, rehash(e), e);
      });
      {
        WriteWindow window(*this);
        chunks_.store(fresh, std::memory_order_release);
      }
      if (old != nullptr) {
        retired_.push_back({old, old->bytes, old->mapped});
        if (old->mapped) ::madvise(old, old->bytes, MADV_DONTNEED);
      }
      return fresh;
    }

    // Reader-visible state on its own cache line: writers to the rest of the shard (list,
    // arena, read stripes) must not invalidate what every lock-free probe reads.
    alignas(64) std::atomic<Chunks*> chunks_{nullptr};
    std::atomic<std::uint32_t> version_{0};
    std::atomic<std::uint32_t> staged_count_{0};
    std::atomic<std::uint64_t> staged_filter_{0};  // OR of filter_bit() of staged hashes
    std::array<std::atomic<std::uintptr_t>, kStageSize> staged_{};  // tag | Record*
    // --- writer-only ---
    alignas(64) std::array<std::uint64_t, kStageSize> staged_hash_{};
    std::size_t count_ = 0;  // entries in the main array
    std::vector<Retired> retired_;
  };

  static constexpr std::uint32_t kRingSize = 64;

  // One thread stripe of a shard's read recording (Caffeine's striped read buffer): hits are
  // counted here and queued in a ring for promotion; the ring is replayed into the shard's
  // LRU list under its exclusive lock. Threads map to stripes by pagekeeper's thread index,
  // so concurrent readers write different cache lines; a stripe is owned by one thread (plain
  // increments) or, for threads beyond the owned stripes, shared (fetch_add).
  //   Positions are numbered by `recorded` (exact counts either way); a reader stores its
  //   entry in cell `position % kRingSize` and asks for a drain every kRingSize positions.
  //   It never reads what the drainer writes, so with two threads a hit does not wait on a
  //   line the other core just wrote. A ring that was not drained in time (its shard's lock
  //   was busy) is overwritten: the oldest events are lost, the newest kept (lossy, still
  //   hits). The drainer replays at most the last kRingSize positions; a cell may hold an
  //   older or newer event than its position (a shared stripe's claimed position not yet
  //   stored, or a lap) or a stale pointer: the drainer skips entries that are detached or
  //   freed (arena memory is never unmapped while the pool lives) and at worst promotes a
  //   live entry once too often. One thread alone drains every kRingSize hits and before
  //   every eviction, so it loses nothing and sees exact LRU order.
  struct alignas(64) ReadStripe {
    std::atomic<std::uint64_t> recorded{0};       // hits queued for promotion, ever
    std::atomic<std::uint64_t> unqueued_hits{0};  // hits inside the promotion delay, ever
    std::atomic<std::uint64_t> misses{0};         // ever
    std::array<std::atomic<Entry*>, kRingSize> ring{};
    // Ring position replayed up to. Guarded by the shard's exclusive lock; on its own line
    // so that the drainer writes nothing the owner reads.
    alignas(64) std::uint64_t drained = 0;
  };

  struct alignas(64) Shard {
    mutable std::shared_mutex mutex;
    // --- guarded by `mutex` held exclusively (reads of table/list with it shared) ---
    Table table;
    Link lru;  // sentinel: lru.next is the most recent, lru.prev the least recent
    Arena arena;
    std::unordered_map<K, std::shared_ptr<Flight>, Hash, KeyEqual> inflight;
    std::unordered_map<const Entry*, std::uint64_t> large_sizes;
    std::uint64_t bytes = 0;
    // The stripes' hit and miss totals at the last clear() (stats report the difference).
    std::uint64_t hits_at_clear = 0;
    std::uint64_t misses_at_clear = 0;
    // --- atomics ---
    std::atomic<std::uint64_t> pinned_entries{0};
    std::atomic<std::uint64_t> evictions{0};
    // Written by readers without the lock (see ReadStripe); drained under the exclusive lock.
    std::unique_ptr<ReadStripe[]> stripes;

    Shard() { lru.prev = lru.next = &lru; }
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
      }
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
      if (c.policy->kind() == EvictionPolicy<V>::Kind::kCustom) return 1;
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

    // ----- list helpers (exclusive lock) -----
    static void unlink(Link* l) noexcept {
      l->prev->next = l->next;
      l->next->prev = l->prev;
    }
    static void push_front(Shard& s, Link* l) noexcept {
      l->next = s.lru.next;
      l->prev = &s.lru;
      s.lru.next->prev = l;
      s.lru.next = l;
    }

    // Replays the shard's read rings into its LRU list, stamping each entry's recency and
    // access count. Requires: exclusive lock. Reads recorded while it runs are either
    // replayed or left for the next drain.
    void drain_reads(Shard& s) const noexcept {
      std::int64_t now = 0;
      for (std::uint32_t k = 0; k <= stripe_count; ++k) {
        ReadStripe& st = s.stripes[k];
        const std::uint64_t end = st.recorded.load(std::memory_order_acquire);
        if (end == st.drained) continue;
        if (now == 0) now = monotonic_ms();
        // Positions more than a ring behind were overwritten: replay the last kRingSize.
        const std::uint64_t begin = std::max(st.drained, end - std::min<std::uint64_t>(end, kRingSize));
        // Three passes, so the misses of each overlap: the first starts loading the headers
        // (lookups read records, so a header is cold in a large pool), the second takes the
        // live entries and starts loading their list neighbours, the third moves them.
        std::array<Entry*, kRingSize> taken;
        std::size_t n = 0;
        for (std::uint64_t pos = begin; pos < end; ++pos) {
          Entry* e = st.ring[pos & (kRingSize - 1)].load(std::memory_order_acquire);
          if (e == nullptr) continue;  // a shared stripe's first lap, claimed, not yet stored
          __builtin_prefetch(e, 1);
          taken[n++] = e;
        }
        const std::size_t events = n;
        n = 0;
        for (std::size_t i = 0; i < events; ++i) {
          Entry* e = taken[i];
          if ((e->state.load(std::memory_order_relaxed) & (kDetachedBit | kFreedBit)) != 0) continue;
          __builtin_prefetch(e->prev, 1);
          __builtin_prefetch(e->next, 1);
          taken[n++] = e;
        }
        for (std::size_t i = 0; i < n; ++i) {
          Entry* e = taken[i];
          touch(e, now);
          if (s.lru.next != e) {
            unlink(e);
            push_front(s, e);
          }
        }
        st.drained = end;
      }
    }

    // Requires: exclusive lock (the only writer of recency and access counts).
    static void touch(Entry* e, std::int64_t now) noexcept {
      e->set_last_access(now);
      e->access_count.store(e->access_count.load(std::memory_order_relaxed) + 1,
                            std::memory_order_relaxed);
    }

    std::unique_lock<std::shared_mutex> lock_exclusive(Shard& s) const {
      std::unique_lock<std::shared_mutex> lock(s.mutex);
      drain_reads(s);
      return lock;
    }

    // lock_exclusive() for observers that walk or count the table: the stage is flushed
    // too, so that a staged entry and the older one it replaces are never both seen.
    std::unique_lock<std::shared_mutex> lock_flushed(Shard& s) {
      auto lock = lock_exclusive(s);
      flush_stage(s);
      return lock;
    }

    // This thread's read stripe of shard s. Threads whose index is below stripe_count own
    // their stripe (indices of live threads are distinct, and a stripe passes to the next
    // holder of an index through the registry's mutex), so its counters take plain
    // increments instead of read-modify-writes: on the hit path that is the difference
    // between a full memory barrier per hit and none. Other threads share the last stripe.
    struct StripeRef {
      ReadStripe& stripe;
      bool owned;
    };
    StripeRef stripe_of(Shard& s) const noexcept {
      const std::uint32_t i = pool_detail::thread_index();
      if (i < stripe_count) return {s.stripes[i], true};
      return {s.stripes[stripe_count], false};
    }

    static void bump(std::atomic<std::uint64_t>& counter, bool owned) noexcept {
      if (owned) {
        counter.store(counter.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      } else {
        counter.fetch_add(1, std::memory_order_relaxed);
      }
    }

    // Counts a hit on e and queues it for promotion. Needs no lock. Returns true when the
    // caller should drain the shard (every kRingSize-th position of its stripe).
    static bool record_read(StripeRef ref, Entry* e) noexcept {
      ReadStripe& st = ref.stripe;
      std::uint64_t pos = 0;
      if (ref.owned) {
        // Sole writer: store the entry, then publish the position (release), so a drainer
        // that sees the position sees the entry.
        pos = st.recorded.load(std::memory_order_relaxed);
        st.ring[pos & (kRingSize - 1)].store(e, std::memory_order_relaxed);
        st.recorded.store(pos + 1, std::memory_order_release);
      } else {
        pos = st.recorded.fetch_add(1, std::memory_order_relaxed);
        st.ring[pos & (kRingSize - 1)].store(e, std::memory_order_release);
      }
      return (pos & (kRingSize - 1)) == kRingSize - 1;
    }

    // Requires: s's lock held (shared or exclusive) or e detached and owned by the caller.
    static std::uint64_t size_of(const Shard& s, const Entry* e) {
      if (e->size_small != kLargeSize) return e->size_small;
      return s.large_sizes.at(e);
    }

    // ----- entry lifetime (exclusive lock) -----
    Entry* create(Shard& s, K&& key, V&& value, std::uint64_t size, std::int64_t now) {
      void* header = s.arena.allocate();
      auto* record = static_cast<Record*>(Arena::record_of(header));
      const std::uint32_t size_field = size >= kLargeSize ? kLargeSize : static_cast<std::uint32_t>(size);
      const std::int64_t age_s = std::max<std::int64_t>(0, (now - epoch_ms) / 1000);
      const auto loaded_s = static_cast<std::uint32_t>(std::min<std::int64_t>(age_s, UINT32_MAX));
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
    static void destroy(Shard& s, Entry* e) noexcept {
      if (e->size_small == kLargeSize) s.large_sizes.erase(e);
      // A read ring may still name this header; the mark tells the drainer to skip it.
      e->state.store(kFreedBit, std::memory_order_relaxed);
      if constexpr (!kOptimisticReads) std::destroy_at(&e->record());
      std::destroy_at(e);
      s.arena.deallocate(e);
    }

    // Removes e from table, list and accounting; frees it unless a pin keeps it alive.
    // Requires: exclusive lock on s.
    void detach(Shard& s, Entry* e, std::uint64_t h) noexcept {
      s.table.erase(h, e);
      unlink(e);
      const std::uint64_t size = size_of(s, e);
      s.bytes -= size;
      total_bytes.fetch_sub(size, std::memory_order_relaxed);
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
    static void count_eviction(Shard& s) noexcept { bump(s.evictions, /*owned=*/true); }

    // Evicts `victim` (an unpinned entry picked from s by policy), counts it and starts
    // loading the next victim. Returns the bytes freed. Requires: exclusive lock on s.
    std::uint64_t evict_locked(Shard& s, Entry* victim) noexcept {
      const std::uint64_t size = detach_newest(s, victim, hash_of(victim->key()));
      count_eviction(s);
      prefetch_next_victim(s);
      return size;
    }

    // ----- operations -----
    // True when a hit on e falls inside the promotion delay (counted, not queued).
    bool within_refresh(const Entry* e) const noexcept {
      return config.lru_refresh_ms != 0 &&
             monotonic_ms() - e->last_access() < static_cast<std::int64_t>(config.lru_refresh_ms);
    }

    // Counts the hit on e in this thread's stripe, queued for promotion unless it falls in
    // the promotion delay. Returns true when the caller should try_drain() the shard.
    bool record_hit(StripeRef st, Entry* e) const noexcept {
      if (within_refresh(e)) {
        bump(st.stripe.unqueued_hits, st.owned);
        return false;
      }
      return record_read(st, e);
    }

    // Drains s unless its lock is held: whoever holds it drains on release anyway, so a
    // reader does not queue behind it. Out of line: once per kRingSize hits. Also flushes
    // the insert stage, so that while a pool is only read its lookups skip the stage.
    [[gnu::noinline]] void try_drain(Shard& s) noexcept {
      std::unique_lock<std::shared_mutex> lock(s.mutex, std::try_to_lock);
      if (!lock.owns_lock()) return;
      drain_reads(s);
      flush_stage(s);
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
        const std::uint32_t version = s.table.read_begin();
        if (const Record* r = s.table.find_racy(h, key, key_equal)) [[likely]] {
          const V value = r->racy_value();
          if (s.table.read_validate(version)) [[likely]] {
            if (record_hit(stripe_of(s), entry_of(r))) [[unlikely]] try_drain(s);
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
          const std::uint32_t version = s.table.read_begin();
          if ((version & 1u) != 0) break;
          const Record* r = s.table.find_racy(h, key, key_equal);
          V value{};
          if (r != nullptr) value = r->racy_value();
          if (!s.table.read_validate(version)) continue;
          if (r == nullptr) {
            bump(st.stripe.misses, st.owned);
            return std::nullopt;
          }
          if (record_hit(st, entry_of(r))) try_drain(s);
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
        std::shared_lock<std::shared_mutex> lock(s.mutex);
        e = s.table.find(h, key, key_equal);
        if (e == nullptr) {
          bump(st.stripe.misses, st.owned);
          return std::nullopt;
        }
        result.emplace(e->value());
        if (!record_hit(st, e)) return result;
      }
      try_drain(s);
      return result;
    }

    bool contains(const K& key) const {
      const std::uint64_t h = hash_of(key);
      Shard& s = shards[shard_of(h)];
      std::shared_lock<std::shared_mutex> lock(s.mutex);
      return s.table.find(h, key, key_equal) != nullptr;
    }

    std::pair<Entry*, std::uint32_t> pin(const K& key) {
      const std::uint64_t h = hash_of(key);
      const std::uint32_t si = shard_of(h);
      Shard& s = shards[si];
      // Pins are rare next to reads: take the lock exclusively and refresh recency directly
      // (a pin is not a hit, so it must not go through the read buffer).
      auto lock = lock_exclusive(s);
      Entry* e = s.table.find(h, key, key_equal);
      if (e == nullptr) return {nullptr, si};
      const std::uint32_t old = e->state.fetch_add(kPinUnit, std::memory_order_acq_rel);
      if (old / kPinUnit == 0) s.pinned_entries.fetch_add(1, std::memory_order_relaxed);
      e->set_last_access(monotonic_ms());
      unlink(e);
      push_front(s, e);
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
        std::shared_lock<std::shared_mutex> lock(s.mutex);
        old = e->state.fetch_sub(kPinUnit, std::memory_order_acq_rel);
        if (old / kPinUnit != 1) return;  // another handle released in between
        if ((old & kDetachedBit) == 0) {
          s.pinned_entries.fetch_sub(1, std::memory_order_relaxed);
          return;
        }
      }
      // Last pin of an entry that was forcibly removed: nobody else can reach it; free it.
      std::unique_lock<std::shared_mutex> lock(s.mutex);
      destroy(s, e);
    }

    // Requires: exclusive lock on s. Inserts or replaces (a replaced main-table entry goes at
    // the next flush of the stage). Strong guarantee: if it throws (building the entry, or
    // growing the table), the shard is as it was, an older value for the key included.
    void insert_locked(Shard& s, std::uint64_t h, K&& key, V&& value, std::uint64_t size) {
      // Built before anything else changes: building is what may throw.
      Entry* e = create(s, std::move(key), std::move(value), size, monotonic_ms());
      // Only the stage is searched here: an older entry in the main array is found and
      // detached when the stage is flushed (until then lookups see the staged one). When an
      // older one is staged, detaching it frees a stage position and the table already has
      // room for it (stage() made room when it came), so staging the new one cannot throw.
      if (Entry* old = s.table.find_staged(h, e->key(), key_equal)) detach(s, old, h);
      try {
        if (s.table.stage_full()) flush_stage(s);
        s.table.stage(h, e, rehasher());
      } catch (...) {  // the table could not grow: nothing was inserted
        destroy(s, e);
        throw;
      }
      push_front(s, e);
      s.bytes += size;
      total_bytes.fetch_add(size, std::memory_order_relaxed);
    }

    // Moves s's staged entries into its main table, detaching the older entries they
    // replace (a replacement, not an eviction). The home lines of all of them are loaded
    // together first. Requires: exclusive lock on s.
    void flush_stage(Shard& s) noexcept {
      const std::uint32_t n = s.table.staged_count();
      if (n == 0) return;
      for (std::uint32_t k = 0; k < n; ++k) s.table.prefetch(s.table.staged_hash(k));
      for (std::uint32_t k = 0; k < n; ++k) {
        if (Entry* old = s.table.place_staged_unless_present(k, key_equal)) {
          detach(s, old, s.table.staged_hash(k));
          s.table.place_staged(k);
        }
      }
      s.table.end_flush();
    }

    // Detaches e, the newest entry for its key (the one lookups return). If e is still
    // staged, an older entry for the key in the main table is detached too: it would
    // otherwise become visible again. Returns the bytes freed. Requires: exclusive lock on s.
    std::uint64_t detach_newest(Shard& s, Entry* e, std::uint64_t h) noexcept {
      Entry* older = s.table.is_staged(h, e) ? s.table.find_main(h, e->key(), key_equal) : nullptr;
      std::uint64_t freed = size_of(s, e);
      detach(s, e, h);
      if (older != nullptr) {
        freed += size_of(s, older);
        detach(s, older, h);
      }
      return freed;
    }

    // Requires: exclusive lock on s. Removes a stale entry for a value that will not be cached.
    void reject_oversize_locked(Shard& s, std::uint64_t h, const K& key) {
      rejected_oversize.fetch_add(1, std::memory_order_relaxed);
      if (Entry* old = s.table.find(h, key, key_equal)) detach_newest(s, old, h);
    }

    bool insert(K key, V value, std::uint64_t size) {
      const std::uint64_t h = hash_of(key);
      Shard& s = shards[shard_of(h)];
      // The key's home line, needed when the stage is flushed (it often stays cached until
      // then) or at once when it already holds the key.
      s.table.prefetch(h);
      {
        auto lock = lock_exclusive(s);
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
    void make_room_locked(Shard& s, std::uint64_t incoming) noexcept {
      if (config.policy->kind() == EvictionPolicy<V>::Kind::kCustom) return;
      if (total_bytes.load(std::memory_order_relaxed) + incoming <= max_bytes()) return;
      const std::uint64_t target = low_watermark_bytes();
      while (total_bytes.load(std::memory_order_relaxed) + incoming > target) {
        Entry* victim = pick_victim(s);
        if (victim == nullptr) return;
        evict_locked(s, victim);
      }
    }

    static constexpr std::uint32_t kAnyShard = UINT32_MAX;

    // `near`: the shard just written, whose tail is compared first (see oldest_shard).
    std::uint64_t enforce_budget(std::uint32_t near = kAnyShard) {
      if (total_bytes.load(std::memory_order_relaxed) > max_bytes()) {
        return evict_to(low_watermark_bytes(), near);
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
                         std::uint64_t size) {
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
      make_room_locked(s, size);  // as insert() does: same lock, this shard's LRU tail
      insert_locked(s, h, std::move(k), std::move(v), size);
      return true;
    }

    // Requires: exclusive lock on s.
    void abandon_locked(Shard& s, const K& key, const std::shared_ptr<Flight>& flight) {
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
        auto lock = lock_exclusive(s);
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
      try {
        value.emplace(invoke_loader(loader, key));
        size = config.sizer(*value);
      } catch (...) {
        {
          auto lock = lock_exclusive(s);
          abandon_locked(s, key, flight);
        }
        flight->set_exception(std::current_exception());
        throw;
      }
      bool inserted = false;
      {
        auto lock = lock_exclusive(s);
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
        shards[shard_of(hashes[i])].table.prefetch(hashes[i]);
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
      std::unique_lock<std::shared_mutex> lock;
      std::uint32_t locked_shard = UINT32_MAX;
      for (auto& [si, pp] : by_shard) {
        Pending& p = *pp;
        const K& key = keys[p.first_position];
        Shard& s = shards[si];
        if (si != locked_shard) {
          if (lock.owns_lock()) lock.unlock();
          lock = lock_exclusive(s);
          locked_shard = si;
        }
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
      if (lock.owns_lock()) lock.unlock();

      if (!to_load.empty()) {
        std::vector<V> values;
        std::vector<std::uint64_t> sizes;
        try {
          values = batch_loader(static_cast<const std::vector<K>&>(to_load));
          if (values.size() != to_load.size()) {
            throw LoadError("pool '" + config.name + "': batch loader returned " +
                            std::to_string(values.size()) + " values for " +
                            std::to_string(to_load.size()) + " keys");
          }
          sizes.reserve(values.size());
          for (const V& v : values) sizes.push_back(config.sizer(v));
        } catch (...) {
          const std::exception_ptr error = std::current_exception();
          for (std::size_t j = 0; j < ours.size(); ++j) {
            Shard& s = shards[shard_of(ours[j]->hash)];
            {
              auto lock = lock_exclusive(s);
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
            auto shard_lock = lock_exclusive(s);
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
        local.loader_keys = to_load.size();
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

    bool evict_key(const K& key) {
      const std::uint64_t h = hash_of(key);
      Shard& s = shards[shard_of(h)];
      auto lock = lock_exclusive(s);
      Entry* e = s.table.find(h, key, key_equal);
      if (e == nullptr) return false;
      detach_newest(s, e, h);
      count_eviction(s);
      return true;
    }

    std::size_t clear() {
      std::size_t dropped = 0;
      for (std::uint32_t i = 0; i < shard_count; ++i) {
        Shard& s = shards[i];
        auto lock = lock_exclusive(s);
        std::vector<Entry*> all;
        all.reserve(s.table.size());
        s.table.for_each([&](Entry* e) { all.push_back(e); });
        for (Entry* e : all) detach(s, e, hash_of(e->key()));
        s.arena.reset_if_unused();  // not while a handle still pins a dropped entry
        dropped += all.size();
        inflight_count.fetch_sub(s.inflight.size(), std::memory_order_relaxed);
        s.inflight.clear();
        s.hits_at_clear = stripe_hits(s);
        s.misses_at_clear = stripe_misses(s);
        s.evictions.store(0, std::memory_order_relaxed);
      }
      rejected_oversize.store(0, std::memory_order_relaxed);
      return dropped;
    }

    // ----- eviction -----
    // Picks the LRU victim of shard s (built-in policies). Pinned entries met at the tail
    // move to the front: they are in use, and skipping them each time would make eviction
    // O(pinned). Returns nullptr when s has no unpinned entry. Requires: exclusive lock.
    Entry* pick_victim(Shard& s) noexcept {
      const bool size_aware = config.policy->kind() == EvictionPolicy<V>::Kind::kSizeAwareLru;
      const std::uint32_t sample = size_aware ? config.policy->sample() : 1;
      Entry* best = nullptr;
      std::int64_t best_priority = 0;
      std::uint32_t seen = 0;
      std::size_t steps = 0;
      const std::size_t limit = s.table.size();
      Link* l = s.lru.prev;
      while (l != &s.lru && seen < sample && steps < limit) {
        Entry* e = static_cast<Entry*>(l);
        Link* prev = l->prev;
        ++steps;
        if (e->pins() > 0) {
          unlink(e);
          push_front(s, e);
        } else {
          const std::int64_t priority =
              e->last_access() -
              static_cast<std::int64_t>(size_aware ? size_of(s, e) / 1024 : 0);
          if (best == nullptr || priority < best_priority) {
            best = e;
            best_priority = priority;
          }
          ++seen;
        }
        l = prev;
      }
      return best;
    }

    // In a pool larger than the caches every eviction would wait on memory four times: for
    // the victim's header, its record (the key, to find its table slot), its predecessor
    // (whose link changes) and its home line in the table. After each eviction the next
    // victim's header is already in cache (its link just changed), and its record was
    // started one eviction ago: start loading its predecessor's header and record, and its
    // own home line, now; the next eviction from this shard finds all of them in cache.
    // Requires: exclusive lock on s.
    void prefetch_next_victim(Shard& s) const noexcept {
      Link* next = s.lru.prev;
      if (next == &s.lru) return;
      // Both lines of the header (40 bytes may straddle two). A record's address is
      // arithmetic on its header's, so it needs no load (for the sentinel it is a harmless
      // address: a prefetch never faults).
      const Link* after = next->prev;
      __builtin_prefetch(after, 1);
      __builtin_prefetch(reinterpret_cast<const char*>(after) + sizeof(Entry) - 1, 1);
      __builtin_prefetch(Arena::record_of(after));
      s.table.prefetch(hash_of(static_cast<Entry*>(next)->key()));
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
      std::shared_lock<std::shared_mutex> lock(s.mutex, std::try_to_lock);
      if (!lock.owns_lock()) return INT64_MAX - 1;
      if (s.lru.prev == &s.lru) return INT64_MAX;
      return static_cast<Entry*>(s.lru.prev)->last_access();
    }

    // Evicts unpinned entries in policy order while `more(freed)` holds. Returns bytes freed.
    template <class More>
    std::uint64_t evict_while(More&& more, std::uint32_t near = kAnyShard) {
      if (config.policy->kind() == EvictionPolicy<V>::Kind::kCustom) return evict_custom(more);
      std::uint64_t freed = 0;
      if (shard_count == 1) {
        Shard& s = shards[0];
        auto lock = lock_exclusive(s);
        while (more(freed)) {
          Entry* victim = pick_victim(s);
          if (victim == nullptr) break;
          freed += evict_locked(s, victim);
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
        auto lock = lock_exclusive(s);
        // Take a few victims per lock to amortize it; hints are refreshed per round.
        for (int n = 0; n < 8 && more(freed); ++n) {
          Entry* victim = pick_victim(s);
          if (victim == nullptr) {
            exhausted[si] = true;
            ++exhausted_count;
            break;
          }
          freed += evict_locked(s, victim);
        }
      }
      return freed;
    }

    template <class More>
    std::uint64_t evict_custom(More& more) {
      // Take every shard lock in index order (the only multi-lock path, always in this order).
      std::vector<std::unique_lock<std::shared_mutex>> locks;
      locks.reserve(shard_count);
      for (std::uint32_t i = 0; i < shard_count; ++i) {
        locks.push_back(lock_flushed(shards[i]));  // so that no candidate replaces another
      }
      struct Candidate {
        std::int64_t priority;
        std::uint32_t shard;
        Entry* entry;
      };
      std::vector<Candidate> candidates;
      const auto& fn = config.policy->priority();
      for (std::uint32_t i = 0; i < shard_count; ++i) {
        shards[i].table.for_each([&](Entry* e) {
          if (e->pins() > 0) return;
          const std::int64_t p = fn(view_of(shards[i], e), e->value());
          if (p != kNeverEvict) candidates.push_back({p, i, e});
        });
      }
      std::sort(candidates.begin(), candidates.end(),
                [](const Candidate& a, const Candidate& b) { return a.priority < b.priority; });
      std::uint64_t freed = 0;
      for (const Candidate& c : candidates) {
        if (!more(freed)) break;
        freed += size_of(shards[c.shard], c.entry);
        detach(shards[c.shard], c.entry, hash_of(c.entry->key()));
        count_eviction(shards[c.shard]);
      }
      return freed;
    }

    std::uint64_t evict_at_least(std::uint64_t want) {
      if (want == 0) return 0;
      return evict_while([want](std::uint64_t freed) { return freed < want; });
    }

    std::uint64_t evict_to(std::uint64_t target, std::uint32_t near = kAnyShard) {
      return evict_while(
          [this, target](std::uint64_t) { return total_bytes.load(std::memory_order_relaxed) > target; },
          near);
    }

    EntryView view_of(const Shard& s, const Entry* e) const {
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
          auto lock = lock_flushed(s);
          st.entry_count += s.table.size();
          st.hits += stripe_hits(s) - s.hits_at_clear;
          st.misses += stripe_misses(s) - s.misses_at_clear;
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

    std::vector<EntrySnapshot> snapshot() {
      std::vector<EntrySnapshot> out;
      for (std::uint32_t i = 0; i < shard_count; ++i) {
        Shard& s = shards[i];
        auto lock = lock_flushed(s);  // replay pending reads so recency and counts are current
        s.table.for_each([&](Entry* e) {
          const EntryView v = view_of(s, e);
          out.push_back({config.key_formatter(e->key()), v.size_bytes, v.pin_count, v.loaded_at_ms,
                         v.last_access_at_ms, v.access_count});
        });
      }
      return out;
    }

    // Flushes the stages first (a staged entry and the one it replaces are both listed).
    std::string verify_invariants() {
      std::vector<std::unique_lock<std::shared_mutex>> locks;
      for (std::uint32_t i = 0; i < shard_count; ++i) {
        locks.emplace_back(shards[i].mutex);
        flush_stage(shards[i]);
      }
      std::uint64_t sum_all = 0;
      std::ostringstream err;
      for (std::uint32_t i = 0; i < shard_count; ++i) {
        Shard& s = shards[i];
        std::uint64_t sum = 0, listed = 0, pinned = 0;
        for (Link* l = s.lru.next; l != &s.lru; l = l->next) {
          const Entry* e = static_cast<const Entry*>(l);
          sum += size_of(s, e);
          ++listed;
          if (e->pins() > 0) ++pinned;
          if (e->state.load() & kDetachedBit) err << "shard " << i << ": detached entry in list; ";
          if (s.table.find(hash_of(e->key()), e->key(), key_equal) != e) {
            err << "shard " << i << ": listed entry missing from table; ";
          }
        }
        if (const std::string table = s.table.audit(rehasher()); !table.empty()) {
          err << "shard " << i << ": " << table;
        }
        if (listed != s.table.size()) {
          err << "shard " << i << ": list has " << listed << " entries, table " << s.table.size()
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
    const std::int64_t epoch_ms = monotonic_ms();
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
  };

  std::shared_ptr<Core> core_;
};

}  // namespace pagekeeper
