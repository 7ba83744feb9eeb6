// MetricsHistory: what the dashboard charts, kept by the daemon so a page opens with its
// charts already filled. A sampler thread reads the daemon's cumulative counters every
// `interval` (request count and latency histogram, each pool's bytes, budget, hits and misses,
// host memory) and stores what changed since the previous reading as one sample (request rate,
// latency percentiles, hit ratio over the interval) in a ring of `capacity` samples: by
// default the last hour at 5 s.
//
// Thread safety: every method may be called from any thread. mutex_ guards samples_, previous_
// and stopping_; the reader runs on the sampler thread without the lock.

#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "pagekeeper/detail/mutex.hpp"
#include "pagekeeper/resource_pool.hpp"
#include "server/metrics.hpp"

namespace pagekeeper::server {

// Cumulative counters at one moment.
struct MetricsReading {
  std::int64_t at_ms = 0;  // wall clock, milliseconds since the epoch
  std::uint64_t requests = 0;
  std::array<std::uint64_t, HttpMetrics::kBuckets.size() + 1> latency_buckets{};  // last: +Inf
  std::vector<PoolStats> pools;  // named as the broker names them
  std::optional<std::uint64_t> host_used_bytes;
  std::optional<std::uint64_t> host_limit_bytes;
};

// What changed between two readings.
struct MetricsSample {
  struct Pool {
    std::string name;
    std::uint64_t bytes = 0;
    std::uint64_t max_bytes = 0;
    std::uint64_t entries = 0;
    std::optional<double> hit_ratio;  // over the interval; none without lookups
  };
  std::int64_t at_ms = 0;
  double requests_per_second = 0;
  // Latency percentiles over the interval, in ms, interpolated inside histogram buckets;
  // none without requests.
  std::optional<double> p50_ms, p95_ms, p99_ms;
  std::vector<Pool> pools;
  std::optional<std::uint64_t> host_used_bytes;
  std::optional<std::uint64_t> host_limit_bytes;
};

// The sample between `before` and `after` (after.at_ms > before.at_ms).
MetricsSample sample_between(const MetricsReading& before, const MetricsReading& after);

class MetricsHistory {
 public:
  using Reader = std::function<MetricsReading()>;

  MetricsHistory(Reader reader, std::chrono::milliseconds interval, std::size_t capacity);
  ~MetricsHistory();  // stops the sampler
  MetricsHistory(const MetricsHistory&) = delete;
  MetricsHistory& operator=(const MetricsHistory&) = delete;

  // Takes the first reading and starts the sampler thread. Call once.
  void start();
  // Stops and joins the sampler thread. Idempotent.
  void stop();

  // {intervalMs, capacity, samples: [{atMs, requestsPerSecond, p50Ms, p95Ms, p99Ms,
  //  hostUsedBytes, hostLimitBytes, pools: [{name, bytes, maxBytes, entries, hitRatio}]}]},
  // oldest first; absent values are null.
  nlohmann::json to_json() const;
  std::size_t size() const;

 private:
  void run();

  const Reader reader_;
  const std::chrono::milliseconds interval_;
  const std::size_t capacity_;
  mutable Mutex mutex_;
  CondVar wake_;
  bool stopping_ PAGEKEEPER_GUARDED_BY(mutex_) = false;
  std::optional<MetricsReading> previous_ PAGEKEEPER_GUARDED_BY(mutex_);
  std::deque<MetricsSample> samples_ PAGEKEEPER_GUARDED_BY(mutex_);
  std::thread thread_;
};

}  // namespace pagekeeper::server
