#include "pagekeeper/broker.hpp"

#include <algorithm>
#include <cmath>
#include <exception>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "pagekeeper/clock.hpp"

namespace pagekeeper {

struct PressureBroker::CounterCells {
  std::atomic<std::uint64_t> relief_count{0};
  std::atomic<std::uint64_t> relief_bytes_freed{0};
  std::atomic<std::uint64_t> stuck_count{0};
  std::atomic<std::uint64_t> shed_count{0};
  std::atomic<std::uint64_t> shed_bytes{0};

  PoolReliefCounters load() const {
    constexpr auto r = std::memory_order_relaxed;
    return {relief_count.load(r), relief_bytes_freed.load(r), stuck_count.load(r),
            shed_count.load(r), shed_bytes.load(r)};
  }
};

namespace {

constexpr auto kRelaxed = std::memory_order_relaxed;

void require_fraction(double value, const char* field) {
  if (!(std::isfinite(value) && value > 0.0 && value <= 1.0)) {
    throw PressureConfigError(std::string(field) + " must be in (0, 1], got " +
                              std::to_string(value));
  }
}

// floor(fraction * bytes) without losing precision for large byte counts. A product within
// a billionth of a byte of an integer counts as that integer, so 0.6 * 1000 (0.6 is not exact
// in binary) is 600 and not 599.
std::uint64_t fraction_of(double fraction, std::uint64_t bytes) {
  const long double product = static_cast<long double>(fraction) * bytes;
  if (product <= 0) return 0;
  if (product >= static_cast<long double>(bytes)) return bytes;
  const long double nearest = std::nearbyint(product);
  if (std::fabs(product - nearest) <= 1e-9L * std::max<long double>(1, product)) {
    return static_cast<std::uint64_t>(nearest);
  }
  return static_cast<std::uint64_t>(product);
}

// Asks `pool` for `want` bytes, never letting an exception escape the pass.
PoolAction evict_from(const std::string& name, ResourcePool& pool, std::uint64_t want,
                      double pressure_before) {
  PoolAction action;
  action.name = name;
  action.pressure_before = pressure_before;
  action.bytes_requested = want;
  try {
    action.bytes_freed = pool.evict_at_least(want);
  } catch (const std::exception& e) {
    action.error = e.what();
    spdlog::error("pressure broker: evict_at_least({}) on pool '{}' failed: {}", want, name,
                  e.what());
  } catch (...) {
    action.error = "unknown exception";
    spdlog::error("pressure broker: evict_at_least({}) on pool '{}' failed", want, name);
  }
  try {
    action.pressure_after = pool.pressure();
  } catch (...) {
    action.pressure_after = pressure_before;
  }
  return action;
}

}  // namespace

void HostSheddingPolicy::validate() const {
  require_fraction(max_pool_fraction_per_pass, "host_shedding.max_pool_fraction_per_pass");
  require_fraction(max_total_fraction, "host_shedding.max_total_fraction");
}

void BrokerConfig::validate() const {
  thresholds.validate();
  if (!(std::isfinite(act_above) && act_above >= thresholds.warning &&
        act_above <= thresholds.critical)) {
    throw PressureConfigError("act_above must lie between the warning (" +
                              std::to_string(thresholds.warning) + ") and critical (" +
                              std::to_string(thresholds.critical) + ") thresholds, got " +
                              std::to_string(act_above));
  }
  if (!(std::isfinite(target_fraction) && target_fraction > 0.0 &&
        target_fraction < act_above)) {
    throw PressureConfigError("target_fraction must be in (0, act_above=" +
                              std::to_string(act_above) + "), got " +
                              std::to_string(target_fraction));
  }
  if (tick_interval.count() <= 0) {
    throw PressureConfigError("tick_interval must be positive, got " +
                              std::to_string(tick_interval.count()) + " ms");
  }
  host_shedding.validate();
}

PressureBroker::PressureBroker(BrokerConfig config, std::shared_ptr<const HostMemorySource> host)
    : config_(config),
      host_(std::move(host)),
      registry_(std::make_shared<const Registry>()) {
  config_.validate();
}

PressureBroker::~PressureBroker() { stop(); }

std::shared_ptr<const PressureBroker::Registry> PressureBroker::registry() const {
  std::lock_guard lock(registry_mutex_);
  return registry_;
}

void PressureBroker::register_pool(std::shared_ptr<ResourcePool> pool) {
  if (!pool) throw std::invalid_argument("PressureBroker::register_pool: null pool");
  Registration entry{pool->tier_name(), std::move(pool), std::make_shared<CounterCells>()};
  std::lock_guard lock(registry_mutex_);
  auto next = std::make_shared<Registry>();
  next->reserve(registry_->size() + 1);
  for (const auto& existing : *registry_) {
    if (existing.name != entry.name) next->push_back(existing);
  }
  next->push_back(std::move(entry));
  registry_ = std::move(next);
}

bool PressureBroker::unregister_pool(std::string_view name) {
  std::lock_guard lock(registry_mutex_);
  auto next = std::make_shared<Registry>();
  next->reserve(registry_->size());
  for (const auto& existing : *registry_) {
    if (existing.name != name) next->push_back(existing);
  }
  const bool removed = next->size() != registry_->size();
  if (removed) registry_ = std::move(next);
  return removed;
}

std::vector<std::string> PressureBroker::pool_names() const {
  const auto pools = registry();
  std::vector<std::string> names;
  names.reserve(pools->size());
  for (const auto& r : *pools) names.push_back(r.name);
  return names;
}

double PressureBroker::global_pressure() const {
  double global = 0.0;
  // Held in a local: a temporary in the range-for would die before the loop runs.
  const auto pools = registry();
  for (const auto& r : *pools) {
    if (r.pool->capacity_bytes() == 0) continue;
    const double p = r.pool->pressure();
    if (p > global) global = p;  // NaN never wins
  }
  return global;
}

void PressureBroker::add_alert_sink(AlertSink sink) {
  if (!sink) throw std::invalid_argument("PressureBroker::add_alert_sink: empty sink");
  std::lock_guard lock(sinks_mutex_);
  sinks_.push_back(std::move(sink));
}

void PressureBroker::dispatch(const PressureAlert& alert) {
  if (alert.bytes_freed == 0) {
    spdlog::warn("pressure alert: pool '{}' is hot and stuck: {} pressure {:.3f} ({}), freed 0 "
                 "bytes",
                 alert.tier_name,
                 alert.cause == PressureAlert::Cause::host_pressure ? "host" : "pool",
                 alert.pressure, tier_label(alert.tier));
  } else {
    spdlog::warn("pressure alert: pool '{}' freed {} bytes for {} pressure {:.3f} ({})",
                 alert.tier_name, alert.bytes_freed,
                 alert.cause == PressureAlert::Cause::host_pressure ? "host" : "pool",
                 alert.pressure, tier_label(alert.tier));
  }
  std::vector<AlertSink> sinks;
  {
    std::lock_guard lock(sinks_mutex_);
    sinks = sinks_;
  }
  for (const auto& sink : sinks) {
    try {
      sink(alert);
    } catch (const std::exception& e) {
      spdlog::error("pressure broker: alert sink threw: {}", e.what());
    } catch (...) {
      spdlog::error("pressure broker: alert sink threw a non-standard exception");
    }
  }
}

ReliefReport PressureBroker::relieve() {
  std::lock_guard pass(pass_mutex_);
  const auto pools = registry();
  ReliefReport report;
  relieve_pools(*pools, report);
  if (host_) shed_for_host(*pools, report);

  report.triggered = report.bytes_freed > 0;
  if (report.triggered) {
    evictions_fired_.fetch_add(1, kRelaxed);
    bytes_freed_total_.fetch_add(report.bytes_freed, kRelaxed);
    pool_reliefs_total_.fetch_add(report.pools_acted.size(), kRelaxed);
  }
  return report;
}

void PressureBroker::relieve_pools(const Registry& pools, ReliefReport& report) {
  struct Candidate {
    const Registration* registration;
    std::uint64_t capacity;
    double pressure;
  };
  std::vector<Candidate> candidates;
  double global = 0.0;
  for (const auto& r : pools) {
    const std::uint64_t capacity = r.pool->capacity_bytes();
    if (capacity == 0) continue;
    const double p = r.pool->pressure();
    if (p > global) global = p;
    if (p >= config_.act_above) candidates.push_back({&r, capacity, p});
  }
  report.global_pressure_before = global;
  report.global_tier_before = classify(global, config_.thresholds);
  if (report.global_tier_before < PressureTier::high || candidates.empty()) return;

  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const Candidate& a, const Candidate& b) { return a.pressure > b.pressure; });
  if (report.global_tier_before == PressureTier::high) {
    candidates.erase(candidates.begin() + 1, candidates.end());  // the worst only
  }

  for (const auto& c : candidates) {
    const Registration& r = *c.registration;
    const std::uint64_t target = fraction_of(config_.target_fraction, c.capacity);
    const std::uint64_t used = r.pool->usage_bytes();
    const std::uint64_t want = used > target ? used - target : 0;
    PoolAction action = evict_from(r.name, *r.pool, want, c.pressure);

    r.counters->relief_count.fetch_add(1, kRelaxed);
    r.counters->relief_bytes_freed.fetch_add(action.bytes_freed, kRelaxed);
    if (action.bytes_freed == 0) r.counters->stuck_count.fetch_add(1, kRelaxed);
    report.bytes_freed += action.bytes_freed;

    dispatch(PressureAlert{r.name, c.pressure, classify(c.pressure, config_.thresholds),
                           action.bytes_freed, true, unix_ms(),
                           PressureAlert::Cause::pool_pressure});
    (action.bytes_freed > 0 ? report.pools_acted : report.pools_stuck)
        .push_back(std::move(action));
  }
}

void PressureBroker::shed_for_host(const Registry& pools, ReliefReport& report) {
  HostShedReport shed;
  shed.reading = host_->read();
  HostSheddingState state;
  {
    std::lock_guard lock(state_mutex_);
    state = host_state_;
  }

  if (shed.reading.known()) {
    shed.tier = classify(shed.reading.pressure, config_.thresholds);
    if (shed.tier < PressureTier::high) {
      state.episode_active = false;
      state.episode_shed_bytes = 0;
      state.episode_budget_bytes = 0;
    }
  }

  // Usage of every managed pool now (after pool relief), for the proportional split.
  struct Share {
    const Registration* registration;
    std::uint64_t usage;
  };
  std::vector<Share> shares;
  std::uint64_t managed_usage = 0;
  if (shed.reading.known() && shed.tier >= PressureTier::high) {
    for (const auto& r : pools) {
      if (r.pool->capacity_bytes() == 0) continue;
      const std::uint64_t usage = r.pool->usage_bytes();
      if (usage == 0) continue;
      shares.push_back({&r, usage});
      managed_usage += usage;
    }
    if (!state.episode_active) {
      state.episode_active = true;
      state.episode_shed_bytes = 0;
      state.episode_budget_bytes =
          fraction_of(config_.host_shedding.max_total_fraction, managed_usage);
    }
    const std::uint64_t allowed = fraction_of(config_.thresholds.high, shed.reading.limit_bytes);
    std::uint64_t wanted = shed.reading.used_bytes > allowed ? shed.reading.used_bytes - allowed
                                                             : 0;
    wanted -= std::min(wanted, report.bytes_freed);
    shed.bytes_wanted = wanted;
  }

  if (shed.bytes_wanted > 0 && managed_usage > 0) {
    const double per_pass = config_.host_shedding.max_pool_fraction_per_pass;
    std::uint64_t pass_bound = 0;
    for (const auto& s : shares) pass_bound += fraction_of(per_pass, s.usage);
    const std::uint64_t budget_left = state.episode_budget_bytes -
                                      std::min(state.episode_budget_bytes,
                                               state.episode_shed_bytes);
    const std::uint64_t total = std::min({shed.bytes_wanted, pass_bound, budget_left});
    for (const auto& s : shares) {
      if (total == 0) break;
      // total <= sum of per-pool bounds, so the proportional share respects each bound up to
      // rounding; the min makes it exact.
      const auto proportional = static_cast<std::uint64_t>(
          static_cast<unsigned __int128>(total) * s.usage / managed_usage);
      const std::uint64_t want = std::min(proportional, fraction_of(per_pass, s.usage));
      if (want == 0) continue;
      const Registration& r = *s.registration;
      PoolAction action = evict_from(r.name, *r.pool, want, r.pool->pressure());
      r.counters->shed_count.fetch_add(1, kRelaxed);
      r.counters->shed_bytes.fetch_add(action.bytes_freed, kRelaxed);
      shed.bytes_requested += want;
      shed.bytes_shed += action.bytes_freed;
      dispatch(PressureAlert{r.name, shed.reading.pressure, shed.tier, action.bytes_freed, true,
                             unix_ms(), PressureAlert::Cause::host_pressure});
      shed.pools_shed.push_back(std::move(action));
    }
    state.episode_shed_bytes += shed.bytes_shed;
    state.shed_bytes_total += shed.bytes_shed;
  }

  shed.episode_active = state.episode_active;
  shed.episode_shed_bytes = state.episode_shed_bytes;
  shed.episode_budget_bytes = state.episode_budget_bytes;
  report.bytes_freed += shed.bytes_shed;
  {
    std::lock_guard lock(state_mutex_);
    host_state_ = state;
  }
  if (!shed.reading.known()) {
    spdlog::debug("pressure broker: host memory unknown: {}", shed.reading.reason);
  }
  report.host = std::move(shed);
}

BrokerSnapshot PressureBroker::snapshot() const {
  BrokerSnapshot snap;
  const auto pools = registry();
  snap.pools.reserve(pools->size());
  for (const auto& r : *pools) {
    PoolPressure entry;
    entry.name = r.name;
    entry.stats = r.pool->stats();
    entry.managed = r.pool->capacity_bytes() != 0;
    entry.pressure = entry.managed ? r.pool->pressure() : 0.0;
    entry.tier = classify(entry.pressure, config_.thresholds);
    entry.counters = r.counters->load();
    if (entry.managed && entry.pressure > snap.global_pressure) {
      snap.global_pressure = entry.pressure;
    }
    snap.pools.push_back(std::move(entry));
  }
  std::stable_sort(snap.pools.begin(), snap.pools.end(),
                   [](const PoolPressure& a, const PoolPressure& b) {
                     return a.pressure > b.pressure;
                   });
  snap.global_tier = classify(snap.global_pressure, config_.thresholds);
  snap.evictions_fired = evictions_fired_.load(kRelaxed);
  snap.bytes_freed_total = bytes_freed_total_.load(kRelaxed);
  snap.pool_reliefs_total = pool_reliefs_total_.load(kRelaxed);
  if (host_) {
    snap.host_memory = host_->read();
    if (snap.host_memory->known()) {
      snap.host_tier = classify(snap.host_memory->pressure, config_.thresholds);
    }
  }
  {
    std::lock_guard lock(state_mutex_);
    snap.host_shedding = host_state_;
  }
  snap.running = running();
  return snap;
}

void PressureBroker::start(std::chrono::milliseconds interval) {
  if (interval.count() <= 0) {
    throw std::invalid_argument("PressureBroker::start: interval must be positive, got " +
                                std::to_string(interval.count()) + " ms");
  }
  std::lock_guard lifecycle(lifecycle_mutex_);
  {
    std::lock_guard lock(worker_mutex_);
    if (running_) throw std::logic_error("PressureBroker::start: already running");
    running_ = true;
    stop_requested_ = false;
  }
  worker_ = std::thread([this, interval] { run_background(interval); });
}

void PressureBroker::stop() {
  std::lock_guard lifecycle(lifecycle_mutex_);
  {
    std::lock_guard lock(worker_mutex_);
    if (!running_) return;
    stop_requested_ = true;
  }
  worker_cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  std::lock_guard lock(worker_mutex_);
  running_ = false;
}

bool PressureBroker::running() const {
  std::lock_guard lock(worker_mutex_);
  return running_;
}

void PressureBroker::run_background(std::chrono::milliseconds interval) {
  using Clock = std::chrono::steady_clock;
  auto next = Clock::now() + interval;
  std::unique_lock lock(worker_mutex_);
  while (true) {
    if (worker_cv_.wait_until(lock, next, [this] { return stop_requested_; })) return;
    lock.unlock();
    try {
      relieve();
    } catch (const std::exception& e) {
      spdlog::error("pressure broker: background pass failed: {}", e.what());
    } catch (...) {
      spdlog::error("pressure broker: background pass failed");
    }
    lock.lock();
    // Passes that overran their slot are skipped rather than run back to back.
    next += interval;
    const auto now = Clock::now();
    if (next <= now) next = now + interval;
  }
}

}  // namespace pagekeeper
