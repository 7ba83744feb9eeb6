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
// Memory: O(max_samples) (a map node and two Fenwick cells per tracked key, ~100 bytes) plus
// the 512-bucket histogram (4 KiB).
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
#include <map>
#include <vector>

namespace pagekeeper::pool_detail {

// Distances (bytes) counted per bucket, and the accesses they represent.
struct ReuseHistogram {
  static constexpr int kBucketsPerDoubling = 8;
  static constexpr int kBuckets = 64 * kBucketsPerDoubling;
  std::array<double, kBuckets> weight{};  // accesses whose distance falls in each bucket
  double cold = 0.0;                      // first accesses (misses at every size)
  double total = 0.0;                     // all accesses represented

  // The bucket of a distance of `bytes` (>= 1): floor(8 * log2(bytes)).
  static int bucket_of(double bytes) {
    if (!(bytes > 1.0)) return 0;
    const int b = static_cast<int>(std::log2(bytes) * kBucketsPerDoubling);
    return std::clamp(b, 0, kBuckets - 1);
  }
  // The bytes where bucket b begins.
  static double bucket_floor(int b) { return std::exp2(static_cast<double>(b) / kBucketsPerDoubling); }

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

class MissRatioSampler {
 public:
  // rate in (0, 1]; max_samples >= 1.
  MissRatioSampler(double rate, std::size_t max_samples)
      : threshold_(rate >= 1.0 ? ~std::uint64_t{0}
                               : static_cast<std::uint64_t>(std::ldexp(rate, 64))),
        max_samples_(std::max<std::size_t>(max_samples, 1)),
        tree_(std::bit_ceil(2 * max_samples_ + 2), 0) {}

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
    const double scale = 1.0 / rate();
    const auto it = samples_.find(h);
    if (it == samples_.end()) {
      histogram_.cold += scale;
      histogram_.total += scale;
      samples_.emplace(h, Sample{next_ts_, size});
      fenwick_add(next_ts_, static_cast<std::int64_t>(size));
      ++next_ts_;
      if (samples_.size() > max_samples_) drop_largest();
      return;
    }
    Sample& sample = it->second;
    // Bytes of tracked keys whose last access came after this key's.
    const std::int64_t since = fenwick_sum(next_ts_) - fenwick_sum(sample.ts + 1);
    const double distance = (static_cast<double>(since) + static_cast<double>(size)) * scale;
    histogram_.weight[ReuseHistogram::bucket_of(distance)] += scale;
    histogram_.total += scale;
    fenwick_add(sample.ts, -static_cast<std::int64_t>(sample.size));
    sample.ts = next_ts_;
    sample.size = size;
    fenwick_add(next_ts_, static_cast<std::int64_t>(size));
    ++next_ts_;
  }

  void clear() {
    samples_.clear();
    std::fill(tree_.begin(), tree_.end(), 0);
    next_ts_ = 0;
    seen_ = 0;
    histogram_ = {};
  }

 private:
  struct Sample {
    std::size_t ts;
    std::uint64_t size;
  };

  void fenwick_add(std::size_t i, std::int64_t delta) {
    for (++i; i <= tree_.size(); i += i & (~i + 1)) tree_[i - 1] += delta;
  }
  // Sum of cells [0, n).
  std::int64_t fenwick_sum(std::size_t n) const {
    std::int64_t sum = 0;
    for (; n > 0; n -= n & (~n + 1)) sum += tree_[n - 1];
    return sum;
  }

  // Renumbers the tracked keys' timestamps 0..n-1 in order, so the tree has room again.
  void compact() {
    std::vector<Sample*> order;
    order.reserve(samples_.size());
    for (auto& [h, s] : samples_) order.push_back(&s);
    std::sort(order.begin(), order.end(), [](const Sample* a, const Sample* b) { return a->ts < b->ts; });
    std::fill(tree_.begin(), tree_.end(), 0);
    next_ts_ = 0;
    for (Sample* s : order) {
      s->ts = next_ts_++;
      fenwick_add(s->ts, static_cast<std::int64_t>(s->size));
    }
  }

  // Lowers the threshold to the largest tracked hash, which leaves the sample. Counts so far
  // keep their weight: each was weighted 1/rate when it was recorded, which is what the
  // paper's rescaling of raw counts by new rate / old rate achieves.
  void drop_largest() {
    const auto largest = std::prev(samples_.end());
    threshold_ = largest->first;
    fenwick_add(largest->second.ts, -static_cast<std::int64_t>(largest->second.size));
    samples_.erase(largest);
  }

  std::uint64_t threshold_;
  std::size_t max_samples_;
  std::map<std::uint64_t, Sample> samples_;  // by sample hash: the largest is dropped first
  std::vector<std::int64_t> tree_;           // Fenwick tree of sizes by last-access time
  std::size_t next_ts_ = 0;
  std::uint64_t seen_ = 0;  // every access, sampled or not
  ReuseHistogram histogram_;
};

}  // namespace pagekeeper::pool_detail
