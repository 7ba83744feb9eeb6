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
template <class Entry>
struct alignas(64) ReadStripe {
  std::atomic<std::uint64_t> recorded{0};       // hits queued for promotion, ever
  std::atomic<std::uint64_t> unqueued_hits{0};  // hits inside the promotion delay, ever
  std::atomic<std::uint64_t> misses{0};         // ever
  std::array<std::atomic<Entry*>, kRingSize> ring{};
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
inline void bump(std::atomic<std::uint64_t>& counter, bool owned) noexcept {
  if (owned) {
    counter.store(counter.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  } else {
    counter.fetch_add(1, std::memory_order_relaxed);
  }
}

// Counts a hit on e and queues it for promotion. Needs no lock. Returns true when the
// caller should drain the shard (every kRingSize-th position of its stripe).
// Also starts loading e's header (for writing), which the drain will read and relink: the
// lookup did not need it, and fetched now, while this thread goes on with other lookups, it
// is in cache when the ring is replayed instead of a miss the drain waits on.
template <class Entry>
bool record_read(StripeRef<Entry> ref, Entry* e) noexcept {
  __builtin_prefetch(e, 1);
  __builtin_prefetch(reinterpret_cast<const char*>(e) + sizeof(Entry) - 1, 1);
  ReadStripe<Entry>& st = ref.stripe;
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

// True when st holds events not yet replayed. Requires: the shard's exclusive lock.
template <class Entry>
bool has_undrained(const ReadStripe<Entry>& st) noexcept {
  return st.recorded.load(std::memory_order_acquire) != st.drained;
}

// Replays the events of st not yet drained, oldest first: live(e) drops entries that were
// removed or freed meanwhile, prefetch(e) starts loading what apply(e, note) will write and
// returns a note for it (called for every live event before the first apply, so the misses
// overlap; the note spares apply recomputing what prefetch computed, such as a hash).
// Requires: the shard's exclusive lock. Reads recorded while it runs are either replayed or
// left for the next drain.
template <class Entry, class Live, class Prefetch, class Apply>
void drain_stripe(ReadStripe<Entry>& st, Live&& live, Prefetch&& prefetch, Apply&& apply) noexcept {
  const std::uint64_t end = st.recorded.load(std::memory_order_acquire);
  if (end == st.drained) return;
  // Positions more than a ring behind were overwritten: replay the last kRingSize.
  const std::uint64_t begin = std::max(st.drained, end - std::min<std::uint64_t>(end, kRingSize));
  // Three passes, so the misses of each overlap: the first starts loading the headers
  // (lookups read records, so a header is cold in a large pool), the second takes the
  // live entries and starts loading what the policy will change, the third applies them.
  std::array<Entry*, kRingSize> taken;
  std::array<std::uint64_t, kRingSize> notes;
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
    if (!live(e)) continue;
    notes[n] = prefetch(e);
    taken[n++] = e;
  }
  for (std::size_t i = 0; i < n; ++i) apply(taken[i], notes[i]);
  st.drained = end;
}

}  // namespace pagekeeper::pool_detail
