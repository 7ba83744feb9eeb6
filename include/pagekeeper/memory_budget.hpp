// pagekeeper/memory_budget.hpp
//
// MemoryBudget: the host's accelerator (or RAM) memory ledger, the reimplementation of the
// original's GpuMemoryManager. It does not allocate memory itself: callers ask it
// for permission to hold N bytes of one subsystem at one priority class, and get back an RAII
// Guard that returns the bytes to the ledger when destroyed. Things that own real memory (an
// adapter's weights, a TTS voice, a render target) keep the guard next to the memory, so
// freeing the memory and releasing the bytes happen together.
//
// Total. In this order: an explicit total (tests, operators); otherwise NVML's total memory of
// one NVIDIA GPU, with libnvidia-ml.so.1 loaded with dlopen() at run time (never needed to
// build or test; a missing library, a failing nvmlInit or no device all mean "no GPU");
// otherwise `host_ram_fraction` (default 25%) of the host RAM available to this process,
// HostMemory::limit_bytes() (host_memory.hpp): min(MemTotal, every cgroup v2 or v1 memory
// limit on this process's cgroup path and its ancestors). The broker reads the same module,
// so the two agree on what the host allows.

// Sub-budgets. total = inference (75%) + tts (10%) + render (10%) + reserve (5%). The
// reserve is never handed out. Each subsystem's share is a hard cap: an allocation that would
// take a subsystem past its share (strictly more than its budget) is refused.
//
// Pressure and gates. Pressure is GLOBAL, not per subsystem:
//     pressure = (bytes held by all subsystems) / (total - reserve), uncapped.
// This is also the ResourcePool view: capacity_bytes() = total - reserve, usage_bytes() = the
// bytes held, so the PressureBroker sees exactly the pressure the gates use. Each priority
// class has a gate (realtime 0.95, interactive 0.80, background 0.60, batch 0.50); an
// allocation is refused when the pressure it would leave behind is at or past its class's
// gate: (held + bytes) >= gate * (total - reserve). Lower classes are therefore refused
// first, which keeps headroom for realtime work. A global gate (rather than one per
// subsystem) is what makes the gates meaningful for the whole device: a batch job in the
// render share cannot take memory that an interactive inference request will need.
//
// Shares and gates are applied at parts-per-million resolution in integer arithmetic, so
// 0.80 of 950 bytes is exactly 760 (no floating-point rounding at the boundaries).
//
// Refusals throw TierExhausted{tier = "<name>/<subsystem>", requested, available (bytes the
// request could have had under both the gate and the sub-budget), evicted = 0}.
//
// Eviction. The budget does not own the memory, so it can free bytes only through guards whose
// owner said how: allocate_evictable() takes an Evictor, a callback that frees the memory and
// releases the guard. evict_at_least() calls evictors in order of their class's eviction
// weight, the worth of keeping the memory (realtime: never evicted; interactive 0.7,
// background 0.4, batch 0.2), lowest first and the oldest first within a class, until the
// bytes released reach the request. Guards from allocate() are never evicted by the budget;
// their owners (pools, pagers) are relieved by the broker themselves, and their guards'
// destruction lowers this budget's usage. So register a MemoryBudget with a PressureBroker
// only when can_free() says it holds an evictable guard: otherwise it would be a pool the
// broker watches but can never relieve.
//
// Thread safety: every method may be called from any thread. Allocation and the release of an
// evictable guard take one internal mutex (held for a few comparisons); other releases and
// usage/pressure reads are lock-free atomics. Evictors run without that mutex, on the thread
// that called evict_at_least(); an evictor may release its guard from there or from any other
// thread. Guards may outlive the MemoryBudget that issued them (they share its ledger).

#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pagekeeper/resource_pool.hpp"

namespace pagekeeper {

// What the memory is for; each has its own share of the total.
enum class Subsystem : std::uint8_t { kInference = 0, kTts = 1, kRender = 2 };
inline constexpr std::size_t kSubsystemCount = 3;

// How much the request matters; decides the pressure at which it is refused.
enum class AllocationPriority : std::uint8_t {
  kRealtime = 0,
  kInteractive = 1,
  kBackground = 2,
  kBatch = 3
};
inline constexpr std::size_t kAllocationPriorityCount = 4;

// "inference", "tts", "render"; "realtime", "interactive", "background", "batch".
std::string_view to_string(Subsystem s) noexcept;
std::string_view to_string(AllocationPriority p) noexcept;
// Parse the names above; std::nullopt for anything else.
std::optional<Subsystem> subsystem_from_string(std::string_view name) noexcept;
std::optional<AllocationPriority> allocation_priority_from_string(std::string_view name) noexcept;

// The worth of keeping memory of class `p` when the budget must evict: realtime nullopt (never
// evicted), interactive 0.7, background 0.4, batch 0.2. Lower is evicted first.
std::optional<double> eviction_weight(AllocationPriority p) noexcept;

// Frees the memory an evictable guard accounts for and releases the guard (see MemoryBudget).
using Evictor = std::function<void()>;

// Where the total came from.
enum class MemoryTotalSource : std::uint8_t { kExplicit, kNvml, kHostRam };
std::string_view to_string(MemoryTotalSource s) noexcept;

struct MemoryBudgetConfig {
  // Tier name seen by the broker and in errors.
  std::string name = "memory-budget";

  // When set (> 0), the total in bytes; NVML and host RAM are not consulted.
  std::uint64_t explicit_total_bytes = 0;

  // NVML. Set use_nvml = false to skip it; nvml_library is what dlopen() is given.
  bool use_nvml = true;
  std::string nvml_library = "libnvidia-ml.so.1";
  unsigned nvml_device_index = 0;

  // Host RAM fallback: share of min(MemTotal, cgroup limits), in (0, 1].
  double host_ram_fraction = 0.25;
  std::string meminfo_path = "/proc/meminfo";
  // The cgroup mount (v2 unified; v1 controllers below it) and this process's membership file.
  std::string cgroup_root = "/sys/fs/cgroup";
  std::string self_cgroup_path = "/proc/self/cgroup";

  // Shares of the total, each in [0, 1], summing to at most 1 (what is left over is unused).
  double inference_share = 0.75;
  double tts_share = 0.10;
  double render_share = 0.10;
  double reserve_share = 0.05;

  // Pressure at which a class is refused, each in (0, 1], indexed by AllocationPriority.
  std::array<double, kAllocationPriorityCount> gates = {0.95, 0.80, 0.60, 0.50};
};

// The host RAM visible to this process in bytes: HostMemory::limit_bytes() with these paths
// (MemTotal of `meminfo_path` and every cgroup limit on the path `self_cgroup_path` names,
// under `cgroup_root`). Returns 0 when MemTotal cannot be read.
std::uint64_t host_memory_bytes(const std::string& meminfo_path, const std::string& cgroup_root,
                                const std::string& self_cgroup_path);

// Total memory of NVIDIA device `device_index` through NVML loaded with dlopen(library), or
// std::nullopt when the library, the device or any call is unavailable. Never throws.
std::optional<std::uint64_t> nvml_total_memory_bytes(const std::string& library,
                                                     unsigned device_index);

class MemoryBudget final : public ResourcePool {
  struct Ledger;

 public:
  // Permission to hold `bytes()` of one subsystem. Move-only; releases on destruction or
  // release(). A default-constructed or moved-from guard holds nothing.
  class Guard {
   public:
    Guard() = default;
    Guard(Guard&& other) noexcept;
    Guard& operator=(Guard&& other) noexcept;
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;
    ~Guard();

    // Returns the bytes to the budget. Idempotent.
    void release() noexcept;
    std::uint64_t bytes() const noexcept { return bytes_; }
    Subsystem subsystem() const noexcept { return subsystem_; }
    AllocationPriority priority() const noexcept { return priority_; }
    bool holds() const noexcept { return ledger_ != nullptr; }

   private:
    friend class MemoryBudget;
    Guard(std::shared_ptr<Ledger> ledger, std::uint64_t bytes, Subsystem s,
          AllocationPriority p, std::uint64_t evictable_id) noexcept;
    std::shared_ptr<Ledger> ledger_;
    std::uint64_t evictable_id_ = 0;  // 0: not evictable
    std::uint64_t bytes_ = 0;
    Subsystem subsystem_ = Subsystem::kInference;
    AllocationPriority priority_ = AllocationPriority::kBatch;
  };

  // Resolves the total (see the file comment) and splits it. Throws TierUnavailable when the
  // configuration is invalid (a share or gate out of range, shares summing past 1, a host
  // RAM fraction outside (0, 1]) or when no total can be determined.
  explicit MemoryBudget(MemoryBudgetConfig config = {});
  ~MemoryBudget() override;
  MemoryBudget(const MemoryBudget&) = delete;
  MemoryBudget& operator=(const MemoryBudget&) = delete;

  // Grants `bytes` of `subsystem` at `priority`, or throws TierExhausted when the
  // subsystem's share or the class's gate would be reached (see the file comment). A
  // 0-byte request follows the same rule (refused when the budget is already at the gate).
  Guard allocate(std::uint64_t bytes, Subsystem subsystem, AllocationPriority priority);
  // The same, for memory its owner can give back: `evictor` (non-empty; std::invalid_argument
  // otherwise) is called by evict_at_least() when this guard is chosen, and must free the
  // memory and release the guard. A realtime guard is never chosen.
  Guard allocate_evictable(std::uint64_t bytes, Subsystem subsystem, AllocationPriority priority,
                           Evictor evictor);
  // Whether a live guard could be evicted (an evictable guard below realtime).
  bool can_free() const;

  // The whole memory, before the split.
  std::uint64_t total_bytes() const noexcept;
  MemoryTotalSource total_source() const noexcept;
  std::uint64_t reserve_bytes() const noexcept;
  std::uint64_t subsystem_budget_bytes(Subsystem s) const noexcept;
  std::uint64_t subsystem_usage_bytes(Subsystem s) const noexcept;
  // Usage at which `p` is refused: ceil(gate * capacity_bytes()).
  std::uint64_t gate_limit_bytes(AllocationPriority p) const noexcept;
  // The inference share divided among `personas` (at least 1), as the original's
  // per-persona adapter budget.
  std::uint64_t per_persona_inference_bytes(std::size_t personas) const noexcept;
  // Live guards and refusals so far.
  std::uint64_t live_guards() const noexcept;
  std::uint64_t refusals() const noexcept;

  // ResourcePool. capacity = total - reserve; usage = bytes held; evict_at_least calls
  // evictors as described above and returns the bytes of the guards they released (0 when
  // no guard is evictable). snapshot() lists one entry per subsystem (key = subsystem name,
  // size = its usage, pin_count = its live guards). stats(): entry_count = live guards,
  // pinned_count = those the budget cannot evict, evictions = guards evicted,
  // rejected_oversize = requests larger than their subsystem's whole share.
  std::string tier_name() const override;
  std::uint64_t capacity_bytes() const override;
  std::uint64_t usage_bytes() const override;
  std::uint64_t evict_at_least(std::uint64_t bytes) override;
  std::vector<EntrySnapshot> snapshot() const override;
  PoolStats stats() const override;

 private:
  std::string name_;
  MemoryTotalSource source_;
  std::uint64_t total_ = 0;
  std::uint64_t reserve_ = 0;
  std::array<std::uint64_t, kSubsystemCount> subsystem_budget_{};
  std::array<std::uint64_t, kAllocationPriorityCount> gate_limit_{};
  Guard grant(std::uint64_t bytes, Subsystem subsystem, AllocationPriority priority,
              Evictor evictor);

  std::shared_ptr<Ledger> ledger_;
};

}  // namespace pagekeeper
