// pagekeeper/adapter_pager.hpp
//
// AdapterPager: one persona's LoRA adapters paged within a byte budget, the reimplementation
// of the original's per-persona GenomePagingEngine, built on the pool from the start (the
// original planned to move its engine onto shared paging and never did).
//
// Model. The pager knows a set of registered adapters (AdapterInfo). The resident ones live in
// a PagedResourcePool<std::string, ActiveAdapter> whose budget is the pager's budget. Each
// ActiveAdapter owns its loaded weights (from the AdapterLoader) and its MemoryBudget guard,
// both through shared_ptr: when the pool evicts an entry and nobody else holds a copy, the
// weights are freed and the bytes return to the MemoryBudget. A caller that applies an
// adapter (e.g. to a llama.cpp context) keeps its ActiveAdapter copy while it is applied, so
// eviction never frees weights that are in use; their bytes stay accounted until then.
//
// Eviction order (the original's score, kept): score = age_s / (priority * 10), where age_s
// is the time since the adapter was last used on the pager's clock; the highest score is
// evicted first; priority above 0.9 is critical and never evicted (the pool's kNeverEvict).
// The pool evicts the LOWEST int64 priority first, so the pool priority is -score in
// micro-units (score * 1e6, rounded, clamped to [0, 2^62]). Priority 0 is treated as the
// lowest non-zero priority, kMinimumAdapterPriority = 0.01 (so the adapter is evicted first
// among equally old ones), never as a division by zero: the original's INF/NaN score made a
// priority-0 adapter unevictable by accident.
//
// When an activation does not fit. The pager evicts non-critical adapters in score order until
// it fits. If it cannot fit even after evicting every non-critical adapter, OverBudget::kRefuse
// (the default) throws TierExhausted before evicting or loading anything; kOvercommit evicts
// every non-critical adapter, loads the adapter over budget and logs a warning (the result
// says overcommitted = true). The overrun lasts until the next eviction pass (the next
// activation, evict_under_pressure or broker relief), which may then evict the newcomer like
// any other adapter. Neither mode ever passes the MemoryBudget's gates: when a MemoryBudget is
// attached, its refusal (TierExhausted) always refuses the activation. The original loaded
// over budget silently, so a budget was never a limit when every adapter was critical.
//
// Who evicts. Policy-driven eviction (evict_under_pressure, the broker through evict_at_least)
// is the pool's, through the custom priority above. An activation picks its victims itself
// with the same score over the resident set (so it can name them and evict only what the
// newcomer needs) and removes them with the pool's erase(); both orders are the same function
// (adapter_pool_priority).
//
// Pressure is uncapped: usage / budget (it can exceed 1 after an overcommit), so
// evict_under_pressure(target >= 1) is meaningful, unlike the original's capped figure.
//
// Decision-only mode. Without an AdapterLoader the pager accounts the declared sizes and
// answers which adapter the caller must load (to_load) and which were evicted, as the
// original did; with a loader it loads the weights itself (loaded = true).
//
// What its bytes are worth (PoolUtility, pool_utility.hpp). With curve_sampling_rate > 0 and
// a loader, the pager estimates its miss-ratio curve with the pool's SHARDS sampler (every
// activation and active() feeds it: a hit as a read, a load as an insert), counts those uses
// as accesses, and times its loader: a miss costs the loader's moving-average seconds per
// byte times the moving-average bytes of one load, the unit the embedding cache and the model
// pool use, so a broker weighs an adapter load against an embedding by what each really
// costs. The curve is the LRU one; the pager's order is LRU among adapters of one priority
// and keeps higher priorities longer, so it misses no more than the curve says on a working
// set of equal priorities. Without a loader (decision-only mode) nothing can be timed: the
// curve is not known and a broker manages the pager as a pool without utility.
//
// Who owns the budget. The pager's byte budget (capacity_bytes(), which adapters may stay
// resident) has one owner at a time: the creator sets it (AdapterPagerConfig::budget_bytes:
// explicit, the registry's default, or the MemoryBudget's per-persona inference share), and
// once the pager is registered with a PressureBroker that divides a global budget and it
// knows its curve, the broker owns it and changes it only through set_budget(). The
// MemoryBudget never changes it: it is a separate ledger that admits or refuses each
// adapter's bytes (its priority gates and the inference share), so an activation needs both
// room in the pager's budget (made by evicting) and the MemoryBudget's consent.
//
// Thread safety: every public method may be called from any thread. One mutex (mu_)
// serializes the pager's own operations and guards the registry, the resident set and the
// activity counters; the pool is internally synchronized and is only ever entered with mu_
// held or from the broker through evict_at_least (which takes mu_ too), never the other way
// round. Per-adapter recency and priority live in atomics (AdapterSlot) because the pool's
// priority callback reads them under the pool's lock without mu_. Loading runs with mu_ held:
// activations of one persona are serialized (as in the original, which needed exclusive
// access); different personas' pagers are independent.

#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "pagekeeper/adapter_loader.hpp"
#include "pagekeeper/detail/mutex.hpp"
#include "pagekeeper/errors.hpp"
#include "pagekeeper/memory_budget.hpp"
#include "pagekeeper/pool.hpp"
#include "pagekeeper/pool_utility.hpp"
#include "pagekeeper/resource_pool.hpp"

namespace pagekeeper {

class PressureBroker;

inline constexpr double kMinimumAdapterPriority = 0.01;

// The original's eviction score: +infinity when priority > 0.9 (critical), otherwise
// age_s / (max(priority, kMinimumAdapterPriority) * 10) with age_s = max(now - last_used, 0)
// / 1000. Higher is evicted first. Examples: 60 s at 0.5 -> 12; just used -> 0.
double adapter_eviction_score(double priority, std::int64_t last_used_ms, std::int64_t now_ms);

// The same order as a pool priority (lower evicted first): kNeverEvict when critical,
// otherwise -round(score * 1e6) clamped to [-2^62, 0].
std::int64_t adapter_pool_priority(double priority, std::int64_t last_used_ms,
                                   std::int64_t now_ms);

// Per-registered-adapter state shared by the pager and every ActiveAdapter copy of it.
struct AdapterSlot {
  std::atomic<std::int64_t> last_used_ms{0};
  std::atomic<double> priority{0.5};
  // Set while an overcommitted adapter is being inserted, so the pool's own budget
  // enforcement cannot evict it during the insert (it then counts as critical).
  std::atomic<bool> admission_hold{false};
};

// The value the pool holds for a resident adapter. Copies share the weights and the guard.
struct ActiveAdapter {
  std::string name;
  std::uint64_t size_bytes = 0;
  // Null in decision-only mode (no loader).
  std::shared_ptr<const LoadedAdapter> weights;
  // Null when the pager has no MemoryBudget.
  std::shared_ptr<MemoryBudget::Guard> guard;
  std::shared_ptr<AdapterSlot> slot;
};

struct AdapterPagerConfig {
  // The persona this pager serves; required (non-empty).
  std::string persona_id;
  // Bytes of adapters that may be resident at once; required (> 0).
  std::uint64_t budget_bytes = 0;
  enum class OverBudget { kRefuse, kOvercommit };
  OverBudget over_budget = OverBudget::kRefuse;
  // The MemoryBudget class adapters are allocated under (subsystem: inference).
  AllocationPriority allocation_priority = AllocationPriority::kInteractive;
  // Milliseconds for ages and last_used_ms. Default: monotonic_ms(). A pager whose adapters
  // arrive through sync_state() with wall-clock last_used_ms values should use unix_ms.
  std::function<std::int64_t()> clock;
  // Tier name for the broker; default "adapters:<persona_id>".
  std::string tier_name;
  // Miss-ratio curve sampling (PoolConfig::curve_sampling_rate), in [0, 1]; 0 (the default)
  // turns it off. A broker dividing a global budget needs it on (see the file comment).
  double curve_sampling_rate = 0.0;
};

struct ActivateSkillResult {
  bool activated = false;
  std::string adapter_name;
  // Adapters evicted to make room, in eviction order.
  std::vector<std::string> evicted;
  // The adapter that had to be brought in (absent on a hit or a refusal). In decision-only
  // mode the caller loads it; otherwise the pager did (loaded = true).
  std::optional<std::string> to_load;
  bool loaded = false;
  bool overcommitted = false;
  // Time to decide (lookup, fit, eviction, budget allocation), excluding the loader's I/O.
  double decision_time_us = 0.0;
  // Why activated is false ("unknown adapter 'x'"); empty otherwise.
  std::string reason;
};

struct SyncResult {
  bool synced = true;
  std::size_t adapter_count = 0;
  std::size_t active_count = 0;
  std::uint64_t memory_used_bytes = 0;
  double memory_pressure = 0.0;
  // Adapters marked is_loaded that could not be made resident, with the reason.
  std::vector<std::pair<std::string, std::string>> refused;
};

struct DomainActivity {
  std::uint64_t interactions = 0;
  std::uint64_t successes = 0;
};

struct CoverageGap {
  std::string domain;
  std::uint64_t interactions = 0;
  std::uint64_t successes = 0;
};

struct CoverageReport {
  // Domains with recorded activity and at least one registered adapter, sorted by name.
  std::vector<std::string> covered;
  // Domains with recorded activity and no adapter, most interactions first (ties by name).
  std::vector<CoverageGap> gaps;
  // covered / (covered + gaps); 1.0 when no activity was recorded.
  double coverage_ratio = 1.0;
};

// snake_case JSON, the original's: ActivateSkillResult {activated, adapter_name, evicted, to_load
// (string or null), loaded, overcommitted, decision_time_us, reason?}; SyncResult {synced,
// adapter_count, active_count, memory_used_mb, memory_used_bytes, memory_pressure, refused:
// [{name, reason}]}; CoverageReport {covered, gaps: [{domain, interactions, successes}],
// coverage_ratio}.
void to_json(nlohmann::json& j, const ActivateSkillResult& r);
void to_json(nlohmann::json& j, const SyncResult& r);
void to_json(nlohmann::json& j, const CoverageReport& r);

class AdapterPager final : public ResourcePool, public PoolUtility {
 public:
  using Pool = PagedResourcePool<std::string, ActiveAdapter>;

  // `budget` (may be null) accounts the adapters' bytes under the inference subsystem;
  // `loader` (may be null: decision-only mode) loads their weights. Throws
  // std::invalid_argument when persona_id is empty or budget_bytes is 0.
  AdapterPager(AdapterPagerConfig config, std::shared_ptr<MemoryBudget> budget,
               std::shared_ptr<AdapterLoader> loader);
  ~AdapterPager() override;

  // Adds or replaces a registered adapter (not loading it). A resident adapter keeps its
  // weights; its priority and last_used_ms take the new values. Throws AdapterInfoError.
  void register_adapter(AdapterInfo info);
  // Forgets an adapter, evicting it when resident. Returns whether it was registered.
  bool unregister_adapter(const std::string& name);

  // Makes `name` resident (see the file comment). A resident adapter is touched (last used
  // = now) and nothing is loaded. An unregistered name gives activated = false with a
  // reason. Throws TierExhausted when it cannot fit (kRefuse) or the MemoryBudget refuses,
  // AdapterLoadError / TierUnavailable when the loader fails; in every failure case no
  // adapter is resident that was not before, except adapters evicted to make room before a
  // MemoryBudget or loader failure (reported in the exception's evicted_bytes for the
  // former).
  ActivateSkillResult activate_skill(const std::string& name);

  // Evicts non-critical adapters in score order until pressure <= target (pressure is
  // uncapped), or only critical ones remain. Returns bytes freed (0 when already at or
  // below target). Requires target >= 0 (std::invalid_argument).
  std::uint64_t evict_under_pressure(double target);

  // Replaces the registry with `adapters`: adapters not listed, or listed with is_loaded =
  // false, are evicted; listed adapters with is_loaded = true are made resident (in the
  // order given; one that cannot fit or load is reported in `refused`, not thrown).
  // Throws AdapterInfoError (changing nothing) when an entry is invalid or a name repeats.
  SyncResult sync_state(const std::vector<AdapterInfo>& adapters);

  void record_activity(const std::string& domain, bool success);
  CoverageReport coverage_report() const;

  // {memory_budget_mb, memory_used_mb, memory_budget_bytes, memory_used_bytes,
  //  memory_pressure (uncapped), active_adapters: [AdapterInfo], available_adapters:
  //  [AdapterInfo]} with active = resident and available = registered, not resident, each
  // sorted by name.
  nlohmann::json state() const;

  // A copy of the resident adapter `name` (counts as a use: refreshes its recency), or
  // nullopt. Hold it while its weights are in use.
  std::optional<ActiveAdapter> active(const std::string& name);
  bool is_resident(const std::string& name) const;
  std::vector<std::string> resident_names() const;
  std::size_t registered_count() const;

  const std::string& persona_id() const noexcept { return config_.persona_id; }
  // The budget now: config.budget_bytes until set_budget() changes it.
  std::uint64_t budget_bytes() const noexcept { return budget_bytes_.load(std::memory_order_relaxed); }
  std::int64_t now_ms() const { return config_.clock(); }

  // ResourcePool: capacity = budget_bytes, usage = resident bytes, evict_at_least evicts
  // non-critical adapters in score order (the broker's lever), snapshot/stats are the pool's.
  std::string tier_name() const override { return config_.tier_name; }
  std::uint64_t capacity_bytes() const override { return budget_bytes(); }
  std::uint64_t usage_bytes() const override;
  std::uint64_t evict_at_least(std::uint64_t bytes) override;
  std::vector<EntrySnapshot> snapshot() const override;
  PoolStats stats() const override;

  // PoolUtility (see the file comment). miss_ratio() is the pool's SHARDS estimate;
  // curve_known() is curve_sampling_rate > 0 with a loader; accesses() counts
  // activate_skill() calls of registered adapters and active() calls; miss_cost_seconds() is
  // 0 before the first load. set_budget() makes `bytes` the budget and evicts non-critical
  // adapters in score order down to it (critical and in-use ones stay: the pager may remain
  // over it); requires bytes > 0 (std::invalid_argument).
  double miss_ratio(std::uint64_t bytes) const override;
  bool curve_known() const override;
  std::uint64_t accesses() const override { return accesses_.load(std::memory_order_relaxed); }
  double miss_cost_seconds() const override;
  void set_budget(std::uint64_t bytes) override;

 private:
  struct Registered {
    AdapterInfo info;
    std::shared_ptr<AdapterSlot> slot;
  };

  struct Resident {
    std::shared_ptr<AdapterSlot> slot;
    std::uint64_t size_bytes = 0;
  };
  // The eviction order of the resident adapters during one sync_state() (their priorities
  // are fixed for its duration), so that admitting n adapters costs O(n log n) instead of a
  // scan of the resident set per victim. Entries of adapters no longer resident are skipped.
  struct VictimQueue {
    std::vector<std::pair<std::int64_t, std::string>> heap;  // min-heap on priority
    std::uint64_t evictable_bytes = 0;  // sizes of the non-critical resident adapters
  };

  // All require mu_ held.
  // After a policy-driven pool eviction (evict_at_least, evict_under_pressure, an insert's
  // budget enforcement): drops the names the pool's removal listener reported evicted from
  // the resident set, appending them to `evicted` in eviction order when given. O(evicted).
  void reconcile_locked(std::vector<std::string>* evicted) PAGEKEEPER_REQUIRES(mu_);
  // Removes one resident adapter from the pool and the resident set.
  void evict_resident_locked(const std::string& name) PAGEKEEPER_REQUIRES(mu_);
  // Bytes that evicting every non-critical resident adapter would free.
  std::uint64_t evictable_bytes_locked() const PAGEKEEPER_REQUIRES(mu_);
  // Evicts until `bytes` more fit (kRefuse: throws TierExhausted without evicting when they
  // cannot). Returns whether the adapter is being overcommitted.
  // With `victims`, takes the victims and the evictable total from it.
  bool make_room_locked(std::uint64_t bytes, std::vector<std::string>& evicted,
                        VictimQueue* victims = nullptr) PAGEKEEPER_REQUIRES(mu_);
  // Brings a registered adapter in; fills result (everything but activated/timing).
  void admit_locked(Registered& reg, ActivateSkillResult& result, std::int64_t t0_ns,
                    VictimQueue* victims = nullptr) PAGEKEEPER_REQUIRES(mu_);
  AdapterInfo info_locked(const Registered& reg, bool resident) const PAGEKEEPER_REQUIRES(mu_);
  // Adds one loader call that took `seconds` for `bytes` to the moving averages.
  void record_load_locked(double seconds, std::uint64_t bytes) noexcept PAGEKEEPER_REQUIRES(mu_);

  AdapterPagerConfig config_;
  std::shared_ptr<MemoryBudget> budget_;
  std::shared_ptr<AdapterLoader> loader_;
  mutable Mutex mu_;
  std::unordered_map<std::string, Registered> registry_ PAGEKEEPER_GUARDED_BY(mu_);
  // The pool's keys and sizes. The pool is only ever changed with mu_ held (the broker's
  // lever, evict_at_least, takes mu_ too), so this is exact after every public call; its sum
  // is resident_bytes_. Guarded by mu_.
  std::unordered_map<std::string, Resident> resident_ PAGEKEEPER_GUARDED_BY(mu_);
  std::uint64_t resident_bytes_ PAGEKEEPER_GUARDED_BY(mu_) = 0;
  // Names the pool evicted by its own decision (its removal listener, which runs with mu_
  // held), not yet dropped from resident_ by reconcile_locked. Guarded by mu_.
  std::vector<std::string> pool_evicted_ PAGEKEEPER_GUARDED_BY(mu_);
  // A name could not be recorded (out of memory): reconcile compares every resident name.
  bool pool_evicted_lost_ PAGEKEEPER_GUARDED_BY(mu_) = false;
  std::map<std::string, DomainActivity> activity_ PAGEKEEPER_GUARDED_BY(mu_);
  std::unique_ptr<Pool> pool_;
  // Written with mu_ held, read without it (capacity_bytes(), the broker's utility reads).
  std::atomic<std::uint64_t> budget_bytes_;
  std::atomic<std::uint64_t> accesses_{0};
  std::atomic<double> load_seconds_per_byte_{0.0};  // moving averages of the loader's calls
  std::atomic<double> load_bytes_{0.0};
};

// The pagers of every persona, keyed by persona id (for the server's cognition/genome-*
// commands). New pagers share one MemoryBudget and one loader, and are registered with the
// broker when one is given (and unregistered on remove).
//
// Thread safety: every method may be called from any thread (one internal mutex).
struct AdapterPagerDefaults {
  // Budget of a pager created without one; 0 = the MemoryBudget's per-persona inference
  // share for `expected_personas` (the original's inference / max(n, 1)).
  std::uint64_t budget_bytes = 0;
  std::size_t expected_personas = 1;
  AdapterPagerConfig::OverBudget over_budget = AdapterPagerConfig::OverBudget::kRefuse;
  AllocationPriority allocation_priority = AllocationPriority::kInteractive;
  std::function<std::int64_t()> clock;
  // AdapterPagerConfig::curve_sampling_rate of new pagers.
  double curve_sampling_rate = 0.0;
  // Pagers that may exist at once (0: no limit); get_or_create() of one more throws
  // PersonaLimitReached.
  std::size_t max_personas = 0;
};

// get_or_create() would create a pager past AdapterPagerDefaults::max_personas.
class PersonaLimitReached : public Error {
 public:
  using Error::Error;
};

class AdapterPagerRegistry {
 public:
  // `budget`, `loader` and `broker` may each be null. With neither budget nor a default
  // budget_bytes, get_or_create() needs an explicit budget.
  AdapterPagerRegistry(AdapterPagerDefaults defaults, std::shared_ptr<MemoryBudget> budget,
                       std::shared_ptr<AdapterLoader> loader,
                       std::shared_ptr<PressureBroker> broker);
  ~AdapterPagerRegistry();

  // The pager of `persona_id`, created on first use with `budget_bytes` (0 = the default).
  // An existing pager keeps its budget (the one it was created with, or the broker's).
  // Throws std::invalid_argument for an empty id or when no budget can be determined, and
  // PersonaLimitReached when max_personas pagers exist already.
  std::shared_ptr<AdapterPager> get_or_create(const std::string& persona_id,
                                              std::uint64_t budget_bytes = 0);
  // The pager of `persona_id`, or null.
  std::shared_ptr<AdapterPager> find(const std::string& persona_id) const;
  // Drops the pager (unregistering it from the broker). Its adapters are freed once no
  // caller holds the pager or their ActiveAdapter copies.
  bool remove(const std::string& persona_id);
  std::vector<std::string> persona_ids() const;

 private:
  AdapterPagerDefaults defaults_;
  std::shared_ptr<MemoryBudget> budget_;
  std::shared_ptr<AdapterLoader> loader_;
  std::shared_ptr<PressureBroker> broker_;
  mutable Mutex mu_;
  std::map<std::string, std::shared_ptr<AdapterPager>> pagers_ PAGEKEEPER_GUARDED_BY(mu_);
};

}  // namespace pagekeeper
