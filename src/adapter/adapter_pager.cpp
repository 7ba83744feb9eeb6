#include "pagekeeper/adapter_pager.hpp"

#include <algorithm>
#include <functional>
#include <chrono>
#include <cmath>
#include <limits>
#include <new>
#include <set>
#include <stdexcept>
#include <unordered_set>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "pagekeeper/broker.hpp"
#include "pagekeeper/clock.hpp"
#include "pagekeeper/errors.hpp"

namespace pagekeeper {
namespace {

constexpr double kBytesPerMiB = 1024.0 * 1024.0;
constexpr std::int64_t kMaxScoreMicros = std::int64_t{1} << 62;

std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double elapsed_us(std::int64_t t0_ns) { return static_cast<double>(steady_ns() - t0_ns) / 1000.0; }

double to_mib(std::uint64_t bytes) { return static_cast<double>(bytes) / kBytesPerMiB; }

bool is_critical(double priority) { return priority > kCriticalAdapterPriority; }

AdapterPagerConfig validated(AdapterPagerConfig c) {
  if (c.persona_id.empty()) throw std::invalid_argument("adapter pager: persona_id is required");
  if (c.budget_bytes == 0) {
    throw std::invalid_argument("adapter pager '" + c.persona_id + "': budget_bytes must be > 0");
  }
  if (!c.clock) c.clock = [] { return monotonic_ms(); };
  if (c.tier_name.empty()) c.tier_name = "adapters:" + c.persona_id;
  if (!(c.curve_sampling_rate >= 0.0 && c.curve_sampling_rate <= 1.0)) {
    throw std::invalid_argument("adapter pager '" + c.persona_id + "': curve_sampling_rate must be in [0, 1]");
  }
  return c;
}

}  // namespace

double adapter_eviction_score(double priority, std::int64_t last_used_ms, std::int64_t now_ms) {
  if (is_critical(priority)) return std::numeric_limits<double>::infinity();
  const double effective = std::max(priority, kMinimumAdapterPriority);
  std::int64_t age_ms = 0;  // saturating: an absurd timestamp must not wrap to a young age
  if (now_ms > last_used_ms && __builtin_sub_overflow(now_ms, last_used_ms, &age_ms)) {
    age_ms = std::numeric_limits<std::int64_t>::max();
  }
  return (static_cast<double>(age_ms) / 1000.0) / (effective * 10.0);
}

std::int64_t adapter_pool_priority(double priority, std::int64_t last_used_ms,
                                   std::int64_t now_ms) {
  if (is_critical(priority)) return kNeverEvict;
  const long double micros =
      static_cast<long double>(adapter_eviction_score(priority, last_used_ms, now_ms)) * 1e6L;
  if (micros >= static_cast<long double>(kMaxScoreMicros)) return -kMaxScoreMicros;
  return -static_cast<std::int64_t>(std::llround(micros));
}

void to_json(nlohmann::json& j, const ActivateSkillResult& r) {
  j = nlohmann::json{{"activated", r.activated},
                     {"adapter_name", r.adapter_name},
                     {"evicted", r.evicted},
                     {"to_load", r.to_load ? nlohmann::json(*r.to_load) : nlohmann::json()},
                     {"loaded", r.loaded},
                     {"overcommitted", r.overcommitted},
                     {"decision_time_us", r.decision_time_us}};
  if (!r.reason.empty()) j["reason"] = r.reason;
}

void to_json(nlohmann::json& j, const SyncResult& r) {
  nlohmann::json refused = nlohmann::json::array();
  for (const auto& [name, reason] : r.refused) refused.push_back({{"name", name}, {"reason", reason}});
  j = nlohmann::json{{"synced", r.synced},
                     {"adapter_count", r.adapter_count},
                     {"active_count", r.active_count},
                     {"memory_used_mb", to_mib(r.memory_used_bytes)},
                     {"memory_used_bytes", r.memory_used_bytes},
                     {"memory_pressure", r.memory_pressure},
                     {"refused", std::move(refused)}};
}

void to_json(nlohmann::json& j, const CoverageReport& r) {
  nlohmann::json gaps = nlohmann::json::array();
  for (const auto& g : r.gaps) {
    gaps.push_back({{"domain", g.domain}, {"interactions", g.interactions}, {"successes", g.successes}});
  }
  j = nlohmann::json{{"covered", r.covered}, {"gaps", std::move(gaps)}, {"coverage_ratio", r.coverage_ratio}};
}

// ---- AdapterPager ----

AdapterPager::AdapterPager(AdapterPagerConfig config, std::shared_ptr<MemoryBudget> budget,
                           std::shared_ptr<AdapterLoader> loader)
    : config_(validated(std::move(config))),
      budget_(std::move(budget)),
      loader_(std::move(loader)),
      budget_bytes_(config_.budget_bytes) {
  PoolConfig<std::string, ActiveAdapter> pc;
  pc.name = config_.tier_name;
  pc.max_bytes = config_.budget_bytes;
  pc.sizer = [](const ActiveAdapter& a) { return a.size_bytes; };
  // Runs under the pool's lock: reads only the slot's atomics and the clock.
  pc.policy = EvictionPolicy<ActiveAdapter>::custom(
      [clock = config_.clock](const EntryView&, const ActiveAdapter& a) -> std::int64_t {
        if (a.slot->admission_hold.load(std::memory_order_acquire)) return kNeverEvict;
        return adapter_pool_priority(a.slot->priority.load(std::memory_order_relaxed),
                                     a.slot->last_used_ms.load(std::memory_order_relaxed), clock());
      });
  pc.shards = 1;  // one global eviction order
  pc.curve_sampling_rate = config_.curve_sampling_rate;
  // Every change to the pool is made with mu_ held (see the header), so the listener, which
  // runs on the removing thread, runs with mu_ held too. Removals the pager asks for itself
  // (erase) are accounted where it asks; this hears only those the pool decides on.
  pc.removal_listener = [this](const std::string& name, const ActiveAdapter&, std::uint64_t, RemovalCause cause) {
    mu_.assert_held();  // the analysis cannot see the caller's lock through the pool
    if (cause != RemovalCause::kEvicted && cause != RemovalCause::kExpiredByBroker) return;
    try {
      pool_evicted_.push_back(name);
    } catch (const std::bad_alloc&) {
      pool_evicted_lost_ = true;  // the next reconcile compares every resident name instead
    }
  };
  pool_ = std::make_unique<Pool>(std::move(pc));
}

AdapterPager::~AdapterPager() = default;

void AdapterPager::register_adapter(AdapterInfo info) {
  validate_adapter_info(info);
  MutexLock lock(mu_);
  auto& reg = registry_[info.name];
  if (!reg.slot) reg.slot = std::make_shared<AdapterSlot>();
  reg.slot->priority.store(info.priority, std::memory_order_relaxed);
  reg.slot->last_used_ms.store(info.last_used_ms, std::memory_order_relaxed);
  reg.info = std::move(info);
}

bool AdapterPager::unregister_adapter(const std::string& name) {
  MutexLock lock(mu_);
  const auto it = registry_.find(name);
  if (it == registry_.end()) return false;
  if (resident_.contains(name)) evict_resident_locked(name);
  registry_.erase(it);
  return true;
}

void AdapterPager::reconcile_locked(std::vector<std::string>* evicted) {
  if (pool_evicted_lost_) {
    pool_evicted_lost_ = false;
    pool_evicted_.clear();
    for (auto it = resident_.begin(); it != resident_.end();) {
      if (pool_->contains(it->first)) {
        ++it;
        continue;
      }
      if (evicted != nullptr) evicted->push_back(it->first);
      resident_bytes_ -= it->second.size_bytes;
      it = resident_.erase(it);
    }
    return;
  }
  // In the pool's eviction order. A name evicted and then admitted again is still resident.
  for (std::string& name : pool_evicted_) {
    const auto it = resident_.find(name);
    if (it == resident_.end() || pool_->contains(name)) continue;
    resident_bytes_ -= it->second.size_bytes;
    resident_.erase(it);
    if (evicted != nullptr) evicted->push_back(std::move(name));
  }
  pool_evicted_.clear();
}

void AdapterPager::evict_resident_locked(const std::string& name) {
  const auto it = resident_.find(name);
  pool_->erase(name);
  resident_bytes_ -= it->second.size_bytes;
  resident_.erase(it);
}

std::uint64_t AdapterPager::evictable_bytes_locked() const {
  std::uint64_t bytes = 0;
  for (const auto& [name, r] : resident_) {
    if (!is_critical(r.slot->priority.load(std::memory_order_relaxed))) bytes += r.size_bytes;
  }
  return bytes;
}

bool AdapterPager::make_room_locked(std::uint64_t bytes, std::vector<std::string>& evicted, VictimQueue* victims) {
  const std::uint64_t cap = budget_bytes();
  const std::uint64_t usage = resident_bytes_;
  if (bytes <= cap && usage <= cap - bytes) return false;  // fits as it is
  const std::uint64_t evictable = victims != nullptr ? victims->evictable_bytes : evictable_bytes_locked();
  const std::uint64_t floor_usage = usage - evictable;  // what critical adapters hold
  const bool can_fit = bytes <= cap && floor_usage <= cap - bytes;
  if (!can_fit && (config_.over_budget == AdapterPagerConfig::OverBudget::kRefuse || bytes > cap)) {
    throw TierExhausted(config_.tier_name, bytes, cap > floor_usage ? cap - floor_usage : 0, 0);
  }
  // Highest score first (lowest pool priority), until the newcomer fits; every non-critical
  // adapter when it cannot (overcommit). One scan per victim: activations usually evict one
  // or two adapters, so this beats sorting the resident set.
  const std::int64_t now = config_.clock();
  while (resident_bytes_ > 0 && !(bytes <= cap && resident_bytes_ <= cap - bytes)) {
    if (victims != nullptr) {
      auto& heap = victims->heap;
      const auto later = std::greater<>();
      while (!heap.empty() && !resident_.contains(heap.front().second)) {
        std::pop_heap(heap.begin(), heap.end(), later);
        heap.pop_back();
      }
      if (heap.empty()) break;  // only critical adapters remain
      std::pop_heap(heap.begin(), heap.end(), later);
      evicted.push_back(std::move(heap.back().second));
      heap.pop_back();
      victims->evictable_bytes -= resident_.at(evicted.back()).size_bytes;
      evict_resident_locked(evicted.back());
      continue;
    }
    const std::string* victim = nullptr;
    std::int64_t lowest = kNeverEvict;
    for (const auto& [name, r] : resident_) {
      const std::int64_t p =
          adapter_pool_priority(r.slot->priority.load(std::memory_order_relaxed),
                                r.slot->last_used_ms.load(std::memory_order_relaxed), now);
      if (p < lowest) {
        lowest = p;
        victim = &name;
      }
    }
    if (victim == nullptr) break;  // only critical adapters remain
    evicted.push_back(*victim);
    evict_resident_locked(evicted.back());
  }
  return !(bytes <= cap && resident_bytes_ <= cap - bytes);
}

void AdapterPager::admit_locked(Registered& reg, ActivateSkillResult& result, std::int64_t t0_ns,
                                VictimQueue* victims) {
  const AdapterInfo& info = reg.info;
  std::uint64_t size = info.size_bytes;
  bool overcommit = make_room_locked(size, result.evicted, victims);
  std::shared_ptr<MemoryBudget::Guard> guard;
  if (budget_) {
    guard = std::make_shared<MemoryBudget::Guard>(
        budget_->allocate(size, Subsystem::kInference, config_.allocation_priority));
  }
  result.decision_time_us = elapsed_us(t0_ns);

  std::shared_ptr<const LoadedAdapter> weights;
  if (loader_) {
    const std::int64_t load_start = steady_ns();
    weights = loader_->load(info);
    const std::uint64_t actual = weights->size_bytes();
    record_load_locked(static_cast<double>(steady_ns() - load_start) / 1e9, actual);
    if (actual != size) {
      // The loaded weights are what occupies memory: account them, not the declaration.
      if (guard) {
        guard->release();
        *guard = budget_->allocate(actual, Subsystem::kInference, config_.allocation_priority);
      }
      if (actual > size) overcommit = make_room_locked(actual, result.evicted, victims) || overcommit;
      size = actual;
      reg.info.size_bytes = actual;
    }
  }

  ActiveAdapter active{info.name, size, std::move(weights), std::move(guard), reg.slot};
  if (overcommit) reg.slot->admission_hold.store(true, std::memory_order_release);
  const bool inserted = pool_->insert(info.name, std::move(active));
  reg.slot->admission_hold.store(false, std::memory_order_release);
  if (!inserted) {
    throw TierExhausted(config_.tier_name, size, 0, 0);  // larger than the whole budget
  }
  resident_[info.name] = Resident{reg.slot, size};
  resident_bytes_ += size;
  reconcile_locked(&result.evicted);
  if (overcommit) {
    spdlog::warn("adapter pager '{}': '{}' ({} bytes) loaded over budget: {} of {} bytes resident",
                 config_.tier_name, info.name, size, pool_->usage_bytes(), budget_bytes());
  }
  result.to_load = info.name;
  result.loaded = loader_ != nullptr;
  result.overcommitted = overcommit;
}

ActivateSkillResult AdapterPager::activate_skill(const std::string& name) {
  const std::int64_t t0 = steady_ns();
  ActivateSkillResult result;
  result.adapter_name = name;
  MutexLock lock(mu_);
  const auto it = registry_.find(name);
  if (it == registry_.end()) {
    result.reason = "unknown adapter '" + name + "'";
    result.decision_time_us = elapsed_us(t0);
    return result;
  }
  Registered& reg = it->second;
  accesses_.fetch_add(1, std::memory_order_relaxed);
  reg.slot->last_used_ms.store(config_.clock(), std::memory_order_relaxed);
  if (resident_.contains(name) && pool_->get(name)) {
    result.activated = true;
    result.decision_time_us = elapsed_us(t0);
    return result;
  }
  admit_locked(reg, result, t0);
  result.activated = true;
  return result;
}

std::uint64_t AdapterPager::evict_under_pressure(double target) {
  if (!(target >= 0.0)) throw std::invalid_argument("evict_under_pressure: target must be >= 0");
  MutexLock lock(mu_);
  if (pressure() <= target) return 0;
  const std::uint64_t freed = pool_->evict_under_pressure(target);
  reconcile_locked(nullptr);
  return freed;
}

SyncResult AdapterPager::sync_state(const std::vector<AdapterInfo>& adapters) {
  std::unordered_set<std::string> names;
  for (const auto& a : adapters) {
    validate_adapter_info(a);
    if (!names.insert(a.name).second) {
      throw AdapterInfoError("sync_state: adapter '" + a.name + "' is listed twice");
    }
  }
  MutexLock lock(mu_);
  std::unordered_map<std::string, Registered> next;
  for (const auto& a : adapters) {
    Registered reg{a, nullptr};
    if (const auto old = registry_.find(a.name); old != registry_.end()) reg.slot = old->second.slot;
    if (!reg.slot) reg.slot = std::make_shared<AdapterSlot>();
    reg.slot->priority.store(a.priority, std::memory_order_relaxed);
    reg.slot->last_used_ms.store(a.last_used_ms, std::memory_order_relaxed);
    next.emplace(a.name, std::move(reg));
  }
  for (auto it = resident_.begin(); it != resident_.end();) {
    const auto n = next.find(it->first);
    if (n != next.end() && n->second.info.is_loaded) {
      ++it;
      continue;
    }
    pool_->erase(it->first);
    resident_bytes_ -= it->second.size_bytes;
    it = resident_.erase(it);
  }
  registry_ = std::move(next);

  // Admissions in list order, each evicting the lowest-priority resident adapters as needed:
  // the eviction order comes from one heap, built once, so the sync is O(n log n).
  VictimQueue victims;
  const std::int64_t now = config_.clock();
  auto queue = [&](const std::string& name, const Resident& r) {
    const std::int64_t priority = adapter_pool_priority(r.slot->priority.load(std::memory_order_relaxed),
                                                        r.slot->last_used_ms.load(std::memory_order_relaxed), now);
    if (priority == kNeverEvict) return;
    victims.heap.emplace_back(priority, name);
    victims.evictable_bytes += r.size_bytes;
  };
  for (const auto& [name, r] : resident_) queue(name, r);
  std::make_heap(victims.heap.begin(), victims.heap.end(), std::greater<>());
  SyncResult out;
  for (const auto& a : adapters) {
    if (!a.is_loaded || resident_.contains(a.name)) continue;
    ActivateSkillResult ignored;
    try {
      admit_locked(registry_.at(a.name), ignored, steady_ns(), &victims);
    } catch (const std::exception& e) {
      out.refused.emplace_back(a.name, e.what());
      continue;
    }
    if (const auto it = resident_.find(a.name); it != resident_.end()) {
      const std::size_t before = victims.heap.size();
      queue(it->first, it->second);
      if (victims.heap.size() != before) std::push_heap(victims.heap.begin(), victims.heap.end(), std::greater<>());
    }
  }
  reconcile_locked(nullptr);
  out.adapter_count = registry_.size();
  out.active_count = resident_.size();
  out.memory_used_bytes = pool_->usage_bytes();
  out.memory_pressure = pressure();
  return out;
}

void AdapterPager::record_activity(const std::string& domain, bool success) {
  MutexLock lock(mu_);
  auto& a = activity_[domain];
  ++a.interactions;
  if (success) ++a.successes;
}

CoverageReport AdapterPager::coverage_report() const {
  MutexLock lock(mu_);
  std::set<std::string> domains_with_adapters;
  for (const auto& [name, reg] : registry_) domains_with_adapters.insert(reg.info.domain);
  CoverageReport report;
  for (const auto& [domain, activity] : activity_) {
    if (domains_with_adapters.contains(domain)) {
      report.covered.push_back(domain);
    } else {
      report.gaps.push_back({domain, activity.interactions, activity.successes});
    }
  }
  std::stable_sort(report.gaps.begin(), report.gaps.end(),
                   [](const CoverageGap& a, const CoverageGap& b) { return a.interactions > b.interactions; });
  const std::size_t total = report.covered.size() + report.gaps.size();
  report.coverage_ratio =
      total == 0 ? 1.0 : static_cast<double>(report.covered.size()) / static_cast<double>(total);
  return report;
}

AdapterInfo AdapterPager::info_locked(const Registered& reg, bool resident) const {
  AdapterInfo info = reg.info;
  info.priority = reg.slot->priority.load(std::memory_order_relaxed);
  info.last_used_ms = reg.slot->last_used_ms.load(std::memory_order_relaxed);
  info.is_loaded = resident;
  return info;
}

nlohmann::json AdapterPager::state() const {
  MutexLock lock(mu_);
  std::map<std::string, AdapterInfo> active;
  std::map<std::string, AdapterInfo> available;
  for (const auto& [name, reg] : registry_) {
    const bool resident = resident_.contains(name);
    (resident ? active : available).emplace(name, info_locked(reg, resident));
  }
  nlohmann::json active_json = nlohmann::json::array();
  nlohmann::json available_json = nlohmann::json::array();
  for (auto& [name, info] : active) active_json.push_back(info);
  for (auto& [name, info] : available) available_json.push_back(info);
  const std::uint64_t used = pool_->usage_bytes();
  const std::uint64_t budget = budget_bytes();
  return {{"persona_id", config_.persona_id},
          {"memory_budget_mb", to_mib(budget)},
          {"memory_used_mb", to_mib(used)},
          {"memory_budget_bytes", budget},
          {"memory_used_bytes", used},
          {"memory_pressure", pressure()},
          {"active_adapters", std::move(active_json)},
          {"available_adapters", std::move(available_json)}};
}

std::optional<ActiveAdapter> AdapterPager::active(const std::string& name) {
  MutexLock lock(mu_);
  accesses_.fetch_add(1, std::memory_order_relaxed);
  auto value = pool_->get(name);
  if (value) value->slot->last_used_ms.store(config_.clock(), std::memory_order_relaxed);
  return value;
}

bool AdapterPager::is_resident(const std::string& name) const { return pool_->contains(name); }

std::vector<std::string> AdapterPager::resident_names() const {
  MutexLock lock(mu_);
  std::vector<std::string> names;
  for (const auto& [name, r] : resident_) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

std::size_t AdapterPager::registered_count() const {
  MutexLock lock(mu_);
  return registry_.size();
}

std::uint64_t AdapterPager::usage_bytes() const { return pool_->usage_bytes(); }

std::uint64_t AdapterPager::evict_at_least(std::uint64_t bytes) {
  MutexLock lock(mu_);
  const std::uint64_t freed = pool_->evict_at_least(bytes);
  reconcile_locked(nullptr);
  return freed;
}

std::vector<EntrySnapshot> AdapterPager::snapshot() const { return pool_->snapshot(); }
PoolStats AdapterPager::stats() const { return pool_->stats(); }

double AdapterPager::miss_ratio(std::uint64_t bytes) const { return pool_->estimated_miss_ratio(bytes); }

bool AdapterPager::curve_known() const { return config_.curve_sampling_rate > 0.0 && loader_ != nullptr; }

double AdapterPager::miss_cost_seconds() const {
  return load_seconds_per_byte_.load(std::memory_order_relaxed) * load_bytes_.load(std::memory_order_relaxed);
}

void AdapterPager::record_load_locked(double seconds, std::uint64_t bytes) noexcept {
  if (bytes == 0) return;
  // The pool's weighting (PagedResourcePool::miss_cost_seconds): the first load sets the
  // averages, each later one moves them a tenth of the way.
  constexpr double kWeight = 0.1;
  const double per_byte = seconds / static_cast<double>(bytes);
  const double size = static_cast<double>(bytes);
  double avg_per_byte = load_seconds_per_byte_.load(std::memory_order_relaxed);
  double avg_size = load_bytes_.load(std::memory_order_relaxed);
  if (avg_size == 0.0) {
    avg_per_byte = per_byte;
    avg_size = size;
  } else {
    avg_per_byte += kWeight * (per_byte - avg_per_byte);
    avg_size += kWeight * (size - avg_size);
  }
  load_seconds_per_byte_.store(avg_per_byte, std::memory_order_relaxed);
  load_bytes_.store(avg_size, std::memory_order_relaxed);
}

void AdapterPager::set_budget(std::uint64_t bytes) {
  if (bytes == 0) {
    throw std::invalid_argument("adapter pager '" + config_.tier_name + "': set_budget needs bytes > 0");
  }
  MutexLock lock(mu_);
  budget_bytes_.store(bytes, std::memory_order_relaxed);
  pool_->set_max_bytes(bytes);
  reconcile_locked(nullptr);
}

// ---- AdapterPagerRegistry ----

AdapterPagerRegistry::AdapterPagerRegistry(AdapterPagerDefaults defaults,
                                           std::shared_ptr<MemoryBudget> budget,
                                           std::shared_ptr<AdapterLoader> loader,
                                           std::shared_ptr<PressureBroker> broker)
    : defaults_(std::move(defaults)),
      budget_(std::move(budget)),
      loader_(std::move(loader)),
      broker_(std::move(broker)) {}

AdapterPagerRegistry::~AdapterPagerRegistry() {
  if (!broker_) return;
  MutexLock lock(mu_);
  for (const auto& [id, pager] : pagers_) broker_->unregister_pool(pager->tier_name());
}

std::shared_ptr<AdapterPager> AdapterPagerRegistry::get_or_create(const std::string& persona_id,
                                                                  std::uint64_t budget_bytes) {
  if (persona_id.empty()) throw std::invalid_argument("adapter pager registry: empty persona id");
  MutexLock lock(mu_);
  if (const auto it = pagers_.find(persona_id); it != pagers_.end()) return it->second;
  if (defaults_.max_personas != 0 && pagers_.size() >= defaults_.max_personas) {
    throw PersonaLimitReached("adapter pager registry: " + std::to_string(pagers_.size()) +
                              " personas exist, the most allowed (max_personas); not creating '" +
                              persona_id.substr(0, 256) + "'");
  }
  std::uint64_t budget = budget_bytes != 0 ? budget_bytes : defaults_.budget_bytes;
  if (budget == 0 && budget_) budget = budget_->per_persona_inference_bytes(defaults_.expected_personas);
  if (budget == 0) {
    throw std::invalid_argument("adapter pager registry: no budget for persona '" + persona_id +
                                "' (give one, a default, or a MemoryBudget)");
  }
  AdapterPagerConfig config;
  config.persona_id = persona_id;
  config.budget_bytes = budget;
  config.over_budget = defaults_.over_budget;
  config.allocation_priority = defaults_.allocation_priority;
  config.clock = defaults_.clock;
  config.curve_sampling_rate = defaults_.curve_sampling_rate;
  auto pager = std::make_shared<AdapterPager>(std::move(config), budget_, loader_);
  if (broker_) broker_->register_pool(pager);
  pagers_.emplace(persona_id, pager);
  return pager;
}

std::shared_ptr<AdapterPager> AdapterPagerRegistry::find(const std::string& persona_id) const {
  MutexLock lock(mu_);
  const auto it = pagers_.find(persona_id);
  return it == pagers_.end() ? nullptr : it->second;
}

bool AdapterPagerRegistry::remove(const std::string& persona_id) {
  MutexLock lock(mu_);
  const auto it = pagers_.find(persona_id);
  if (it == pagers_.end()) return false;
  if (broker_) broker_->unregister_pool(it->second->tier_name());
  pagers_.erase(it);
  return true;
}

std::vector<std::string> AdapterPagerRegistry::persona_ids() const {
  MutexLock lock(mu_);
  std::vector<std::string> ids;
  ids.reserve(pagers_.size());
  for (const auto& [id, pager] : pagers_) ids.push_back(id);
  return ids;
}

}  // namespace pagekeeper
