#include "pagekeeper/broker.hpp"

#include <algorithm>
#include <deque>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <iterator>
#include <set>
#include <tuple>
#include <utility>
#include <exception>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "pagekeeper/budget_allocation.hpp"
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

// last_accesses is touched only under pass_mutex_; accesses_last_pass and history are written
// under pass_mutex_ and state_mutex_ (snapshots read them under state_mutex_).
struct PressureBroker::UtilityCells {
  std::uint64_t last_accesses = 0;
  std::uint64_t accesses_last_pass = 0;
  std::deque<BudgetChange> history;
};

// A pool's misses and ghost hits at the last pass, and the window being gathered.
struct PressureBroker::ThrashCells {
  bool primed = false;  // the last_* fields hold a reading
  std::uint64_t last_misses = 0;
  std::uint64_t last_ghost_hits = 0;
  pool_detail::GhostDepths last_depths;
  std::uint64_t window_misses = 0;
  std::uint64_t window_ghost_hits = 0;
  pool_detail::GhostDepths window_depths;
  // The verdict of the last window judged.
  bool thrashing = false;
  double share = 0.0;
  std::uint64_t budget_wanted = 0;
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

// Calls an application's listener or sink (`what` names which in the log); what it throws is
// logged and goes no further, so a faulty callback never stops a relief pass.
template <typename Callback, typename Event>
void call_guarded(const char* what, const Callback& callback, const Event& event) {
  try {
    callback(event);
  } catch (const std::exception& e) {
    spdlog::error("pressure broker: {} threw: {}", what, e.what());
  } catch (...) {
    spdlog::error("pressure broker: {} threw a non-standard exception", what);
  }
}

}  // namespace

void HostSheddingPolicy::validate() const {
  require_fraction(max_pool_fraction_per_pass, "host_shedding.max_pool_fraction_per_pass");
  require_fraction(max_total_fraction, "host_shedding.max_total_fraction");
}

void BrokerConfig::validate() const {
  thresholds.validate();
  if (!(std::isfinite(act_above) && act_above >= thresholds.high &&
        act_above <= thresholds.critical)) {
    throw PressureConfigError(
        "act_above must lie between the high (" + std::to_string(thresholds.high) +
        ") and critical (" + std::to_string(thresholds.critical) +
        ") thresholds, got " + std::to_string(act_above) +
        ": below high, a warning-tier pass would select pools it never relieves");
  }
  if (!(std::isfinite(target_fraction) && target_fraction > 0.0 &&
        target_fraction < act_above)) {
    throw PressureConfigError("target_fraction must be in (0, act_above=" +
                              std::to_string(act_above) + "), got " +
                              std::to_string(target_fraction));
  }
  if (!(std::isfinite(rebalance_hysteresis) && rebalance_hysteresis >= 0.0 &&
        rebalance_hysteresis < 1.0)) {
    throw PressureConfigError("rebalance_hysteresis must be in [0, 1), got " +
                              std::to_string(rebalance_hysteresis));
  }
  if (!(std::isfinite(thrash_ghost_share) && thrash_ghost_share >= 0.0 &&
        thrash_ghost_share <= 1.0)) {
    throw PressureConfigError("thrash_ghost_share must be in [0, 1], got " +
                              std::to_string(thrash_ghost_share));
  }
  if (thrash_window_misses == 0) {
    throw PressureConfigError("thrash_window_misses must be positive, got 0");
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
  MutexLock lock(registry_mutex_);
  return registry_;
}

void PressureBroker::register_pool(std::shared_ptr<ResourcePool> pool) {
  if (!pool) throw std::invalid_argument("PressureBroker::register_pool: null pool");
  auto* utility = dynamic_cast<PoolUtility*>(pool.get());
  if (utility != nullptr && !utility->curve_known()) utility = nullptr;
  Registration entry{pool->tier_name(), std::move(pool), std::make_shared<CounterCells>(),
                     utility, nullptr, std::make_shared<ThrashCells>()};
  if (entry.utility != nullptr) {
    entry.utility_cells = std::make_shared<UtilityCells>();
    entry.utility_cells->last_accesses = entry.utility->accesses();
  }
  // The thrash window starts now, not at the first pass: a burst that cycles the pool before
  // the broker first looks (a tick is long next to a fast embedder) is still judged.
  try {
    if (const auto ghost = entry.pool->ghost()) {
      ThrashCells& t = *entry.thrash;
      t.last_misses = entry.pool->stats().misses;
      t.last_ghost_hits = ghost->hits;
      t.last_depths = ghost->depths;
      t.primed = true;
    }
  } catch (const std::exception& e) {
    // The first pass primes the window instead.
    spdlog::warn("pressure broker: reading pool '{}' at registration failed: {}", entry.name,
                 e.what());
  }
  MutexLock lock(registry_mutex_);
  auto next = std::make_shared<Registry>();
  next->reserve(registry_->size() + 1);
  for (const auto& existing : *registry_) {
    if (existing.name != entry.name) next->push_back(existing);
  }
  next->push_back(std::move(entry));
  registry_ = std::move(next);
}

bool PressureBroker::unregister_pool(std::string_view name) {
  MutexLock lock(registry_mutex_);
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

struct PressureBroker::Measurement {
  struct Managed {
    const Registration* registration;
    std::uint64_t capacity;
    std::uint64_t usage;
    double own;  // usage / capacity past the budget, else 0
  };
  std::vector<Managed> pools;
  double max_own = 0.0;
  std::optional<HostMemoryReading> host;
  PressureTier host_tier = PressureTier::normal;
  double host_pressure = 0.0;  // 0 when unknown
  std::optional<GlobalBudgetReading> budget;
  double budget_pressure = 0.0;  // 0 unless the budget binds
  double global = 0.0;
  std::string binding = "none";

  // What binds on a pool whose own pressure is `own`: the highest figure and its name.
  std::pair<double, std::string> binding_for(double own) const {
    std::pair<double, std::string> best{0.0, "none"};
    for (const auto& [value, name] : {std::pair<double, const char*>{own, "pool"},
                                      {budget_pressure, "globalBudget"},
                                      {host_pressure, "host"}}) {
      if (value > best.first) best = {value, name};  // NaN never wins
    }
    return best;
  }
};

namespace {

double own_pressure(std::uint64_t usage, std::uint64_t capacity) {
  if (capacity == 0 || usage <= capacity) return 0.0;
  return static_cast<double>(usage) / static_cast<double>(capacity);
}

std::string format_bytes(std::uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  auto value = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (value >= 1024.0 && unit + 1 < std::size(units)) {
    value /= 1024.0;
    ++unit;
  }
  char text[48];
  if (unit == 0) {
    std::snprintf(text, sizeof text, "%llu B", static_cast<unsigned long long>(bytes));
  } else {
    std::snprintf(text, sizeof text, "%.1f %s", value, units[unit]);
  }
  return text;
}

std::string format_utc(std::int64_t unix_ms_value) {
  const std::time_t seconds = unix_ms_value / 1000;
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%H:%M:%S UTC", &tm);
  return text;
}

const char* cause_key(PressureAlert::Cause cause) {
  switch (cause) {
    case PressureAlert::Cause::pool_pressure: return "pool";
    case PressureAlert::Cause::host_pressure: return "host";
    case PressureAlert::Cause::budget_pressure: return "budget";
    case PressureAlert::Cause::thrashing: return "thrashing";
  }
  return "pool";
}

// How long a repeated condition has held and when it is reported next; "" the first time.
std::string repeats(const PressureAlert& a) {
  if (a.occurrences <= 1) return "";
  return " (" + std::to_string(a.occurrences) + " consecutive passes since " +
         format_utc(a.since_ms) + "; next report after " + std::to_string(a.occurrences * 2) + ")";
}

// The sentence an alert carries for people.
std::string describe(const PressureAlert& a) {
  char figure[64];
  std::snprintf(figure, sizeof figure, "%.2f, %s", a.pressure,
                std::string(tier_label(a.tier)).c_str());
  std::string why;
  switch (a.cause) {
    case PressureAlert::Cause::pool_pressure:
      why = "pool '" + a.tier_name + "' is past its budget by bytes it cannot evict (" + figure +
            ")";
      break;
    case PressureAlert::Cause::host_pressure:
      why = "host memory is short (" + std::string(figure) + ") and pool '" + a.tier_name +
            "' was asked to shed";
      break;
    case PressureAlert::Cause::budget_pressure:
      why = "the pools together are near the global memory budget (" + std::string(figure) +
            ") and pool '" + a.tier_name + "' was asked to shed";
      break;
    case PressureAlert::Cause::thrashing: {
      char share[32];
      std::snprintf(share, sizeof share, "%.0f%%", 100.0 * a.pressure);
      if (a.cleared) {
        return "cleared: pool '" + a.tier_name + "' no longer thrashes (re-loads of entries it "
               "evicted shortly before are a small share of its misses again), after " +
               std::to_string(a.occurrences) + " consecutive pass(es) since " +
               format_utc(a.since_ms);
      }
      why = "pool '" + a.tier_name + "' is thrashing: " + share +
            " of its misses re-load entries it evicted shortly before";
      return why + "; about " + format_bytes(a.budget_wanted_bytes) +
             " more budget would have kept 90% of them" + repeats(a);
    }
  }
  if (a.cleared) {
    return "cleared: " + why + " no longer holds, after " + std::to_string(a.occurrences) +
           " consecutive pass(es) since " + format_utc(a.since_ms);
  }
  return why + "; " +
         (a.bytes_freed > 0
              ? "freed " + format_bytes(a.bytes_freed)
              : std::string("freed nothing: what it holds is pinned or never evicted")) +
         repeats(a);
}

}  // namespace

PressureBroker::Measurement PressureBroker::measure(const Registry& pools, bool read_host) const {
  Measurement m;
  std::uint64_t used = 0;
  std::uint64_t capacity = 0;
  for (const auto& r : pools) {
    const std::uint64_t cap = r.pool->capacity_bytes();
    if (cap == 0) continue;
    const std::uint64_t usage = r.pool->usage_bytes();
    const double own = own_pressure(usage, cap);
    m.pools.push_back({&r, cap, usage, own});
    m.max_own = std::max(m.max_own, own);
    used += usage;
    capacity += cap;
  }
  if (config_.memory_budget_bytes > 0) {
    GlobalBudgetReading b;
    b.limit_bytes = config_.memory_budget_bytes;
    b.used_bytes = used;
    b.capacity_bytes = capacity;
    b.pressure = static_cast<double>(used) / static_cast<double>(b.limit_bytes);
    b.binds = capacity > b.limit_bytes || used > b.limit_bytes;
    b.tier = b.binds ? classify(b.pressure, config_.thresholds) : PressureTier::normal;
    if (b.binds) m.budget_pressure = b.pressure;
    m.budget = b;
  }
  if (host_ && read_host) {
    m.host = host_->read();
    if (m.host->known()) {
      m.host_pressure = m.host->pressure;
      m.host_tier = classify(m.host_pressure, config_.thresholds);
    }
  }
  std::tie(m.global, m.binding) = m.binding_for(m.max_own);
  return m;
}

double PressureBroker::global_pressure() const {
  const auto pools = registry();
  return measure(*pools, true).global;
}

void PressureBroker::add_alert_sink(AlertSink sink) {
  if (!sink) throw std::invalid_argument("PressureBroker::add_alert_sink: empty sink");
  MutexLock lock(sinks_mutex_);
  sinks_.push_back(std::move(sink));
}

void PressureBroker::add_action_listener(ActionListener listener) {
  if (!listener) throw std::invalid_argument("PressureBroker::add_action_listener: empty listener");
  MutexLock lock(sinks_mutex_);
  listeners_.push_back(std::move(listener));
}

void PressureBroker::notify(const PoolAction& action) {
  std::vector<ActionListener> listeners;
  {
    MutexLock lock(sinks_mutex_);
    listeners = listeners_;
  }
  for (const auto& listener : listeners) call_guarded("action listener", listener, action);
}

void PressureBroker::deliver(std::vector<PressureAlert> raised, ReliefReport& report) {
  std::vector<PressureAlert> due;
  std::set<std::string> seen;
  for (auto& alert : raised) {
    std::string key = alert.tier_name;
    key += '\n';
    key += cause_key(alert.cause);
    key += alert.bytes_freed == 0 ? "/stuck" : "/freed";
    Condition& c = conditions_[key];
    if (!seen.insert(key).second) continue;  // one alert per condition per pass
    if (c.occurrences == 0) c.since_ms = alert.at_ms;
    ++c.occurrences;
    alert.occurrences = c.occurrences;
    alert.since_ms = c.since_ms;
    c.last = alert;
    if (c.occurrences < c.next_delivery) {
      alerts_suppressed_.fetch_add(1, kRelaxed);
      continue;
    }
    c.next_delivery = c.occurrences * 2;
    alert.message = describe(alert);
    due.push_back(std::move(alert));
  }
  const std::int64_t now = unix_ms();
  for (auto it = conditions_.begin(); it != conditions_.end();) {
    if (seen.contains(it->first)) {
      ++it;
      continue;
    }
    PressureAlert cleared = it->second.last;
    cleared.cleared = true;
    cleared.action_taken = false;
    cleared.bytes_freed = 0;
    cleared.at_ms = now;
    cleared.message = describe(cleared);
    due.push_back(std::move(cleared));
    it = conditions_.erase(it);
  }
  if (due.empty()) return;

  std::vector<AlertSink> sinks;
  {
    MutexLock lock(sinks_mutex_);
    sinks = sinks_;
  }
  for (const auto& alert : due) {
    if (alert.cleared) {
      spdlog::info("pressure alert: {}", alert.message);
    } else {
      spdlog::warn("pressure alert: {}", alert.message);
    }
    alerts_delivered_.fetch_add(1, kRelaxed);
    for (const auto& sink : sinks) call_guarded("alert sink", sink, alert);
  }
  report.alerts = std::move(due);
}

ReliefReport PressureBroker::relieve() {
  MutexLock pass(pass_mutex_);
  const auto pools = registry();
  const Measurement m = measure(*pools, true);
  ReliefReport report;
  report.global_pressure_before = m.global;
  report.global_tier_before = classify(m.global, config_.thresholds);
  if (config_.memory_budget_bytes > 0) divide_budget(m, report);
  std::vector<PressureAlert> raised;
  relieve_pools(*pools, m, report, raised);
  if (host_ || config_.memory_budget_bytes > 0) shed(*pools, m, report, raised);
  if (config_.thrash_ghost_share > 0.0) watch_thrashing(m, raised);
  deliver(std::move(raised), report);

  report.triggered = report.bytes_freed > 0;
  if (report.triggered) {
    evictions_fired_.fetch_add(1, kRelaxed);
    bytes_freed_total_.fetch_add(report.bytes_freed, kRelaxed);
    pool_reliefs_total_.fetch_add(report.pools_acted.size(), kRelaxed);
  }
  passes_total_.fetch_add(1, kRelaxed);
  return report;
}

namespace {

// Bytes of the pool's pinned entries; read from its snapshot only when its stats count some.
std::uint64_t pinned_bytes(const ResourcePool& pool) {
  try {
    if (pool.stats().pinned_count == 0) return 0;
    std::uint64_t bytes = 0;
    for (const auto& e : pool.snapshot()) {
      if (e.pin_count > 0) bytes += e.size_bytes;
    }
    return bytes;
  } catch (const std::exception& e) {
    spdlog::warn("pressure broker: reading pool '{}' for pinned bytes failed: {}", pool.tier_name(), e.what());
    return 0;
  }
}

}  // namespace

void PressureBroker::divide_budget(const Measurement& m, ReliefReport& report) {
  std::vector<PoolDemand> demand;
  std::vector<const Measurement::Managed*> members;
  std::uint64_t others = 0;  // budgets of managed pools without utility
  for (const auto& p : m.pools) {
    const Registration& r = *p.registration;
    if (r.utility == nullptr) {
      others += p.capacity;
      continue;
    }
    const std::uint64_t accesses = r.utility->accesses();
    UtilityCells& cells = *r.utility_cells;
    const std::uint64_t served = accesses - std::min(accesses, cells.last_accesses);
    cells.last_accesses = accesses;
    {
      MutexLock lock(state_mutex_);
      cells.accesses_last_pass = served;
    }
    demand.push_back({r.name, p.capacity, 0, static_cast<double>(served),
                      r.utility->miss_cost_seconds(),
                      [u = r.utility](std::uint64_t bytes) { return u->miss_ratio(bytes); }});
    members.push_back(&p);
  }
  if (demand.empty()) return;
  const std::uint64_t total = config_.memory_budget_bytes - std::min(config_.memory_budget_bytes, others);
  // The other pools' budgets leave nothing to divide: keep the utility pools' budgets rather
  // than cut them to nothing (shedding still applies to every pool).
  if (total == 0) return;
  const std::uint64_t minimum = total / (16 * demand.size());
  for (std::size_t i = 0; i < demand.size(); ++i) {
    // Nor below what the pool cannot give (pinned entries: models in use): a smaller budget
    // would evict nothing, only put the pool past its budget. Clamped to the budget it has.
    const std::uint64_t floor = std::max(minimum, pinned_bytes(*members[i]->registration->pool));
    demand[i].min_budget = std::min(floor, demand[i].budget);
  }
  const RebalanceOptions options{std::max<std::uint64_t>(total / 64, 1),
                                 config_.rebalance_hysteresis, 8};
  for (std::size_t i = 0; i < demand.size(); ++i) {
    // A curve's plateaus are about one entry wide: look no further ahead than that (each
    // look evaluates the curve; a many-shard pool's evaluation merges every shard's).
    const PoolStats stats = members[i]->registration->pool->stats();
    if (stats.entry_count == 0) continue;  // unknown: up to max_moves
    const std::uint64_t mean_entry = stats.total_bytes / stats.entry_count;
    demand[i].lookahead = static_cast<std::size_t>(
        std::clamp<std::uint64_t>((mean_entry + options.step - 1) / options.step, 1, options.max_moves));
  }
  std::vector<std::uint64_t> budgets = fit_budgets(demand, total, options);
  for (std::size_t i = 0; i < demand.size(); ++i) demand[i].budget = budgets[i];
  budgets = rebalance(demand, options);

  const std::int64_t now = unix_ms();
  for (std::size_t i = 0; i < members.size(); ++i) {
    const Registration& r = *members[i]->registration;
    if (budgets[i] == members[i]->capacity) continue;
    const BudgetChange change{now, members[i]->capacity, budgets[i]};
    try {
      r.utility->set_budget(budgets[i]);
    } catch (const std::exception& e) {
      spdlog::error("pressure broker: set_budget({}) on pool '{}' failed: {}", budgets[i],
                    r.name, e.what());
      continue;
    }
    {
      MutexLock lock(state_mutex_);
      r.utility_cells->history.push_back(change);
      while (r.utility_cells->history.size() > config_.budget_history) {
        r.utility_cells->history.pop_front();
      }
    }
    report.budget_changes.emplace_back(r.name, change);
  }
}

void PressureBroker::watch_thrashing(const Measurement& m, std::vector<PressureAlert>& raised) {
  for (const auto& p : m.pools) {
    const Registration& r = *p.registration;
    std::optional<GhostReading> ghost;
    std::uint64_t misses = 0;
    try {
      ghost = r.pool->ghost();
      if (!ghost) continue;
      misses = r.pool->stats().misses;
    } catch (const std::exception& e) {
      spdlog::error("pressure broker: reading pool '{}' for thrashing failed: {}", r.name,
                    e.what());
      continue;
    }
    ThrashCells& t = *r.thrash;
    // A first reading, or counters that went back (the pool was cleared): start afresh.
    if (!t.primed || misses < t.last_misses || ghost->hits < t.last_ghost_hits) {
      t = ThrashCells{};
      t.primed = true;
      t.last_misses = misses;
      t.last_ghost_hits = ghost->hits;
      t.last_depths = ghost->depths;
      continue;
    }
    t.window_misses += misses - t.last_misses;
    t.window_ghost_hits += ghost->hits - t.last_ghost_hits;
    for (std::size_t b = 0; b < t.window_depths.count.size(); ++b) {
      t.window_depths.count[b] += ghost->depths.count[b] - std::min(ghost->depths.count[b],
                                                                    t.last_depths.count[b]);
    }
    t.last_misses = misses;
    t.last_ghost_hits = ghost->hits;
    t.last_depths = ghost->depths;
    if (t.window_misses >= config_.thrash_window_misses) {
      t.share = static_cast<double>(t.window_ghost_hits) / static_cast<double>(t.window_misses);
      t.thrashing = t.share >= config_.thrash_ghost_share;
      t.budget_wanted = t.thrashing ? t.window_depths.quantile_bytes(0.9) : 0;
      t.window_misses = 0;
      t.window_ghost_hits = 0;
      t.window_depths = {};
    }
    if (!t.thrashing) continue;
    PressureAlert alert;
    alert.tier_name = r.name;
    alert.pressure = t.share;
    alert.tier = PressureTier::warning;
    alert.bytes_freed = 0;
    alert.action_taken = false;
    alert.at_ms = unix_ms();
    alert.cause = PressureAlert::Cause::thrashing;
    alert.budget_wanted_bytes = t.budget_wanted;
    raised.push_back(std::move(alert));
  }
}

void PressureBroker::relieve_pools(const Registry& /*pools*/, const Measurement& m,
                                   ReliefReport& report, std::vector<PressureAlert>& raised) {
  std::vector<const Measurement::Managed*> candidates;
  for (const auto& p : m.pools) {
    if (p.own >= config_.act_above) candidates.push_back(&p);
  }
  const PressureTier tier = classify(m.max_own, config_.thresholds);
  if (tier < PressureTier::high || candidates.empty()) return;

  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const auto* a, const auto* b) { return a->own > b->own; });
  if (tier == PressureTier::high) {
    candidates.erase(candidates.begin() + 1, candidates.end());  // the worst only
  }

  for (const auto* c : candidates) {
    const Registration& r = *c->registration;
    const std::uint64_t target = fraction_of(config_.target_fraction, c->capacity);
    const std::uint64_t used = r.pool->usage_bytes();
    const std::uint64_t want = used > target ? used - target : 0;
    PoolAction action = evict_from(r.name, *r.pool, want, c->own);
    notify(action);

    r.counters->relief_count.fetch_add(1, kRelaxed);
    r.counters->relief_bytes_freed.fetch_add(action.bytes_freed, kRelaxed);
    if (action.bytes_freed == 0) r.counters->stuck_count.fetch_add(1, kRelaxed);
    report.bytes_freed += action.bytes_freed;

    PressureAlert alert;
    alert.tier_name = r.name;
    alert.pressure = c->own;
    alert.tier = classify(c->own, config_.thresholds);
    alert.bytes_freed = action.bytes_freed;
    alert.at_ms = unix_ms();
    alert.cause = PressureAlert::Cause::pool_pressure;
    raised.push_back(std::move(alert));
    (action.bytes_freed > 0 ? report.pools_acted : report.pools_stuck)
        .push_back(std::move(action));
  }
}

void PressureBroker::shed(const Registry& /*pools*/, const Measurement& m, ReliefReport& report,
                          std::vector<PressureAlert>& raised) {
  ShedReport shed;
  if (m.host) {
    shed.reading = *m.host;
  } else {
    shed.reading.reason = "no host memory source";
  }
  shed.host_tier = m.host_tier;
  shed.budget = m.budget;
  const PressureTier budget_tier = m.budget ? m.budget->tier : PressureTier::normal;
  shed.tier = std::max(shed.host_tier, budget_tier);
  HostSheddingState state;
  {
    MutexLock lock(state_mutex_);
    state = host_state_;
  }
  if (shed.tier < PressureTier::high) {
    state.episode_active = false;
    state.episode_shed_bytes = 0;
    state.episode_budget_bytes = 0;
  }

  // Usage of every managed pool now (after pool relief), for the proportional split.
  struct Share {
    const Registration* registration;
    std::uint64_t usage;
  };
  std::vector<Share> shares;
  std::uint64_t managed_usage = 0;
  auto cause = PressureAlert::Cause::host_pressure;
  double cause_pressure = m.host_pressure;
  PressureTier cause_tier = shed.host_tier;
  if (shed.tier >= PressureTier::high) {
    for (const auto& p : m.pools) {
      const std::uint64_t usage = p.registration->pool->usage_bytes();
      if (usage == 0) continue;
      shares.push_back({p.registration, usage});
      managed_usage += usage;
    }
    if (!state.episode_active) {
      state.episode_active = true;
      state.episode_shed_bytes = 0;
      state.episode_budget_bytes =
          fraction_of(config_.host_shedding.max_total_fraction, managed_usage);
    }
    // What brings a figure below high; 0 when it is below high already.
    const auto excess = [this](std::uint64_t used, std::uint64_t limit) {
      const std::uint64_t allowed = fraction_of(config_.thresholds.high, limit);
      return used > allowed ? used - allowed : 0;
    };
    std::uint64_t wanted = 0;
    if (shed.host_tier >= PressureTier::high) {
      wanted = excess(shed.reading.used_bytes, shed.reading.limit_bytes);
    }
    if (budget_tier >= PressureTier::high) {
      const std::uint64_t budget_wanted = excess(m.budget->used_bytes, m.budget->limit_bytes);
      if (budget_wanted > wanted) {
        wanted = budget_wanted;
        cause = PressureAlert::Cause::budget_pressure;
        cause_pressure = m.budget->pressure;
        cause_tier = budget_tier;
      }
    }
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
    // Pools that know what their bytes are worth give first, cheapest per byte first; the
    // rest share what remains in proportion to their usage.
    const auto loss_per_byte = [&](const Share& s) {
      const PoolUtility* u = s.registration->utility;
      const std::uint64_t x = std::max<std::uint64_t>(fraction_of(per_pass, s.usage), 1);
      const std::uint64_t capacity = s.registration->pool->capacity_bytes();
      const double accesses = static_cast<double>(s.registration->utility_cells->accesses_last_pass);
      const double cost = u->miss_cost_seconds() * std::max(accesses, 1.0);
      return cost * (u->miss_ratio(capacity - std::min(capacity, x)) - u->miss_ratio(capacity)) /
             static_cast<double>(x);
    };
    std::vector<std::pair<double, Share>> valued;
    std::vector<Share> rest;
    std::uint64_t rest_usage = 0;
    for (const auto& s : shares) {
      if (s.registration->utility != nullptr) {
        valued.emplace_back(loss_per_byte(s), s);
      } else {
        rest.push_back(s);
        rest_usage += s.usage;
      }
    }
    std::stable_sort(valued.begin(), valued.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<std::pair<Share, std::uint64_t>> asks;  // pool and bytes asked, in order
    std::uint64_t left = total;
    for (const auto& [loss, s] : valued) {
      const std::uint64_t want = std::min(left, fraction_of(per_pass, s.usage));
      if (want > 0) asks.emplace_back(s, want);
      left -= want;
    }
    for (const auto& s : rest) {
      if (left == 0 || rest_usage == 0) break;
      // left <= the sum of the rest's bounds, so the proportional share respects each bound
      // up to rounding; the min makes it exact.
      const auto proportional = static_cast<std::uint64_t>(
          static_cast<unsigned __int128>(left) * s.usage / rest_usage);
      const std::uint64_t want = std::min(proportional, fraction_of(per_pass, s.usage));
      if (want > 0) asks.emplace_back(s, want);
    }
    for (const auto& [s, want] : asks) {
      const Registration& r = *s.registration;
      PoolAction action = evict_from(r.name, *r.pool, want, r.pool->pressure());
      notify(action);
      r.counters->shed_count.fetch_add(1, kRelaxed);
      r.counters->shed_bytes.fetch_add(action.bytes_freed, kRelaxed);
      shed.bytes_requested += want;
      shed.bytes_shed += action.bytes_freed;
      PressureAlert alert;
      alert.tier_name = r.name;
      alert.pressure = cause_pressure;
      alert.tier = cause_tier;
      alert.bytes_freed = action.bytes_freed;
      alert.at_ms = unix_ms();
      alert.cause = cause;
      raised.push_back(std::move(alert));
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
    MutexLock lock(state_mutex_);
    host_state_ = state;
  }
  if (host_ && !shed.reading.known()) {
    spdlog::debug("pressure broker: host memory unknown: {}", shed.reading.reason);
  }
  report.shed = std::move(shed);
}

BrokerSnapshot PressureBroker::snapshot() const {
  BrokerSnapshot snap;
  const auto pools = registry();
  const Measurement m = measure(*pools, true);
  snap.pools.reserve(pools->size());
  for (const auto& r : *pools) {
    PoolPressure entry;
    entry.name = r.name;
    entry.stats = r.pool->stats();
    const auto managed = std::find_if(m.pools.begin(), m.pools.end(), [&](const auto& p) {
      return p.registration == &r;
    });
    entry.managed = managed != m.pools.end();
    if (entry.managed) {
      entry.own_pressure = managed->own;
      std::tie(entry.pressure, entry.binding) = m.binding_for(managed->own);
    }
    entry.tier = classify(entry.pressure, config_.thresholds);
    entry.counters = r.counters->load();
    if (r.utility != nullptr) {
      PoolUtilityState u;
      u.miss_cost_seconds = r.utility->miss_cost_seconds();
      const std::uint64_t budget = r.pool->capacity_bytes();
      for (const double f : {0.25, 0.5, 0.75, 1.0, 1.5, 2.0}) {
        const auto bytes = static_cast<std::uint64_t>(f * static_cast<double>(budget));
        u.curve.push_back({bytes, r.utility->miss_ratio(bytes)});
      }
      {
        MutexLock lock(state_mutex_);
        u.accesses_last_pass = r.utility_cells->accesses_last_pass;
        u.budget_history.assign(r.utility_cells->history.begin(), r.utility_cells->history.end());
      }
      entry.utility = std::move(u);
    }
    snap.pools.push_back(std::move(entry));
  }
  std::stable_sort(snap.pools.begin(), snap.pools.end(),
                   [](const PoolPressure& a, const PoolPressure& b) {
                     return a.pressure > b.pressure;
                   });
  snap.global_pressure = m.global;
  snap.binding = m.binding;
  snap.global_tier = classify(snap.global_pressure, config_.thresholds);
  snap.evictions_fired = evictions_fired_.load(kRelaxed);
  snap.bytes_freed_total = bytes_freed_total_.load(kRelaxed);
  snap.pool_reliefs_total = pool_reliefs_total_.load(kRelaxed);
  snap.passes_total = passes_total_.load(kRelaxed);
  snap.alerts_delivered_total = alerts_delivered_.load(kRelaxed);
  snap.alerts_suppressed_total = alerts_suppressed_.load(kRelaxed);
  snap.host_memory = m.host;
  snap.host_tier = m.host_tier;
  snap.global_budget = m.budget;
  {
    MutexLock lock(state_mutex_);
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
  MutexLock lifecycle(lifecycle_mutex_);
  {
    MutexLock lock(worker_mutex_);
    if (running_) throw std::logic_error("PressureBroker::start: already running");
    running_ = true;
    stop_requested_ = false;
  }
  worker_ = std::thread([this, interval] { run_background(interval); });
}

void PressureBroker::stop() {
  MutexLock lifecycle(lifecycle_mutex_);
  {
    MutexLock lock(worker_mutex_);
    if (!running_) return;
    stop_requested_ = true;
  }
  worker_cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  MutexLock lock(worker_mutex_);
  running_ = false;
}

bool PressureBroker::running() const {
  MutexLock lock(worker_mutex_);
  return running_;
}

bool PressureBroker::waiting_for_next_pass() const {
  MutexLock lock(worker_mutex_);
  return worker_waiting_;
}

void PressureBroker::run_background(std::chrono::milliseconds interval) {
  using Clock = std::chrono::steady_clock;
  auto next = Clock::now() + interval;
  MutexLock lock(worker_mutex_);
  while (true) {
    worker_waiting_ = true;
    const bool stopping = worker_cv_.wait_until(lock, next, [this] {
      worker_mutex_.assert_held();
      return stop_requested_;
    });
    worker_waiting_ = false;
    if (stopping) return;
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
