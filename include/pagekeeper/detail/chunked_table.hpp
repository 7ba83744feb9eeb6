// pagekeeper/detail/chunked_table.hpp
//
// ChunkedTable: a pool shard's hash table (F14-style chunks of one cache line) and its
// insert stage.
//
// Internal to PagedResourcePool (pagekeeper/pool.hpp): not part of the public API.

#pragma once

#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#include "pagekeeper/detail/aligned_mapping.hpp"

namespace pagekeeper::pool_detail {

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
// until the flush, which the owner removes then (see PagedResourcePool's flush_stage). Staging never
// moves a slot that a reader may be probing except inside a write window.
// Node supplies the entry layout:
//   Node::Key, Node::Equal          the key and its equality functor;
//   Node::Entry, Node::Record       an entry's header and its record (Record has `key` and,
//                                   with optimistic reads, racy_key());
//   Node::kOptimisticReads          whether lock-free readers probe the table;
//   Node::entry_of(const Record*)   header of a record (null for null), and record_of(const Entry*).
template <class Node>
class ChunkedTable {
  using K = typename Node::Key;
  using KeyEqual = typename Node::Equal;
  using Entry = typename Node::Entry;
  using Record = typename Node::Record;
  static constexpr bool kOptimisticReads = Node::kOptimisticReads;
  static Entry* entry_of(const Record* r) noexcept { return Node::entry_of(r); }
  static Record* record_of(const Entry* e) noexcept { return Node::record_of(e); }

 public:
  ChunkedTable() = default;
  ChunkedTable(const ChunkedTable&) = delete;
  ChunkedTable& operator=(const ChunkedTable&) = delete;
  ~ChunkedTable() {
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
    explicit WriteWindow(ChunkedTable& t) noexcept : table_(t) {
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
    ChunkedTable& table_;
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
    if (mapped && bytes >= kHugePageBytes) {
      // Every probe and insert of a large table lands on a random line: on huge pages.
      memory = map_aligned(bytes, kHugePageBytes, /*huge_pages=*/true);
    } else if (mapped) {
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

}  // namespace pagekeeper::pool_detail
