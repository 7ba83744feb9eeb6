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
#include <bit>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace pagekeeper::pool_detail {

inline constexpr std::uint32_t kRingSize = 64;

// While several threads read one shard, its stripes queue one hit in kSampledOneIn and only
// count the others (see ReadStripe::sample_mask and ReaderConcurrency).
inline constexpr std::uint32_t kSampledOneIn = 16;
static_assert(std::has_single_bit(kSampledOneIn));

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
//   While other threads read the same shard, the drain sets sample_mask (see
//   ReaderConcurrency) and the stripe queues only one hit in kSampledOneIn: the others are
//   counted and dropped, as Caffeine's lossy read buffers drop reads when full. A dropped hit
//   touches nothing but the stripe's first line: not the entry's header, which the drain
//   relinks on whichever core holds the lock, and not the ring. The drain then replays a
//   sixteenth of the hits, so two readers do not each pay for both readers' promotions.
template <class Entry>
struct alignas(64) ReadStripe {
  std::atomic<std::uint64_t> recorded{0};       // hits queued for promotion, ever
  // Hits counted but not queued, ever: inside the promotion delay, or dropped while sampling.
  std::atomic<std::uint64_t> unqueued_hits{0};
  std::atomic<std::uint64_t> misses{0};         // ever
  // Whether readers store key hashes. Set before the pool is shared, read-only after.
  bool carries_hashes = false;
  // 0: every hit is queued; kSampledOneIn - 1: one in kSampledOneIn. Written by the drainer
  // (under the shard's exclusive lock) only when it changes, so the owner's line stays put.
  std::atomic<std::uint32_t> sample_mask{0};
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
// While the stripe samples, a hit that is not queued is only counted (in unqueued_hits):
// hits advance recorded + unqueued_hits by one each, and the one that brings it to a multiple
// of kSampledOneIn is queued (approximately so on the shared stripe, where counts race).
// Always inlined: it is on every hit, and GCC's budget left it out of line.
template <class Entry>
[[gnu::always_inline]] inline bool record_read(StripeRef<Entry> ref, Entry* e, std::uint64_t h) noexcept {
  ReadStripe<Entry>& st = ref.stripe;
  if (const std::uint32_t mask = st.sample_mask.load(std::memory_order_relaxed); mask != 0) [[unlikely]] {
    const std::uint64_t seen = st.recorded.load(std::memory_order_relaxed) +
                               st.unqueued_hits.load(std::memory_order_relaxed);
    if ((seen & mask) != 0) {
      bump(st.unqueued_hits, ref.owned);
      return false;
    }
  }
  __builtin_prefetch(e, 1);
  __builtin_prefetch(reinterpret_cast<const char*>(e) + sizeof(Entry) - 1, 1);
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

// Whether other threads read a shard while one drains it, judged at each drain that finds
// hits to replay: a drain that finds them in two or more stripes counts towards sampling,
// one that finds them in a single stripe counts against. Sampling starts after kEnterAt
// such drains in a row (so the leftovers of a thread that read the shard earlier, drained
// once, never start it) and stops when the count falls back to zero. One thread alone
// therefore never samples: its hits are all queued and replayed in order. Guarded by the
// shard's exclusive lock.
class ReaderConcurrency {
 public:
  // Counts one drain that found hits in `active_stripes` stripes (at least one). Returns
  // the stripes' new sample_mask when sampling starts or stops, else nothing.
  std::optional<std::uint32_t> drained(std::uint32_t active_stripes) noexcept {
    if (active_stripes >= 2) {
      score_ = std::min(score_ + 1, kMaxScore);
    } else if (score_ > 0) {
      --score_;
    }
    const bool sample = sampling_ ? score_ > 0 : score_ >= kEnterAt;
    if (sample == sampling_) return std::nullopt;
    sampling_ = sample;
    return sample ? kSampledOneIn - 1 : 0;
  }

 private:
  static constexpr std::uint32_t kEnterAt = 2;
  static constexpr std::uint32_t kMaxScore = 4;
  std::uint32_t score_ = 0;
  bool sampling_ = false;
};

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
