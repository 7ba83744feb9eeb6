// MetricsHistory, the dashboard's history: what one sample says about the interval between two
// readings (rates, percentiles from histogram deltas, hit ratios, counter resets) and the ring
// the sampler thread fills (bounded, oldest first, stopped cleanly).

#include "server/history.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "support/patience.hpp"

namespace pagekeeper::server {
namespace {

constexpr std::size_t kBucket1ms = 4;  // HttpMetrics::kBuckets[4] = 0.001 s

PoolStats pool(const std::string& name, std::uint64_t bytes, std::uint64_t max_bytes, std::uint64_t entries,
               std::uint64_t hits, std::uint64_t misses) {
  return PoolStats{.name = name, .entry_count = entries, .total_bytes = bytes, .max_bytes = max_bytes, .hits = hits,
                   .misses = misses};
}

TEST(MetricsHistory, SampleBetweenTwoReadings) {
  ASSERT_EQ(HttpMetrics::kBuckets[kBucket1ms], 0.001);
  MetricsReading before;
  before.at_ms = 10'000;
  before.requests = 100;
  before.latency_buckets[kBucket1ms] = 100;
  before.pools = {pool("cache", 10, 100, 1, 50, 50)};
  MetricsReading after = before;
  after.at_ms = 12'000;
  after.requests = 300;
  // 200 new requests: 100 in (0.5 ms, 1 ms], 100 in (1 ms, 2.5 ms].
  after.latency_buckets[kBucket1ms] = 200;
  after.latency_buckets[kBucket1ms + 1] = 100;
  after.pools = {pool("cache", 20, 100, 2, 80, 60), pool("new", 5, 0, 1, 1, 0)};
  after.host_used_bytes = 7;
  after.host_limit_bytes = 9;

  const MetricsSample s = sample_between(before, after);
  EXPECT_EQ(s.at_ms, 12'000);
  EXPECT_DOUBLE_EQ(s.requests_per_second, 100.0);
  // The median is the 100th of 200: the top of the 1 ms bucket.
  ASSERT_TRUE(s.p50_ms.has_value());
  EXPECT_NEAR(*s.p50_ms, 1.0, 1e-9);
  // p95: 90 of the 100 in (1, 2.5] ms, interpolated: 1 + 1.5 * 0.9.
  ASSERT_TRUE(s.p95_ms.has_value());
  EXPECT_NEAR(*s.p95_ms, 2.35, 1e-9);
  ASSERT_EQ(s.pools.size(), 2U);
  EXPECT_EQ(s.pools[0].bytes, 20U);
  ASSERT_TRUE(s.pools[0].hit_ratio.has_value());
  EXPECT_DOUBLE_EQ(*s.pools[0].hit_ratio, 30.0 / 40.0);  // over the interval, not cumulative
  ASSERT_TRUE(s.pools[1].hit_ratio.has_value());
  EXPECT_DOUBLE_EQ(*s.pools[1].hit_ratio, 1.0);
  EXPECT_EQ(s.host_used_bytes, std::optional<std::uint64_t>(7));
}

TEST(MetricsHistory, QuietIntervalsAndResetCounters) {
  MetricsReading before;
  before.at_ms = 1000;
  before.pools = {pool("cache", 10, 100, 1, 50, 50)};
  MetricsReading after = before;
  after.at_ms = 2000;
  MetricsSample s = sample_between(before, after);
  EXPECT_EQ(s.requests_per_second, 0.0);
  EXPECT_FALSE(s.p50_ms.has_value()) << "no requests: no latency";
  EXPECT_FALSE(s.pools[0].hit_ratio.has_value()) << "no lookups: no hit ratio";
  // cache/clear resets hits and misses: what is there now is new.
  after.pools = {pool("cache", 0, 100, 0, 3, 1)};
  s = sample_between(before, after);
  ASSERT_TRUE(s.pools[0].hit_ratio.has_value());
  EXPECT_DOUBLE_EQ(*s.pools[0].hit_ratio, 0.75);
}

TEST(MetricsHistory, SamplerKeepsTheLastCapacitySamples) {
  std::atomic<std::int64_t> clock{0};
  std::atomic<std::uint64_t> requests{0};
  MetricsHistory history(
      [&] {
        MetricsReading r;
        r.at_ms = clock.fetch_add(1000) + 1000;
        r.requests = requests.fetch_add(10) + 10;
        return r;
      },
      std::chrono::milliseconds(10), 5);
  history.start();
  test_support::eventually([&] { return clock.load() >= 12'000; }, std::chrono::milliseconds(5));
  history.stop();
  const nlohmann::json j = history.to_json();
  EXPECT_EQ(j["intervalMs"], 10);
  EXPECT_EQ(j["capacity"], 5);
  ASSERT_EQ(j["samples"].size(), 5U);
  std::int64_t previous = 0;
  for (const nlohmann::json& s : j["samples"]) {
    EXPECT_GT(s["atMs"].get<std::int64_t>(), previous) << "oldest first";
    previous = s["atMs"].get<std::int64_t>();
    EXPECT_DOUBLE_EQ(s["requestsPerSecond"].get<double>(), 10.0);
    EXPECT_TRUE(s["p50Ms"].is_null());
  }
}

}  // namespace
}  // namespace pagekeeper::server
