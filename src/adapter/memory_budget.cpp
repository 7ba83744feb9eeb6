#include "pagekeeper/memory_budget.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <map>
#include <stdexcept>
#include <sstream>
#include <utility>

#include "pagekeeper/detail/mutex.hpp"
#include "pagekeeper/errors.hpp"
#include "pagekeeper/host_memory.hpp"

namespace pagekeeper {

// The shared ledger. Locking rule: every increase of `held` / `subsystem_held` happens with
// `mu` held, after the gate and share checks, so checks and increases are one atomic step;
// decreases (guard release) are lock-free fetch_subs, which can only make a concurrent
// check conservative, never let it overrun. Readers use the atomics without the lock.
// `evictable` and `next_id` are guarded by `mu`; an evictable guard leaves `evictable` (under
// `mu`) before its bytes are returned.
struct MemoryBudget::Ledger {
  struct Evictable {
    std::uint64_t bytes;
    AllocationPriority priority;
    Evictor evictor;
  };

  Mutex mu;
  std::atomic<std::uint64_t> held{0};
  std::array<std::atomic<std::uint64_t>, kSubsystemCount> subsystem_held{};
  std::array<std::atomic<std::uint64_t>, kSubsystemCount> subsystem_guards{};
  std::atomic<std::uint64_t> refusals{0};
  std::atomic<std::uint64_t> rejected_oversize{0};
  std::atomic<std::uint64_t> evicted{0};
  std::map<std::uint64_t, Evictable> evictable PAGEKEEPER_GUARDED_BY(mu);  // by id, oldest first
  std::uint64_t next_id PAGEKEEPER_GUARDED_BY(mu) = 1;

  void release(std::uint64_t bytes, Subsystem s, std::uint64_t evictable_id) noexcept {
    if (evictable_id != 0) {
      MutexLock lock(mu);
      evictable.erase(evictable_id);
    }
    const auto i = static_cast<std::size_t>(s);
    subsystem_held[i].fetch_sub(bytes, std::memory_order_acq_rel);
    subsystem_guards[i].fetch_sub(1, std::memory_order_acq_rel);
    held.fetch_sub(bytes, std::memory_order_acq_rel);
  }
};

namespace {

constexpr std::array<std::string_view, kSubsystemCount> kSubsystemNames = {"inference", "tts",
                                                                            "render"};
constexpr std::array<std::string_view, kAllocationPriorityCount> kPriorityNames = {
    "realtime", "interactive", "background", "batch"};

std::uint64_t saturating_add(std::uint64_t a, std::uint64_t b) {
  const std::uint64_t sum = a + b;
  return sum < a ? std::numeric_limits<std::uint64_t>::max() : sum;
}

// Fractions are applied as parts per million in 128-bit integer arithmetic, so 0.80 of 950
// is exactly 760 (in double it is 760.0000000000001, whose ceiling would be 761).
unsigned __int128 parts_per_million(std::uint64_t bytes, double fraction) {
  const auto ppm = static_cast<unsigned __int128>(std::llround(fraction * 1e6));
  return static_cast<unsigned __int128>(bytes) * ppm;
}

// floor(fraction * bytes); fraction in [0, 1].
std::uint64_t share_of(std::uint64_t bytes, double fraction) {
  return static_cast<std::uint64_t>(parts_per_million(bytes, fraction) / 1000000);
}

// ceil(fraction * bytes); fraction in [0, 1].
std::uint64_t ceil_share_of(std::uint64_t bytes, double fraction) {
  return static_cast<std::uint64_t>((parts_per_million(bytes, fraction) + 999999) / 1000000);
}

void require_fraction(const std::string& tier, const char* what, double v, bool allow_zero) {
  const bool ok = std::isfinite(v) && v <= 1.0 && (allow_zero ? v >= 0.0 : v > 0.0);
  if (!ok) {
    std::ostringstream reason;
    reason << "invalid " << what << ": " << v << " (must be in " << (allow_zero ? "[0" : "(0")
           << ", 1])";
    throw TierUnavailable(tier, reason.str());
  }
}

}  // namespace

std::string_view to_string(Subsystem s) noexcept {
  return kSubsystemNames[static_cast<std::size_t>(s)];
}

std::string_view to_string(AllocationPriority p) noexcept {
  return kPriorityNames[static_cast<std::size_t>(p)];
}

std::optional<Subsystem> subsystem_from_string(std::string_view name) noexcept {
  for (std::size_t i = 0; i < kSubsystemNames.size(); ++i) {
    if (kSubsystemNames[i] == name) return static_cast<Subsystem>(i);
  }
  return std::nullopt;
}

std::optional<AllocationPriority> allocation_priority_from_string(std::string_view name) noexcept {
  for (std::size_t i = 0; i < kPriorityNames.size(); ++i) {
    if (kPriorityNames[i] == name) return static_cast<AllocationPriority>(i);
  }
  return std::nullopt;
}

std::string_view to_string(MemoryTotalSource s) noexcept {
  switch (s) {
    case MemoryTotalSource::kExplicit:
      return "explicit";
    case MemoryTotalSource::kNvml:
      return "nvml";
    case MemoryTotalSource::kHostRam:
      return "host-ram";
  }
  return "unknown";
}

std::optional<double> eviction_weight(AllocationPriority p) noexcept {
  switch (p) {
    case AllocationPriority::kRealtime: return std::nullopt;
    case AllocationPriority::kInteractive: return 0.7;
    case AllocationPriority::kBackground: return 0.4;
    case AllocationPriority::kBatch: return 0.2;
  }
  return std::nullopt;
}

std::uint64_t host_memory_bytes(const std::string& meminfo_path, const std::string& cgroup_root,
                                const std::string& self_cgroup_path) {
  HostMemoryPaths paths;
  paths.meminfo = meminfo_path;
  paths.cgroup_root = cgroup_root;
  paths.self_cgroup = self_cgroup_path;
  return HostMemory(paths).limit_bytes();
}

std::optional<std::uint64_t> nvml_total_memory_bytes(const std::string& library,
                                                     unsigned device_index) {
  // NVML's C ABI (nvml.h), declared here so that building needs no CUDA headers.
  using nvmlReturn_t = int;
  using nvmlDevice_t = void*;
  struct nvmlMemory_t {
    unsigned long long total;
    unsigned long long free;
    unsigned long long used;
  };
  using InitFn = nvmlReturn_t (*)();
  using ShutdownFn = nvmlReturn_t (*)();
  using HandleFn = nvmlReturn_t (*)(unsigned, nvmlDevice_t*);
  using MemoryFn = nvmlReturn_t (*)(nvmlDevice_t, nvmlMemory_t*);

  void* lib = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) return std::nullopt;
  std::optional<std::uint64_t> result;
  auto init = reinterpret_cast<InitFn>(dlsym(lib, "nvmlInit_v2"));
  auto shutdown = reinterpret_cast<ShutdownFn>(dlsym(lib, "nvmlShutdown"));
  auto handle_by_index = reinterpret_cast<HandleFn>(dlsym(lib, "nvmlDeviceGetHandleByIndex_v2"));
  auto memory_info = reinterpret_cast<MemoryFn>(dlsym(lib, "nvmlDeviceGetMemoryInfo"));
  if (init != nullptr && shutdown != nullptr && handle_by_index != nullptr &&
      memory_info != nullptr && init() == 0) {
    nvmlDevice_t device = nullptr;
    nvmlMemory_t memory{};
    if (handle_by_index(device_index, &device) == 0 && memory_info(device, &memory) == 0 &&
        memory.total > 0) {
      result = static_cast<std::uint64_t>(memory.total);
    }
    shutdown();
  }
  dlclose(lib);
  return result;
}

// ---- Guard ----

MemoryBudget::Guard::Guard(std::shared_ptr<Ledger> ledger, std::uint64_t bytes, Subsystem s,
                           AllocationPriority p, std::uint64_t evictable_id) noexcept
    : ledger_(std::move(ledger)),
      evictable_id_(evictable_id),
      bytes_(bytes),
      subsystem_(s),
      priority_(p) {}

MemoryBudget::Guard::Guard(Guard&& other) noexcept
    : ledger_(std::move(other.ledger_)),
      evictable_id_(std::exchange(other.evictable_id_, 0)),
      bytes_(std::exchange(other.bytes_, 0)),
      subsystem_(other.subsystem_),
      priority_(other.priority_) {}

MemoryBudget::Guard& MemoryBudget::Guard::operator=(Guard&& other) noexcept {
  if (this != &other) {
    release();
    ledger_ = std::move(other.ledger_);
    evictable_id_ = std::exchange(other.evictable_id_, 0);
    bytes_ = std::exchange(other.bytes_, 0);
    subsystem_ = other.subsystem_;
    priority_ = other.priority_;
  }
  return *this;
}

MemoryBudget::Guard::~Guard() { release(); }

void MemoryBudget::Guard::release() noexcept {
  if (ledger_ == nullptr) return;
  ledger_->release(bytes_, subsystem_, evictable_id_);
  ledger_.reset();
  evictable_id_ = 0;
  bytes_ = 0;
}

// ---- MemoryBudget ----

MemoryBudget::MemoryBudget(MemoryBudgetConfig config)
    : name_(std::move(config.name)), ledger_(std::make_shared<Ledger>()) {
  require_fraction(name_, "inference share", config.inference_share, true);
  require_fraction(name_, "tts share", config.tts_share, true);
  require_fraction(name_, "render share", config.render_share, true);
  require_fraction(name_, "reserve share", config.reserve_share, true);
  const double share_sum =
      config.inference_share + config.tts_share + config.render_share + config.reserve_share;
  if (share_sum > 1.0 + 1e-9) {
    throw TierUnavailable(name_, "invalid memory shares: they sum to " +
                                     std::to_string(share_sum) + " (must be at most 1)");
  }
  for (std::size_t i = 0; i < config.gates.size(); ++i) {
    const std::string what = std::string(kPriorityNames[i]) + " gate";
    require_fraction(name_, what.c_str(), config.gates[i], false);
  }

  if (config.explicit_total_bytes > 0) {
    source_ = MemoryTotalSource::kExplicit;
    total_ = config.explicit_total_bytes;
  } else if (auto gpu = config.use_nvml ? nvml_total_memory_bytes(config.nvml_library,
                                                                   config.nvml_device_index)
                                        : std::nullopt) {
    source_ = MemoryTotalSource::kNvml;
    total_ = *gpu;
  } else {
    require_fraction(name_, "host RAM fraction", config.host_ram_fraction, false);
    source_ = MemoryTotalSource::kHostRam;
    total_ = share_of(
        host_memory_bytes(config.meminfo_path, config.cgroup_root, config.self_cgroup_path),
        config.host_ram_fraction);
  }
  if (total_ == 0) {
    throw TierUnavailable(name_, "memory total is unknown (no GPU, and MemTotal unreadable in " +
                                     config.meminfo_path + ")");
  }

  reserve_ = share_of(total_, config.reserve_share);
  subsystem_budget_[static_cast<std::size_t>(Subsystem::kInference)] =
      share_of(total_, config.inference_share);
  subsystem_budget_[static_cast<std::size_t>(Subsystem::kTts)] = share_of(total_, config.tts_share);
  subsystem_budget_[static_cast<std::size_t>(Subsystem::kRender)] =
      share_of(total_, config.render_share);
  for (std::size_t i = 0; i < config.gates.size(); ++i) {
    gate_limit_[i] = ceil_share_of(total_ - reserve_, config.gates[i]);
  }
}

MemoryBudget::~MemoryBudget() = default;

MemoryBudget::Guard MemoryBudget::allocate(std::uint64_t bytes, Subsystem subsystem,
                                           AllocationPriority priority) {
  return grant(bytes, subsystem, priority, nullptr);
}

MemoryBudget::Guard MemoryBudget::allocate_evictable(std::uint64_t bytes, Subsystem subsystem,
                                                     AllocationPriority priority,
                                                     Evictor evictor) {
  if (!evictor) throw std::invalid_argument("MemoryBudget::allocate_evictable: empty evictor");
  return grant(bytes, subsystem, priority, std::move(evictor));
}

bool MemoryBudget::can_free() const {
  MutexLock lock(ledger_->mu);
  return std::any_of(ledger_->evictable.begin(), ledger_->evictable.end(), [](const auto& e) {
    return eviction_weight(e.second.priority).has_value();
  });
}

MemoryBudget::Guard MemoryBudget::grant(std::uint64_t bytes, Subsystem subsystem,
                                        AllocationPriority priority, Evictor evictor) {
  const auto si = static_cast<std::size_t>(subsystem);
  const auto pi = static_cast<std::size_t>(priority);
  if (si >= kSubsystemCount || pi >= kAllocationPriorityCount) {
    throw TierUnavailable(name_, "invalid subsystem or priority value");
  }
  const std::uint64_t share = subsystem_budget_[si];
  const std::uint64_t gate_limit = gate_limit_[pi];
  {
    MutexLock lock(ledger_->mu);
    const std::uint64_t held = ledger_->held.load(std::memory_order_acquire);
    const std::uint64_t sub_held = ledger_->subsystem_held[si].load(std::memory_order_acquire);
    const bool within_share = saturating_add(sub_held, bytes) <= share;
    const bool under_gate = saturating_add(held, bytes) < gate_limit;
    if (within_share && under_gate) {
      ledger_->subsystem_held[si].fetch_add(bytes, std::memory_order_acq_rel);
      ledger_->subsystem_guards[si].fetch_add(1, std::memory_order_acq_rel);
      ledger_->held.fetch_add(bytes, std::memory_order_acq_rel);
      std::uint64_t id = 0;
      if (evictor) {
        id = ledger_->next_id++;
        ledger_->evictable.emplace(id, Ledger::Evictable{bytes, priority, std::move(evictor)});
      }
      return Guard(ledger_, bytes, subsystem, priority, id);
    }
    ledger_->refusals.fetch_add(1, std::memory_order_relaxed);
    if (bytes > share) ledger_->rejected_oversize.fetch_add(1, std::memory_order_relaxed);
    const std::uint64_t share_left = share > sub_held ? share - sub_held : 0;
    const std::uint64_t gate_left = gate_limit > held + 1 ? gate_limit - held - 1 : 0;
    throw TierExhausted(name_ + "/" + std::string(to_string(subsystem)), bytes,
                        std::min(share_left, gate_left), 0);
  }
}

std::uint64_t MemoryBudget::total_bytes() const noexcept { return total_; }
MemoryTotalSource MemoryBudget::total_source() const noexcept { return source_; }
std::uint64_t MemoryBudget::reserve_bytes() const noexcept { return reserve_; }

std::uint64_t MemoryBudget::subsystem_budget_bytes(Subsystem s) const noexcept {
  return subsystem_budget_[static_cast<std::size_t>(s)];
}

std::uint64_t MemoryBudget::subsystem_usage_bytes(Subsystem s) const noexcept {
  return ledger_->subsystem_held[static_cast<std::size_t>(s)].load(std::memory_order_acquire);
}

std::uint64_t MemoryBudget::gate_limit_bytes(AllocationPriority p) const noexcept {
  return gate_limit_[static_cast<std::size_t>(p)];
}

std::uint64_t MemoryBudget::per_persona_inference_bytes(std::size_t personas) const noexcept {
  return subsystem_budget_bytes(Subsystem::kInference) / std::max<std::size_t>(personas, 1);
}

std::uint64_t MemoryBudget::live_guards() const noexcept {
  std::uint64_t n = 0;
  for (const auto& g : ledger_->subsystem_guards) n += g.load(std::memory_order_acquire);
  return n;
}

std::uint64_t MemoryBudget::refusals() const noexcept {
  return ledger_->refusals.load(std::memory_order_relaxed);
}

std::string MemoryBudget::tier_name() const { return name_; }
std::uint64_t MemoryBudget::capacity_bytes() const { return total_ - reserve_; }

std::uint64_t MemoryBudget::usage_bytes() const {
  return ledger_->held.load(std::memory_order_acquire);
}

std::uint64_t MemoryBudget::evict_at_least(std::uint64_t bytes) {
  if (bytes == 0) return 0;
  struct Candidate {
    std::uint64_t id;
    std::uint64_t bytes;
    double weight;
    Evictor evictor;
  };
  std::vector<Candidate> candidates;
  {
    MutexLock lock(ledger_->mu);
    for (const auto& [id, e] : ledger_->evictable) {
      if (const auto weight = eviction_weight(e.priority)) {
        candidates.push_back({id, e.bytes, *weight, e.evictor});
      }
    }
  }
  // Lowest weight first; ids rise with age, so the oldest first within a class.
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const Candidate& a, const Candidate& b) { return a.weight < b.weight; });
  std::uint64_t freed = 0;
  for (const auto& c : candidates) {
    if (freed >= bytes) break;
    try {
      c.evictor();
    } catch (...) {
      continue;  // an evictor that fails frees nothing; the next candidate is tried
    }
    MutexLock lock(ledger_->mu);
    if (!ledger_->evictable.contains(c.id)) {
      freed += c.bytes;
      ledger_->evicted.fetch_add(1, std::memory_order_relaxed);
    }
  }
  return freed;
}

std::vector<EntrySnapshot> MemoryBudget::snapshot() const {
  std::vector<EntrySnapshot> out;
  out.reserve(kSubsystemCount);
  for (std::size_t i = 0; i < kSubsystemCount; ++i) {
    EntrySnapshot e;
    e.key = std::string(kSubsystemNames[i]);
    e.size_bytes = ledger_->subsystem_held[i].load(std::memory_order_acquire);
    e.pin_count = static_cast<std::uint32_t>(
        std::min<std::uint64_t>(ledger_->subsystem_guards[i].load(std::memory_order_acquire),
                                std::numeric_limits<std::uint32_t>::max()));
    out.push_back(std::move(e));
  }
  return out;
}

PoolStats MemoryBudget::stats() const {
  PoolStats s;
  s.name = name_;
  s.entry_count = live_guards();
  std::uint64_t evictable = 0;
  {
    MutexLock lock(ledger_->mu);
    for (const auto& [id, e] : ledger_->evictable) {
      if (eviction_weight(e.priority)) ++evictable;
    }
  }
  s.pinned_count = s.entry_count - std::min(evictable, s.entry_count);
  s.evictions = ledger_->evicted.load(std::memory_order_relaxed);
  s.total_bytes = usage_bytes();
  s.max_bytes = capacity_bytes();
  s.pressure = s.max_bytes == 0 ? 0.0
                                : static_cast<double>(s.total_bytes) /
                                      static_cast<double>(s.max_bytes);
  s.rejected_oversize = ledger_->rejected_oversize.load(std::memory_order_relaxed);
  return s;
}

}  // namespace pagekeeper
