// pagekeeper/detail/miss_ratio_sampler.hpp
//
// MissRatioSampler: one shard's share of a pool's miss-ratio curve, estimated online with
// SHARDS (Waldspurger et al., "Efficient MRC Construction with SHARDS", FAST 2015).
//
//   - Spatial sampling: a key is tracked iff its (remixed) hash is below a threshold, so every
//     access to a tracked key is seen and reuse distances among tracked keys are exact.
//     rate = threshold / 2^64.
//   - Reuse distance of an access: the bytes of distinct tracked keys accessed since the
//     key's previous access, plus its own size, divided by the rate (an estimate of the
//     bytes of all keys). A cache of that many bytes (LRU) would have hit. A first access is
//     cold: a miss at every size.
//   - Fixed size: at most max_samples keys are tracked. One more lowers the threshold to the
//     largest tracked hash and drops that key (SHARDS's fixed-size variant).
//   - Counts are kept in a histogram of distances with 8 buckets per doubling (about 9%
//     resolution), weighted by 1/rate so shards with different rates can be summed.
//   - SHARDS_adj: the sampled keys may draw more or fewer accesses than the rate predicts (a
//     skewed workload makes that likely); histogram() moves the difference between all
//     accesses seen and the weighted sampled ones into the first bucket, as the paper does.
//
// Memory: O(max_samples) (two slots of a flat hash table, a heap cell, and two Fenwick cells
// and two 4-byte cells of compaction scratch per tracked key, ~90 bytes, allocated up front)
// plus the 512-bucket histogram (4 KiB).
//
// Cost: an access to a key that is not sampled is a comparison (the pool does not even make
// it: it marks sampled entries at insert and counts the others in bulk, count_unsampled());
// a sampled one is a hash lookup and three Fenwick operations of log2(2 * max_samples) steps.
//
// Thread safety: none. The pool keeps one sampler per shard and touches it only under that
// shard's exclusive lock (inserts and the drain of reads); readers of the curve take the
// shard's lock too.

#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace pagekeeper::pool_detail {

// Distances (bytes) counted per bucket, and the accesses they represent.
struct ReuseHistogram {
  static constexpr int kBucketsPerDoubling = 8;
  static constexpr int kBuckets = 64 * kBucketsPerDoubling;
  std::array<double, kBuckets> weight{};  // accesses whose distance falls in each bucket
  double cold = 0.0;                      // first accesses (misses at every size)
  double total = 0.0;                     // all accesses represented

  // The bucket of a distance of `bytes` (>= 1): floor(8 * log2(bytes)), from the double's
  // binary exponent and a comparison of its mantissa with the eight bucket floors of one
  // doubling (every sampled hit comes here: a libm log2 call was a sixth of its cost).
  static int bucket_of(double bytes) noexcept {
    if (!(bytes > 1.0)) return 0;
    const auto bits = std::bit_cast<std::uint64_t>(bytes);
    const auto exponent = static_cast<int>((bits >> 52) & 0x7ff) - 1023;
    if (exponent >= kBuckets / kBucketsPerDoubling) return kBuckets - 1;  // and infinity
    const double mantissa = std::bit_cast<double>((bits & ((std::uint64_t{1} << 52) - 1)) | (std::uint64_t{1023} << 52));
    int within = 0;
    for (int k = 1; k < kBucketsPerDoubling; ++k) within += mantissa >= kDoublingFloors[k] ? 1 : 0;
    return exponent * kBucketsPerDoubling + within;
  }
  // The bytes where bucket b begins.
  static double bucket_floor(int b) { return std::exp2(static_cast<double>(b) / kBucketsPerDoubling); }
  // bucket_floor(0..7), as libm's exp2 rounds them: constants, so bucket_of needs no
  // initialization guard and inlines (a test checks them against bucket_floor).
  static constexpr std::array<double, kBucketsPerDoubling> kDoublingFloors = {
      0x1p+0,
      0x1.172b83c7d517bp+0,
      0x1.306fe0a31b715p+0,
      0x1.4bfdad5362a27p+0,
      0x1.6a09e667f3bcdp+0,
      0x1.8ace5422aa0dbp+0,
      0x1.ae89f995ad3adp+0,
      0x1.d5818dcfba487p+0,
  };

  void add(const ReuseHistogram& other, double distance_scale) {
    cold += other.cold;
    total += other.total;
    for (int b = 0; b < kBuckets; ++b) {
      if (other.weight[b] == 0.0) continue;
      const int to = distance_scale == 1.0 ? b : bucket_of(bucket_floor(b) * distance_scale);
      weight[to] += other.weight[b];
    }
  }

  // Estimated LRU miss ratio of a cache of `bytes`: accesses whose distance exceeds it, and
  // cold ones, over all; the bucket holding `bytes` counts in proportion. 0 with no access.
  double miss_ratio(double bytes) const {
    if (total <= 0.0) return 0.0;
    double hits = 0.0;
    for (int b = 0; b < kBuckets; ++b) {
      const double lo = bucket_floor(b);
      if (lo > bytes) break;
      const double hi = bucket_floor(b + 1);
      hits += bytes >= hi ? weight[b] : weight[b] * (bytes - lo) / (hi - lo);
    }
    return std::clamp(1.0 - hits / total, 0.0, 1.0);
  }
};

// The keys a MissRatioSampler tracks, by sample hash: open addressing with linear probing in
// a power-of-two array at most two-thirds full, allocated once (a lookup is one or two
// adjacent lines; a node-based map costs a division and a pointer chase per node).
class SampleTable {
 public:
  struct Slot {
    std::uint64_t hash;
    std::uint64_t size;
    std::uint32_t ts;
    std::uint32_t used;
  };

  // Room for `max_entries` keys. Throws std::bad_alloc.
  explicit SampleTable(std::size_t max_entries)
      : slots_(std::bit_ceil(max_entries + max_entries / 2 + 2)), mask_(slots_.size() - 1) {}

  std::size_t size() const noexcept { return size_; }

  // The slot of hash h, or nullptr.
  Slot* find(std::uint64_t h) noexcept {
    for (std::size_t i = home(h);; i = (i + 1) & mask_) {
      Slot& slot = slots_[i];
      if (slot.used == 0) return nullptr;
      if (slot.hash == h) return &slot;
    }
  }

  // Starts loading the line where a lookup of h begins.
  [[gnu::always_inline]] void prefetch(std::uint64_t h) const noexcept { __builtin_prefetch(&slots_[home(h)]); }

  // Requires: h is absent and size() is below the capacity given at construction.
  void insert(std::uint64_t h, std::uint32_t ts, std::uint64_t size) noexcept {
    std::size_t i = home(h);
    while (slots_[i].used != 0) i = (i + 1) & mask_;
    slots_[i] = Slot{h, size, ts, 1};
    ++size_;
  }

  // Removes a slot find() returned, shifting later slots of its probe run back (no tombstones).
  void erase(Slot* slot) noexcept {
    auto hole = static_cast<std::size_t>(slot - slots_.data());
    slots_[hole].used = 0;
    --size_;
    for (std::size_t j = (hole + 1) & mask_; slots_[j].used != 0; j = (j + 1) & mask_) {
      const std::size_t want = home(slots_[j].hash);
      // Slot j stays when its home lies cyclically in (hole, j]: moving it would put it
      // before its home.
      const bool stays = hole <= j ? (hole < want && want <= j) : (hole < want || want <= j);
      if (stays) continue;
      slots_[hole] = slots_[j];
      slots_[j].used = 0;
      hole = j;
    }
  }

  // Calls fn(index, slot) for every used slot; at(index) is that slot until the next insert
  // or erase.
  template <class Fn>
  void for_each_indexed(Fn&& fn) noexcept {
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].used != 0) fn(static_cast<std::uint32_t>(i), slots_[i]);
    }
  }
  Slot& at(std::uint32_t index) noexcept { return slots_[index]; }

  void clear() noexcept {
    for (Slot& slot : slots_) slot.used = 0;
    size_ = 0;
  }

 private:
  // Sample hashes lie below the sampling threshold, so their top bits are mostly zero: remix.
  std::size_t home(std::uint64_t h) const noexcept {
    return static_cast<std::size_t>((h * 0x9e3779b97f4a7c15ULL) >> 32) & mask_;
  }

  std::vector<Slot> slots_;
  std::size_t mask_;
  std::size_t size_ = 0;
};

class MissRatioSampler {
 public:
  // rate in (0, 1]; max_samples >= 1.
  MissRatioSampler(double rate, std::size_t max_samples)
      : threshold_(rate >= 1.0 ? ~std::uint64_t{0}
                               : static_cast<std::uint64_t>(std::ldexp(rate, 64))),
        // Timestamps are 32-bit (the tree holds two per tracked key): a billion keys at most.
        max_samples_(std::clamp<std::size_t>(max_samples, 1, std::size_t{1} << 30)),
        samples_(max_samples_ + 1),
        tree_(std::bit_ceil(2 * max_samples_ + 2), 0),
        slot_at_(tree_.size(), kNoSlot) {
    by_hash_.reserve(max_samples_ + 1);
    scale_ = 1.0 / this->rate();
  }

  // The hash the sampler decides on, decorrelated from the pool's own use of `pool_hash`
  // (shard and table slot).
  static std::uint64_t sample_hash(std::uint64_t pool_hash) noexcept {
    std::uint64_t x = pool_hash ^ 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
  }

  bool sampled(std::uint64_t h) const noexcept { return h < threshold_; }
  double rate() const noexcept {
    return threshold_ == ~std::uint64_t{0} ? 1.0 : std::ldexp(static_cast<double>(threshold_), -64);
  }
  std::size_t tracked() const noexcept { return samples_.size(); }
  // Starts loading what access() of sample hash h reads first (a caller replaying a batch
  // of accesses overlaps their misses). Always inlined: GCC deems a function whose only
  // effect is a prefetch pure, and drops the call when it is not inlined before that.
  [[gnu::always_inline]] void prefetch(std::uint64_t h) const noexcept {
    if (sampled(h)) samples_.prefetch(h);
  }
  // Accesses to keys known not to be sampled (h >= the threshold, which never rises), counted
  // without looking at them: access() of each would only count them.
  void count_unsampled(std::uint64_t n) noexcept { seen_ += n; }
  // The counts so far, adjusted (SHARDS_adj) so they stand for every access seen.
  ReuseHistogram histogram() const noexcept {
    ReuseHistogram h = histogram_;
    h.weight[0] += static_cast<double>(seen_) - h.total;
    h.total = static_cast<double>(seen_);
    return h;
  }

  // One access to the key of sample hash `h` (see sample_hash) whose value is `size` bytes.
  // Ignores keys not sampled.
  void access(std::uint64_t h, std::uint64_t size) {
    ++seen_;
    if (!sampled(h)) return;
    if (next_ts_ == tree_.size()) compact();
    const double scale = scale_;
    SampleTable::Slot* const sample = samples_.find(h);
    if (sample == nullptr) {
      histogram_.cold += scale;
      histogram_.total += scale;
      samples_.insert(h, static_cast<std::uint32_t>(next_ts_), size);
      by_hash_.push_back(h);
      std::push_heap(by_hash_.begin(), by_hash_.end());
      fenwick_add(next_ts_, static_cast<std::int64_t>(size));
      ++next_ts_;
      if (samples_.size() > max_samples_) drop_largest();
      return;
    }
    // Bytes of tracked keys whose last access came after this key's (every tracked key's
    // bytes sit in the tree at its last access, so the total less the prefix up to this one's).
    const std::int64_t since = tree_total_ - fenwick_sum(std::size_t{sample->ts} + 1);
    const double distance = (static_cast<double>(since) + static_cast<double>(size)) * scale;
    histogram_.weight[ReuseHistogram::bucket_of(distance)] += scale;
    histogram_.total += scale;
    fenwick_add(sample->ts, -static_cast<std::int64_t>(sample->size));
    sample->ts = static_cast<std::uint32_t>(next_ts_);
    sample->size = size;
    fenwick_add(next_ts_, static_cast<std::int64_t>(size));
    ++next_ts_;
  }

  void clear() {
    samples_.clear();
    by_hash_.clear();
    tree_total_ = 0;
    std::fill(tree_.begin(), tree_.end(), 0);
    next_ts_ = 0;
    seen_ = 0;
    histogram_ = {};
  }

 private:
  void fenwick_add(std::size_t i, std::int64_t delta) {
    tree_total_ += delta;
    for (++i; i <= tree_.size(); i += i & (~i + 1)) tree_[i - 1] += delta;
  }
  // Sum of cells [0, n).
  std::int64_t fenwick_sum(std::size_t n) const {
    std::int64_t sum = 0;
    for (; n > 0; n -= n & (~n + 1)) sum += tree_[n - 1];
    return sum;
  }

  // Renumbers the tracked keys' timestamps 0..n-1 in order, so the tree has room again.
  // Timestamps are distinct and below tree_.size(): placing each slot at its timestamp orders
  // them in linear time (a sort was a tenth of the sampler's cost), and the tree is rebuilt
  // from its leaves in linear time too.
  void compact() {
    samples_.for_each_indexed([this](std::uint32_t index, const SampleTable::Slot& slot) { slot_at_[slot.ts] = index; });
    std::fill(tree_.begin(), tree_.end(), 0);
    tree_total_ = 0;
    next_ts_ = 0;
    for (std::uint32_t& index : slot_at_) {
      if (index == kNoSlot) continue;
      SampleTable::Slot& slot = samples_.at(index);
      index = kNoSlot;
      slot.ts = static_cast<std::uint32_t>(next_ts_);
      tree_[next_ts_++] = static_cast<std::int64_t>(slot.size);
      tree_total_ += static_cast<std::int64_t>(slot.size);
    }
    // Each cell adds itself into its parent, the next cell whose range covers it.
    for (std::size_t i = 1; i <= tree_.size(); ++i) {
      const std::size_t parent = i + (i & (~i + 1));
      if (parent <= tree_.size()) tree_[parent - 1] += tree_[i - 1];
    }
  }

  // Lowers the threshold to the largest tracked hash, which leaves the sample. Counts so far
  // keep their weight: each was weighted 1/rate when it was recorded, which is what the
  // paper's rescaling of raw counts by new rate / old rate achieves.
  void drop_largest() {
    std::pop_heap(by_hash_.begin(), by_hash_.end());
    const std::uint64_t largest_hash = by_hash_.back();
    by_hash_.pop_back();
    SampleTable::Slot* const largest = samples_.find(largest_hash);
    threshold_ = largest_hash;
    scale_ = 1.0 / rate();
    fenwick_add(largest->ts, -static_cast<std::int64_t>(largest->size));
    samples_.erase(largest);
  }

  std::uint64_t threshold_;
  std::size_t max_samples_;
  double scale_ = 1.0;  // 1 / rate(): the accesses each sampled one stands for
  SampleTable samples_;
  std::vector<std::uint64_t> by_hash_;  // the tracked sample hashes, a max-heap: the largest goes first
  std::vector<std::int64_t> tree_;      // Fenwick tree of sizes by last-access time
  std::int64_t tree_total_ = 0;         // the sum of every cell of tree_
  static constexpr std::uint32_t kNoSlot = ~std::uint32_t{0};
  std::vector<std::uint32_t> slot_at_;  // compact()'s scratch: slot index by timestamp, else kNoSlot
  std::size_t next_ts_ = 0;
  std::uint64_t seen_ = 0;  // every access, sampled or not
  ReuseHistogram histogram_;
};

}  // namespace pagekeeper::pool_detail
