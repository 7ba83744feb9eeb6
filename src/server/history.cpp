// MetricsHistory (see history.hpp).

#include "server/history.hpp"

#include <algorithm>

namespace pagekeeper::server {

namespace {

// after - before for a counter that may have been reset in between (clear() resets the
// pools' hits and misses): then everything since the reset is new.
std::uint64_t grew(std::uint64_t before, std::uint64_t after) { return after >= before ? after - before : after; }

// The q-quantile (0 < q < 1) of the latencies counted in `buckets`, in ms.
std::optional<double> percentile_ms(const std::array<std::uint64_t, HttpMetrics::kBuckets.size() + 1>& buckets,
                                    double q) {
  std::uint64_t total = 0;
  for (std::uint64_t n : buckets) total += n;
  if (total == 0) return std::nullopt;
  const double rank = q * static_cast<double>(total);
  double below = 0;
  for (std::size_t b = 0; b < buckets.size(); ++b) {
    if (buckets[b] == 0 || below + static_cast<double>(buckets[b]) < rank) {
      below += static_cast<double>(buckets[b]);
      continue;
    }
    const double lower = b == 0 ? 0.0 : HttpMetrics::kBuckets[b - 1];
    if (b == HttpMetrics::kBuckets.size()) return lower * 1000;  // +Inf bucket: its lower bound
    const double upper = HttpMetrics::kBuckets[b];
    const double within = (rank - below) / static_cast<double>(buckets[b]);
    return (lower + (upper - lower) * within) * 1000;
  }
  return HttpMetrics::kBuckets.back() * 1000;
}

nlohmann::json optional_json(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); }
nlohmann::json optional_json(const std::optional<std::uint64_t>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json();
}

}  // namespace

MetricsSample sample_between(const MetricsReading& before, const MetricsReading& after) {
  MetricsSample s;
  s.at_ms = after.at_ms;
  const double seconds = std::max<double>(1, static_cast<double>(after.at_ms - before.at_ms)) / 1000;
  s.requests_per_second = static_cast<double>(grew(before.requests, after.requests)) / seconds;
  std::array<std::uint64_t, HttpMetrics::kBuckets.size() + 1> delta{};
  for (std::size_t b = 0; b < delta.size(); ++b) delta[b] = grew(before.latency_buckets[b], after.latency_buckets[b]);
  s.p50_ms = percentile_ms(delta, 0.50);
  s.p95_ms = percentile_ms(delta, 0.95);
  s.p99_ms = percentile_ms(delta, 0.99);
  for (const PoolStats& p : after.pools) {
    MetricsSample::Pool out{p.name, p.total_bytes, p.max_bytes, p.entry_count, std::nullopt};
    const auto old = std::find_if(before.pools.begin(), before.pools.end(),
                                  [&](const PoolStats& o) { return o.name == p.name; });
    const std::uint64_t hits = old == before.pools.end() ? p.hits : grew(old->hits, p.hits);
    const std::uint64_t misses = old == before.pools.end() ? p.misses : grew(old->misses, p.misses);
    if (hits + misses > 0) out.hit_ratio = static_cast<double>(hits) / static_cast<double>(hits + misses);
    s.pools.push_back(std::move(out));
  }
  s.host_used_bytes = after.host_used_bytes;
  s.host_limit_bytes = after.host_limit_bytes;
  return s;
}

MetricsHistory::MetricsHistory(Reader reader, std::chrono::milliseconds interval, std::size_t capacity)
    : reader_(std::move(reader)), interval_(interval), capacity_(std::max<std::size_t>(capacity, 1)) {}

MetricsHistory::~MetricsHistory() { stop(); }

void MetricsHistory::start() {
  MetricsReading first = reader_();
  {
    MutexLock lock(mutex_);
    previous_ = std::move(first);
  }
  thread_ = std::thread([this] { run(); });
}

void MetricsHistory::stop() {
  {
    MutexLock lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void MetricsHistory::run() {
  MutexLock lock(mutex_);
  while (!wake_.wait_for(lock, interval_, [this] {
           mutex_.assert_held();
           return stopping_;
         })) {
    lock.unlock();
    MetricsReading now = reader_();  // reads the daemon's counters; not under our lock
    lock.lock();
    if (previous_ && now.at_ms > previous_->at_ms) {
      samples_.push_back(sample_between(*previous_, now));
      while (samples_.size() > capacity_) samples_.pop_front();
    }
    previous_ = std::move(now);
  }
}

std::size_t MetricsHistory::size() const {
  MutexLock lock(mutex_);
  return samples_.size();
}

nlohmann::json MetricsHistory::to_json() const {
  nlohmann::json samples = nlohmann::json::array();
  MutexLock lock(mutex_);
  for (const MetricsSample& s : samples_) {
    nlohmann::json pools = nlohmann::json::array();
    for (const MetricsSample::Pool& p : s.pools)
      pools.push_back({{"name", p.name},
                       {"bytes", p.bytes},
                       {"maxBytes", p.max_bytes},
                       {"entries", p.entries},
                       {"hitRatio", optional_json(p.hit_ratio)}});
    samples.push_back({{"atMs", s.at_ms},
                       {"requestsPerSecond", s.requests_per_second},
                       {"p50Ms", optional_json(s.p50_ms)},
                       {"p95Ms", optional_json(s.p95_ms)},
                       {"p99Ms", optional_json(s.p99_ms)},
                       {"hostUsedBytes", optional_json(s.host_used_bytes)},
                       {"hostLimitBytes", optional_json(s.host_limit_bytes)},
                       {"pools", std::move(pools)}});
  }
  return {{"intervalMs", interval_.count()}, {"capacity", capacity_}, {"samples", std::move(samples)}};
}

}  // namespace pagekeeper::server
