// SHARDS miss-ratio curves (detail/miss_ratio_sampler.hpp) against exact LRU: with every key
// sampled the curve is exact up to the histogram's 9% buckets; sampled at 10% (and capped in
// size) it stays within a few points of the exact curve.

#include "pagekeeper/detail/miss_ratio_sampler.hpp"
#include "pagekeeper/pool.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <list>
#include <random>
#include <set>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include <gtest/gtest.h>

namespace pagekeeper::pool_detail {
namespace {

using pagekeeper::EvictionPolicy;
using pagekeeper::PagedResourcePool;
using pagekeeper::PoolConfig;

// The exact miss ratio of an LRU cache of `capacity` unit-size keys over `trace`.
double exact_lru_miss_ratio(const std::vector<std::uint64_t>& trace, std::size_t capacity) {
  std::list<std::uint64_t> order;
  std::unordered_map<std::uint64_t, std::list<std::uint64_t>::iterator> where;
  std::size_t misses = 0;
  for (const std::uint64_t key : trace) {
    if (const auto it = where.find(key); it != where.end()) {
      order.splice(order.begin(), order, it->second);
      continue;
    }
    ++misses;
    order.push_front(key);
    where[key] = order.begin();
    if (order.size() > capacity) {
      where.erase(order.back());
      order.pop_back();
    }
  }
  return static_cast<double>(misses) / static_cast<double>(trace.size());
}

// Zipf-like accesses over `keys` keys (a skewed working set, as caches see).
std::vector<std::uint64_t> skewed_trace(std::size_t length, std::size_t keys) {
  std::mt19937_64 rng(42);
  std::vector<double> weights(keys);
  for (std::size_t i = 0; i < keys; ++i) weights[i] = 1.0 / static_cast<double>(i + 1);
  std::discrete_distribution<std::size_t> pick(weights.begin(), weights.end());
  std::vector<std::uint64_t> trace(length);
  for (auto& key : trace) key = pick(rng) * 7919 + 13;
  return trace;
}

ReuseHistogram replay(const std::vector<std::uint64_t>& trace, double rate, std::size_t max_samples) {
  MissRatioSampler sampler(rate, max_samples);
  for (const std::uint64_t key : trace) sampler.access(MissRatioSampler::sample_hash(key), 1);
  return sampler.histogram();
}

TEST(MissRatioSampler, ALoopLongerThanTheCacheAlwaysMissesAndFitsOnceLarger) {
  std::vector<std::uint64_t> trace;
  for (int round = 0; round < 10; ++round) {
    for (std::uint64_t key = 0; key < 100; ++key) trace.push_back(key);
  }
  const ReuseHistogram h = replay(trace, 1.0, 1000);
  EXPECT_DOUBLE_EQ(h.total, 1000.0);
  EXPECT_DOUBLE_EQ(h.cold, 100.0);
  EXPECT_DOUBLE_EQ(h.miss_ratio(50), 1.0);   // every reuse is 100 keys away
  EXPECT_DOUBLE_EQ(h.miss_ratio(120), 0.1);  // only the first round misses
}

TEST(MissRatioSampler, EverySampledKeyGivesTheExactLruCurve) {
  const auto trace = skewed_trace(200'000, 20'000);
  const ReuseHistogram h = replay(trace, 1.0, 1'000'000);
  for (const std::size_t capacity : {100u, 1000u, 5000u, 15000u}) {
    EXPECT_NEAR(h.miss_ratio(static_cast<double>(capacity)), exact_lru_miss_ratio(trace, capacity),
                0.02)
        << capacity;
  }
}

TEST(MissRatioSampler, ATenthOfTheKeysCappedAt512StaysClose) {
  const auto trace = skewed_trace(200'000, 20'000);
  MissRatioSampler sampler(0.1, 512);
  for (const std::uint64_t key : trace) sampler.access(MissRatioSampler::sample_hash(key), 1);
  EXPECT_LE(sampler.tracked(), 512u);
  EXPECT_LT(sampler.rate(), 0.1);  // the cap lowered the rate
  EXPECT_DOUBLE_EQ(sampler.histogram().total, 200'000.0);
  for (const std::size_t capacity : {1000u, 5000u, 15000u}) {
    EXPECT_NEAR(sampler.histogram().miss_ratio(static_cast<double>(capacity)),
                exact_lru_miss_ratio(trace, capacity), 0.05)
        << capacity;
  }
}

// A distance's bucket is floor(8 * log2(bytes)), taken from the double's bits: it agrees with
// libm's log2 wherever the two are not within rounding of a bucket's edge, each bucket's
// floor lies in that bucket, and what is at most 1, not a number, or past 2^64 is clamped.
TEST(ReuseHistogram, BucketOfIsTheFloorOfEightTimesLog2) {
  std::mt19937_64 rng(11);
  for (int i = 0; i < 100'000; ++i) {
    const double bytes = std::exp2(std::uniform_real_distribution<double>(0.0, 63.9)(rng));
    const double scaled = 8.0 * std::log2(bytes);
    if (scaled - std::floor(scaled) < 1e-9 || std::ceil(scaled) - scaled < 1e-9) continue;
    ASSERT_EQ(ReuseHistogram::bucket_of(bytes), static_cast<int>(scaled)) << bytes;
  }
  for (int b = 0; b < ReuseHistogram::kBuckets; ++b) {
    EXPECT_EQ(ReuseHistogram::bucket_of(ReuseHistogram::bucket_floor(b)), b) << b;
  }
  EXPECT_EQ(ReuseHistogram::bucket_of(0.5), 0);
  EXPECT_EQ(ReuseHistogram::bucket_of(std::nan("")), 0);
  EXPECT_EQ(ReuseHistogram::bucket_of(1e30), ReuseHistogram::kBuckets - 1);
  EXPECT_EQ(ReuseHistogram::bucket_of(std::numeric_limits<double>::infinity()), ReuseHistogram::kBuckets - 1);
}

TEST(MissRatioSampler, HistogramsOfShardsAddWithTheirDistancesScaled) {
  ReuseHistogram shard;
  shard.weight[ReuseHistogram::bucket_of(100.0)] = 90;
  shard.cold = 10;
  shard.total = 100;
  ReuseHistogram pool;
  pool.add(shard, 4.0);  // four shards' worth of keys between reuses
  pool.add(shard, 4.0);
  EXPECT_DOUBLE_EQ(pool.total, 200.0);
  EXPECT_DOUBLE_EQ(pool.miss_ratio(300.0), 1.0);
  EXPECT_NEAR(pool.miss_ratio(500.0), 0.1, 1e-9);
}

// The sampler's table of tracked keys: inserts, lookups and erasures (which shift later
// slots of a probe run back, across the end of the array too) agree with a std::set.
TEST(SampleTable, AgreesWithASetThroughInsertsAndErasures) {
  SampleTable table(200);
  std::set<std::uint64_t> model;
  std::mt19937_64 rng(7);
  for (int step = 0; step < 20'000; ++step) {
    // Few distinct hashes, so probe runs are long and erasures hit their middles.
    const std::uint64_t h = MissRatioSampler::sample_hash(rng() % 400);
    SampleTable::Slot* slot = table.find(h);
    ASSERT_EQ(slot != nullptr, model.count(h) == 1) << step;
    if (slot != nullptr && (rng() & 1) != 0) {
      table.erase(slot);
      model.erase(h);
    } else if (slot == nullptr && model.size() < 200) {
      table.insert(h, static_cast<std::uint32_t>(step), 1);
      model.insert(h);
    }
    ASSERT_EQ(table.size(), model.size());
  }
  std::size_t visited = 0;
  table.for_each_indexed([&](std::uint32_t /*index*/, const SampleTable::Slot& slot) {
    ++visited;
    EXPECT_EQ(model.count(slot.hash), 1u);
  });
  EXPECT_EQ(visited, model.size());
}

// A pool's curve is exactly what a sampler fed the same accesses estimates, with the sample
// capped (so keys leave it): the pool marks sampled entries at insert and counts the hits
// on the others in bulk, which must not change the estimate.
TEST(PoolMissRatioCurve, APoolsCurveIsItsAccessesReplayedIntoOneSampler) {
  PoolConfig<std::uint64_t, std::uint64_t> c;
  c.name = "curve";
  c.max_bytes = 100'000;  // holds every key: the sampler sees every access of the trace
  c.sizer = [](const std::uint64_t&) { return std::uint64_t{1}; };
  c.policy = EvictionPolicy<std::uint64_t>::lru();
  c.shards = 1;
  c.curve_sampling_rate = 0.2;
  c.curve_max_samples = 64;
  PagedResourcePool<std::uint64_t, std::uint64_t> pool(c);
  MissRatioSampler reference(0.2, 64);
  for (const std::uint64_t key : skewed_trace(50'000, 5'000)) {
    pool.load_or_share(key, [key] { return key; });
    reference.access(MissRatioSampler::sample_hash(mix64(std::hash<std::uint64_t>{}(key))), 1);
  }
  ASSERT_LT(reference.rate(), 0.2);  // the cap dropped keys
  const ReuseHistogram expected = reference.histogram();
  for (const double bytes : {10.0, 100.0, 1000.0, 4000.0}) {
    EXPECT_DOUBLE_EQ(pool.estimated_miss_ratio(static_cast<std::uint64_t>(bytes)), expected.miss_ratio(bytes))
        << bytes;
  }
}

// The pool feeds its shards' samplers from inserts and from the drain of recorded hits.
TEST(PoolMissRatioCurve, APoolEstimatesItsOwnCurve) {
  PoolConfig<std::uint64_t, std::uint64_t> c;
  c.name = "curve";
  c.max_bytes = 1000;
  c.sizer = [](const std::uint64_t&) { return std::uint64_t{1}; };
  c.policy = EvictionPolicy<std::uint64_t>::lru();
  c.curve_sampling_rate = 1.0;
  PagedResourcePool<std::uint64_t, std::uint64_t> pool(c);
  for (int round = 0; round < 10; ++round) {
    for (std::uint64_t key = 0; key < 100; ++key) {
      pool.load_or_share(key, [key] { return key; });
    }
  }
  EXPECT_DOUBLE_EQ(pool.estimated_miss_ratio(50), 1.0);  // a 100-key loop misses in 50
  EXPECT_NEAR(pool.estimated_miss_ratio(200), 0.1, 1e-9);  // only the first round misses

  c.curve_sampling_rate = 0.0;  // off (the default): no estimate
  PagedResourcePool<std::uint64_t, std::uint64_t> plain(c);
  plain.load_or_share(1, [] { return std::uint64_t{1}; });
  EXPECT_EQ(plain.estimated_miss_ratio(10), 0.0);
  c.curve_sampling_rate = 1.5;
  EXPECT_THROW((PagedResourcePool<std::uint64_t, std::uint64_t>(c)), std::invalid_argument);
}

}  // namespace
}  // namespace pagekeeper::pool_detail
