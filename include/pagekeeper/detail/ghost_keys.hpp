// pagekeeper/detail/ghost_keys.hpp
//
// GhostKeys: one shard's memory of the keys it evicted most recently (their hashes only, no
// values), so that a re-load of one of them is recognised. A pool whose working set does not
// fit its budget keeps evicting what it loads again soon after; the ghost counts those
// re-loads and says how deep in the eviction history each was found: the bytes evicted after
// it, plus its own size, which is how much more budget would have kept it (exactly so for
// LRU; an estimate for other policies).
//
//   - Bounded: a ring of the last `max_keys` evictions and an open-addressing index of their
//     hashes (linear probing, deletion by backward shift): no allocation after construction,
//     about 24 bytes per key.
//   - remember(h, size) records an eviction; recall(h) finds and forgets a key on its way back
//     in, returning its depth in bytes. Depths count this shard's evictions only; the pool
//     scales them by its shard count (keys hash uniformly over shards).
//   - Depths found are counted in a histogram of 4 buckets per doubling (GhostDepths).
//
// Thread safety: none. The pool keeps one per shard and touches it only under that shard's
// exclusive lock.

#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace pagekeeper::pool_detail {

// Re-loads of recently evicted keys by the depth they were found at.
struct GhostDepths {
  static constexpr int kBucketsPerDoubling = 4;
  static constexpr int kBuckets = 64 * kBucketsPerDoubling;
  // count[b]: re-loads found at a depth in [bucket_floor(b), bucket_floor(b + 1)) bytes.
  std::array<std::uint64_t, kBuckets> count{};

  static int bucket_of(std::uint64_t bytes) {
    if (bytes <= 1) return 0;
    const int b = static_cast<int>(std::log2(static_cast<double>(bytes)) * kBucketsPerDoubling);
    return std::clamp(b, 0, kBuckets - 1);
  }
  static double bucket_floor(int b) { return std::exp2(static_cast<double>(b) / kBucketsPerDoubling); }

  void add(std::uint64_t bytes) { ++count[static_cast<std::size_t>(bucket_of(bytes))]; }
  void add(const GhostDepths& other) {
    for (std::size_t b = 0; b < count.size(); ++b) count[b] += other.count[b];
  }
  std::uint64_t total() const {
    std::uint64_t n = 0;
    for (const std::uint64_t c : count) n += c;
    return n;
  }
  // The smallest bucket ceiling (bytes) that covers at least `share` of the counts; 0 when
  // there are none.
  std::uint64_t quantile_bytes(double share) const {
    const std::uint64_t all = total();
    if (all == 0) return 0;
    const double want = share * static_cast<double>(all);
    std::uint64_t seen = 0;
    for (int b = 0; b < kBuckets; ++b) {
      seen += count[static_cast<std::size_t>(b)];
      if (static_cast<double>(seen) >= want) {
        return static_cast<std::uint64_t>(std::ceil(bucket_floor(b + 1)));
      }
    }
    return static_cast<std::uint64_t>(bucket_floor(kBuckets));
  }
};

class GhostKeys {
 public:
  // max_keys >= 1.
  explicit GhostKeys(std::size_t max_keys)
      : ring_(std::max<std::size_t>(max_keys, 1)),
        index_(std::bit_ceil(2 * ring_.size()), kEmpty),
        mask_(index_.size() - 1) {}

  std::size_t capacity() const noexcept { return ring_.size(); }
  std::size_t size() const noexcept { return live_; }

  // An eviction of the key of hash h, of `size` bytes.
  void remember(std::uint64_t h, std::uint64_t size) noexcept {
    if (const std::size_t slot = find_slot(h); slot != kNotFound) unlink(slot);
    Ghost& g = ring_[next_];
    if (g.live) unlink(find_position(g.hash, static_cast<std::uint32_t>(next_)));
    g = Ghost{h, evicted_bytes_, true};
    evicted_bytes_ += size;
    std::size_t slot = h & mask_;
    while (index_[slot] != kEmpty) slot = (slot + 1) & mask_;
    index_[slot] = static_cast<std::uint32_t>(next_);
    ++live_;
    next_ = next_ + 1 == ring_.size() ? 0 : next_ + 1;
  }

  // If the key of hash h was evicted within the last capacity() evictions, forgets it and
  // returns the bytes evicted since, plus its own size.
  std::optional<std::uint64_t> recall(std::uint64_t h) noexcept {
    const std::size_t slot = find_slot(h);
    if (slot == kNotFound) return std::nullopt;
    const std::uint64_t depth = evicted_bytes_ - ring_[index_[slot]].evicted_before;
    unlink(slot);
    return depth;
  }

 private:
  static constexpr std::uint32_t kEmpty = UINT32_MAX;
  static constexpr std::size_t kNotFound = SIZE_MAX;
  struct Ghost {
    std::uint64_t hash = 0;
    std::uint64_t evicted_before = 0;  // evicted_bytes_ when it was evicted
    bool live = false;
  };

  std::size_t find_slot(std::uint64_t h) const noexcept {
    for (std::size_t slot = h & mask_; index_[slot] != kEmpty; slot = (slot + 1) & mask_) {
      if (ring_[index_[slot]].hash == h) return slot;
    }
    return kNotFound;
  }
  // The index slot that holds ring position `pos` (whose hash is h); it is present.
  std::size_t find_position(std::uint64_t h, std::uint32_t pos) const noexcept {
    std::size_t slot = h & mask_;
    while (index_[slot] != pos) slot = (slot + 1) & mask_;
    return slot;
  }
  // Removes index slot `slot` (backward-shift deletion keeps every probe chain unbroken).
  void unlink(std::size_t slot) noexcept {
    ring_[index_[slot]].live = false;
    --live_;
    std::size_t hole = slot;
    for (std::size_t next = (hole + 1) & mask_; index_[next] != kEmpty; next = (next + 1) & mask_) {
      const std::size_t home = ring_[index_[next]].hash & mask_;
      // Move `next` into the hole unless its home lies cyclically in (hole, next].
      const bool stays = hole <= next ? (home > hole && home <= next) : (home > hole || home <= next);
      if (!stays) {
        index_[hole] = index_[next];
        hole = next;
      }
    }
    index_[hole] = kEmpty;
  }

  std::vector<Ghost> ring_;
  std::vector<std::uint32_t> index_;  // ring positions of live ghosts, by hash
  std::size_t mask_;
  std::size_t next_ = 0;   // the ring position the next eviction takes
  std::size_t live_ = 0;
  std::uint64_t evicted_bytes_ = 0;  // all bytes this shard has evicted
};

}  // namespace pagekeeper::pool_detail
