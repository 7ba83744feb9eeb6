// pagekeeper/detail/read_buffer.hpp
//
// The striped read buffers of a pool shard: hits are recorded here without a lock and
// replayed into the shard's eviction policy by the drain, under the shard's exclusive lock.
//
// Internal to PagedResourcePool (pagekeeper/pool.hpp): not part of the public API.

#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace pagekeeper::pool_detail {

inline constexpr std::uint32_t kRingSize = 64;

// One thread stripe of a shard's read recording (Caffeine's striped read buffer): hits are
// counted here and queued in a ring for promotion; the ring is replayed into the shard's
// eviction policy under its exclusive lock. Threads map to stripes by pagekeeper's thread index,
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
//   Key hashes: when the shard's policy replays hits by their key's hash (a frequency
//   sketch), a reader also stores the hash its lookup computed, in `hashes` beside the
//   entry's cell, so the drain neither reads the entry's record (the key, a line apart from
//   the header) nor waits on it to start loading the sketch. Other policies leave `hashes`
//   untouched, so their hits store and their stripes occupy no more than before. A cell's
//   entry and hash are two words: a drainer racing a lap may read them from different hits
//   (torn), so it uses a hash only when no lap can have reached the cell while it read it
//   (see drain_stripe), else it rehashes the entry's key; the shared stripe's hashes it never
//   uses (two writers of one cell can interleave), and that stripe's writers store none.
template <class Entry>
struct alignas(64) ReadStripe {
  std::atomic<std::uint64_t> recorded{0};       // hits queued for promotion, ever
  std::atomic<std::uint64_t> unqueued_hits{0};  // hits inside the promotion delay, ever
  std::atomic<std::uint64_t> misses{0};         // ever
  // Whether readers store key hashes. Set before the pool is shared, read-only after.
  bool carries_hashes = false;
  std::array<std::atomic<Entry*>, kRingSize> ring{};
  std::array<std::atomic<std::uint64_t>, kRingSize> hashes{};
  // Ring position replayed up to. Guarded by the shard's exclusive lock; on its own line
  // so that the drainer writes nothing the owner reads.
  alignas(64) std::uint64_t drained = 0;
};

// A thread's stripe of one shard, and whether the thread owns it (see stripe_of in the pool).
template <class Entry>
struct StripeRef {
  ReadStripe<Entry>& stripe;
  bool owned;
};

// Adds one to a stripe counter: a plain store for the stripe's owner, else a fetch_add.
[[gnu::always_inline]] inline void bump(std::atomic<std::uint64_t>& counter, bool owned) noexcept {
  if (owned) {
    counter.store(counter.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  } else {
    counter.fetch_add(1, std::memory_order_relaxed);
  }
}

// Counts a hit on e, whose key has hash h (the pool's hash_of), and queues it for
// promotion. Needs no lock. Returns true when the caller should drain the shard (every
// kRingSize-th position of its stripe).
// Also starts loading e's header (for writing), which the drain will read and relink: the
// lookup did not need it, and fetched now, while this thread goes on with other lookups, it
// is in cache when the ring is replayed instead of a miss the drain waits on.
// Always inlined: it is on every hit, and GCC's budget left it out of line.
template <class Entry>
[[gnu::always_inline]] inline bool record_read(StripeRef<Entry> ref, Entry* e, std::uint64_t h) noexcept {
  __builtin_prefetch(e, 1);
  __builtin_prefetch(reinterpret_cast<const char*>(e) + sizeof(Entry) - 1, 1);
  ReadStripe<Entry>& st = ref.stripe;
  std::uint64_t pos = 0;
  if (ref.owned) {
    // Sole writer: store the entry, then publish the position (release), so a drainer that
    // sees the position sees the entry. The cell's stores are releases too (plain stores on
    // x86): a drainer that reads either word of this hit then sees `recorded` at pos or
    // later, which is how it tells that a lap overwrote a cell while it read it.
    pos = st.recorded.load(std::memory_order_relaxed);
    const std::size_t cell = pos & (kRingSize - 1);
    if (st.carries_hashes) st.hashes[cell].store(h, std::memory_order_release);
    st.ring[cell].store(e, std::memory_order_release);
    st.recorded.store(pos + 1, std::memory_order_release);
  } else {
    pos = st.recorded.fetch_add(1, std::memory_order_relaxed);
    st.ring[pos & (kRingSize - 1)].store(e, std::memory_order_release);
  }
  return (pos & (kRingSize - 1)) == kRingSize - 1;
}

// True when st holds events not yet replayed. Requires: the shard's exclusive lock.
template <class Entry>
bool has_undrained(const ReadStripe<Entry>& st) noexcept {
  return st.recorded.load(std::memory_order_acquire) != st.drained;
}

// Replays the events of st not yet drained, oldest first, in three passes so the misses of
// each overlap. The first reads the cells and, for a stripe that carries key hashes, calls
// prefetch_hash(h) with each hit's hash (for what the hash alone selects, a sketch block)
// while the entries' headers load. The second drops entries that live(e) says were removed
// or freed meanwhile, and calls prefetch(e, h) for the rest, to start loading what apply
// will write. The third calls apply(e, h). h is the hit's key hash when the stripe carries
// hashes: the cell's, or rehash(e) (called after live(e)) where that cannot be trusted (the
// shared stripe; or a lap may have overwritten the cell while it was read); else it is 0.
// Requires: the shard's exclusive lock. Reads recorded while it runs are either replayed or
// left for the next drain.
template <class Entry, class PrefetchHash, class Live, class Rehash, class Prefetch, class Apply>
void drain_stripe(ReadStripe<Entry>& st, bool shared, PrefetchHash&& prefetch_hash, Live&& live,
                  Rehash&& rehash, Prefetch&& prefetch, Apply&& apply) noexcept {
  const std::uint64_t end = st.recorded.load(std::memory_order_acquire);
  if (end == st.drained) return;
  // Positions more than a ring behind were overwritten: replay the last kRingSize.
  const std::uint64_t begin = std::max(st.drained, end - std::min<std::uint64_t>(end, kRingSize));
  const auto events = static_cast<std::size_t>(end - begin);
  const bool hashed = st.carries_hashes;
  const bool cell_hashes = hashed && !shared;
  std::array<Entry*, kRingSize> taken;
  std::array<std::uint64_t, kRingSize> hashes;
  for (std::size_t i = 0; i < events; ++i) {
    const std::size_t cell = (begin + i) & (kRingSize - 1);
    taken[i] = st.ring[cell].load(std::memory_order_relaxed);
    // Null: a shared stripe's first lap, claimed, not yet stored.
    if (taken[i] == nullptr) continue;
    __builtin_prefetch(taken[i], 1);
    if (cell_hashes) {
      hashes[i] = st.hashes[cell].load(std::memory_order_relaxed);
      prefetch_hash(hashes[i]);
    }
  }
  // Cells from `trusted_from` on were not overwritten while read. A word read from a hit at
  // position q (a release store after its owner published q) shows `recorded` >= q from
  // here on; a cell of position pos is overwritten only by a hit at pos + kRingSize or
  // later. So if `recorded` is still below that, both words read are pos's own. A torn hash
  // would only miscount one sketch increment, but the sampler would record a wrong key.
  std::atomic_thread_fence(std::memory_order_acquire);
  std::uint64_t trusted_from = end;
  if (cell_hashes) {
    const std::uint64_t now_recorded = st.recorded.load(std::memory_order_relaxed);
    trusted_from = now_recorded - std::min<std::uint64_t>(now_recorded, kRingSize - 1);
  }
  std::size_t n = 0;
  for (std::size_t i = 0; i < events; ++i) {
    Entry* e = taken[i];
    if (e == nullptr || !live(e)) continue;
    std::uint64_t h = 0;
    if (hashed) h = cell_hashes && begin + i >= trusted_from ? hashes[i] : rehash(e);
    prefetch(e, h);
    taken[n] = e;
    hashes[n++] = h;
  }
  for (std::size_t i = 0; i < n; ++i) apply(taken[i], hashes[i]);
  st.drained = end;
}

}  // namespace pagekeeper::pool_detail
