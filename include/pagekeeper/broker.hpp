// pagekeeper/broker.hpp
//
// PressureBroker: one place that watches every registered ResourcePool (and, optionally, the
// host's real memory and a global budget over all pools) and makes pools give bytes back
// when, and only when, memory is short.
//
// What counts as pressure. A byte-budgeted pool evicts for itself, so a pool sitting at its
// budget is full by design, not short of memory: its fill (usage / capacity, reported as
// stats.pressure) never makes the broker act. Memory is short only when one of these binds:
//   * pool: bytes the pool cannot evict (pins, kNeverEvict entries, overcommitted adapters)
//     push it past its own budget. Its own pressure is usage / capacity when usage exceeds
//     capacity, and 0 while the pool is within its budget.
//   * globalBudget (BrokerConfig::memory_budget_bytes > 0): the managed pools hold
//     sum(usage) against one budget. It binds only when the pools' budgets together exceed it
//     (or their usage does); otherwise every pool keeping to its own budget keeps to the
//     global one too. Its pressure is sum(usage) / budget.
//   * host (with a HostMemorySource): the host's or container's memory, whichever limit binds
//     (host_memory.hpp); its pressure is used / limit.
// A pool's reported pressure is the highest of its own and the two shared figures (what
// binds on it; `binding` names which); the global pressure is the highest over all of them.
// Tiers and thresholds are pressure.hpp's, applied to these figures.
//
// Pool relief (one relieve() pass), on own pressures only:
//   * Only managed pools count: a pool whose capacity_bytes() is 0 is listed in snapshots
//     but never measured, relieved or alerted about.
//   * The worst own pressure classifies the pass. high: relieve the single worst pool whose
//     own pressure is >= act_above. critical: relieve every such pool, worst first.
//   * Relieving a pool means evict_at_least(used - floor(target_fraction * capacity)) (default
//     0.60 of capacity): the pool is brought back well inside its budget.
//   * act_above must lie in [high, critical]: below high a warning pass would select pools it
//     never acts on (the original's dead zone); above critical a critical pass would do nothing.
//
// Shedding, after pool relief in the same pass, for the host and the global budget together:
//   * Each shared figure is classified with the same thresholds; the shedding tier is the
//     higher of the two. At high or critical a shedding "episode" is active; it ends at the
//     first pass where neither is high (an unknown host reading counts as normal).
//   * Bytes wanted this pass = the larger of used - floor(high * limit) over the two (what
//     brings each below high), less what pool relief already freed in this pass.
//   * The wanted bytes are split across managed pools in proportion to their current usage,
//     bounded per pass: no pool is asked for more than max_pool_fraction_per_pass (default
//     5%) of its usage, and the episode as a whole never asks for more than
//     max_total_fraction (default 20%) of the managed bytes held when the episode began.
//     evict_at_least frees whole entries, so a pool may overshoot its request by at most one
//     entry (the overshoot counts against the episode budget).
//   * Shedding alerts have cause host_pressure or budget_pressure (whichever wanted more);
//     their pressure and tier are that figure's. An unknown host reading sheds nothing for
//     the host and is reported with its reason.
//
// Utility (pools that also derive from PoolUtility, pool_utility.hpp, and know their curve):
//   * Under a global budget, each pass first divides it among those pools: the budget less
//     what the other managed pools are given is theirs. When their budgets together exceed
//     it, they are cut (fit_budgets) from the pool whose expected miss cost rises least per
//     byte; then rebalance() moves steps of budget/64 from the pool whose cost rises least to
//     the one whose cost falls most, while the gain beats rebalance_hysteresis of the all-miss
//     cost (budget_allocation.hpp), at most 8 steps a pass (several at once where a curve has
//     plateaus: pools of a few large entries, such as adapter pagers and the model pool; at
//     most as many as the pool's mean entry spans steps).
//     Accesses are counted per pass. Budgets never fall below budget/(16 * pools), nor below
//     the bytes of a pool's pinned entries (a smaller budget could evict nothing and would
//     only put the pool past it; read from snapshot() when stats count pins); when the
//     other pools' budgets leave nothing to divide, the utility pools keep theirs. New budgets
//     go to set_budget() and into the pool's budget history (the last budget_history changes).
//   * Shedding takes bytes first from the pool whose curve says they are worth least: pools
//     are asked in order of the cost per byte of losing their per-pass share (pools without
//     utility last, in proportion to usage as before), each for at most its per-pass bound.
//
// Thrashing (pools with a ghost of evicted keys, ResourcePool::ghost()): each pass adds a
// pool's new misses and new ghost hits (re-loads of entries it evicted shortly before) to
// its window. When the window holds at least thrash_window_misses misses it is judged and
// restarted: the pool is thrashing while ghost hits make up at least thrash_ghost_share of
// the window's misses. Every pass while it is, it raises a condition with cause thrashing
// (tier warning, pressure the share) whose budget_wanted_bytes is the extra budget that
// would have kept 90% of the window's re-loads resident (the ghost's depth where they were
// found). The backoff below applies, so a pool stuck thrashing alerts once, then rarely, and
// says "cleared" once when a window finds it no longer is. Without a global budget the
// broker only reports; with one, rebalancing (below) acts on the same signal through the
// curves.
//
// Alerts. Every pool acted on raises a condition: (pool, cause, whether it freed nothing —
// "hot and stuck"). A condition is delivered the first time, then again only when it has
// held for 2, 4, 8, ... consecutive passes (alert.occurrences says how many); a condition
// that held in the previous pass and not in this one is delivered once more with cleared =
// true. So an unchanged state is not repeated on every tick, yet never goes silent. Every
// alert carries a sentence for people (message). Delivered alerts are logged at warn
// (cleared ones at info) and go to every sink synchronously. Action listeners, by contrast,
// see every pool action of every pass (for mechanisms that must react each time).
//
// Counting: evictions_fired keeps the original's meaning, passes that freed at least one
// byte; pool_reliefs_total counts pools that freed bytes under pool relief; every pool
// carries its own counters (PoolReliefCounters).
//
// Background relief: start(interval) runs relieve() on a dedicated thread, the first pass
// one interval after start; stop() wakes it at once (it waits only for a pass in progress).
//
// Thread safety: every public method may be called from any thread.
//   * The registry is a copy-on-write list behind registry_mutex_; relieve() and snapshot()
//     copy the list pointer under the lock and then act without it, so register/unregister
//     never wait for evictions or sinks, and never deadlock with a pass. A pool unregistered
//     during a pass may still be acted on by that pass (the pass holds a reference).
//   * relieve() passes are serialized by pass_mutex_ (manual and background passes never
//     overlap); shedding-episode state is written only under pass_mutex_ and published for
//     snapshots under state_mutex_; alert conditions are touched only under pass_mutex_.
//   * Counters are relaxed atomics.
//   * Sinks and listeners run on the thread that runs the pass. They must not call
//     relieve(), stop() or the destructor (they would wait on the pass that is calling
//     them); an exception thrown by one is caught and logged.

#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "pagekeeper/detail/mutex.hpp"
#include "pagekeeper/host_memory.hpp"
#include "pagekeeper/pool_utility.hpp"
#include "pagekeeper/pressure.hpp"
#include "pagekeeper/resource_pool.hpp"

namespace pagekeeper {

struct HostSheddingPolicy {
  // Per pass, no pool is asked for more than this fraction of its current usage.
  double max_pool_fraction_per_pass = 0.05;
  // Per episode (until neither the host nor the global budget is at high), no more than this
  // fraction of the managed bytes held when the episode began is requested in total.
  double max_total_fraction = 0.20;

  // Throws PressureConfigError unless both fractions are in (0, 1].
  void validate() const;
};

struct BrokerConfig {
  PressureThresholds thresholds;
  // Pools whose own pressure is at or above this are relieved in high/critical passes.
  double act_above = 0.80;
  // The fraction of capacity a relieved pool is asked to fall to.
  double target_fraction = 0.60;
  // One budget over all managed pools together, in bytes; 0: none.
  std::uint64_t memory_budget_bytes = 0;
  // A budget move must save this fraction of the all-miss cost, in [0, 1).
  double rebalance_hysteresis = 0.01;
  // Budget changes kept per pool for snapshots.
  std::size_t budget_history = 32;
  // A pool thrashes when re-loads of recently evicted entries (ghost hits) are at least this
  // share of its misses over a window of at least thrash_window_misses misses; in [0, 1],
  // 0 turns thrash alerts off.
  double thrash_ghost_share = 0.2;
  std::uint64_t thrash_window_misses = 64;
  // Interval of start() without an argument (the original's tick_interval).
  std::chrono::milliseconds tick_interval{5000};
  HostSheddingPolicy host_shedding;

  // Throws PressureConfigError unless thresholds are valid, thresholds.high <= act_above <=
  // thresholds.critical, 0 < target_fraction < act_above, tick_interval > 0 and
  // host_shedding is valid, thrash_ghost_share is in [0, 1] and thrash_window_misses > 0.
  // The message names the field, its value and the bounds.
  void validate() const;
};

struct PressureAlert {
  enum class Cause { pool_pressure, host_pressure, budget_pressure, thrashing };
  std::string tier_name;  // the pool acted on
  // What triggered the action: the pool's own pressure before eviction (pool_pressure), the
  // host's pressure (host_pressure) or the global budget's (budget_pressure), and its tier;
  // for thrashing, the share of misses that were re-loads, and tier warning.
  double pressure = 0.0;
  PressureTier tier = PressureTier::normal;
  std::uint64_t bytes_freed = 0;  // 0 means "hot and stuck" (or a cleared condition)
  bool action_taken = true;       // false for a cleared condition
  std::int64_t at_ms = 0;         // Unix milliseconds (wall clock, for people)
  Cause cause = Cause::pool_pressure;
  // Consecutive passes this condition has held, this one included (1 the first time).
  std::uint64_t occurrences = 1;
  // The condition held until the previous pass and no longer does.
  bool cleared = false;
  // Unix milliseconds of the pass where the condition began.
  std::int64_t since_ms = 0;
  // One sentence for people: what happened, to which pool, why, and how often.
  std::string message;
  // thrashing: the extra budget, in bytes, that would have kept 90% of the re-loads resident.
  std::uint64_t budget_wanted_bytes = 0;
};

// camelCase JSON {tierName, pressure, tier, bytesFreed, actionTaken, atMs, cause,
// occurrences, cleared, sinceMs, message, budgetWantedBytes}; cause is "poolPressure",
// "hostPressure", "budgetPressure" or "thrashing". from_json accepts the original's shape
// (cause, occurrences, cleared, sinceMs, message and budgetWantedBytes missing) and throws nlohmann::json exceptions on missing or mistyped
// fields, an unknown tier label or an unknown cause.
void to_json(nlohmann::json& j, const PressureAlert& a);
void from_json(const nlohmann::json& j, PressureAlert& a);

using AlertSink = std::function<void(const PressureAlert&)>;

// What happened to one pool in one pass.
struct PoolAction {
  std::string name;
  double pressure_before = 0.0;
  double pressure_after = 0.0;
  std::uint64_t bytes_requested = 0;
  std::uint64_t bytes_freed = 0;
  // Non-empty when evict_at_least threw (the pass carries on with the next pool).
  std::string error;
};

// Receives every pool action of every pass, unthrottled (unlike alerts).
using ActionListener = std::function<void(const PoolAction&)>;

// The managed pools against BrokerConfig::memory_budget_bytes.
struct GlobalBudgetReading {
  std::uint64_t limit_bytes = 0;     // the global budget
  std::uint64_t used_bytes = 0;      // sum of managed pools' usage
  std::uint64_t capacity_bytes = 0;  // sum of managed pools' budgets
  double pressure = 0.0;             // used / limit, uncapped
  // Whether the budget can be exceeded: the pools' budgets (or usage) together exceed it.
  bool binds = false;
  // classify(pressure) when it binds; normal otherwise.
  PressureTier tier = PressureTier::normal;
};

// One change of a pool's budget by the broker.
struct BudgetChange {
  std::int64_t at_ms = 0;  // Unix milliseconds
  std::uint64_t from_bytes = 0;
  std::uint64_t to_bytes = 0;
};

struct ShedReport {
  // The host's reading; source unknown with reason "no host memory source" without one.
  HostMemoryReading reading;
  PressureTier host_tier = PressureTier::normal;  // of reading.pressure; normal when unknown
  std::optional<GlobalBudgetReading> budget;      // present with a global budget
  PressureTier tier = PressureTier::normal;       // the higher of host_tier and budget's tier
  bool episode_active = false;
  std::uint64_t bytes_wanted = 0;  // the larger excess over high, less pool relief
  std::uint64_t bytes_requested = 0;
  std::uint64_t bytes_shed = 0;
  std::uint64_t episode_shed_bytes = 0;    // including this pass
  std::uint64_t episode_budget_bytes = 0;  // 0 outside an episode
  std::vector<PoolAction> pools_shed;      // pools asked for a share this pass
};

struct ReliefReport {
  // Whether this pass freed any byte (pool relief or shedding).
  bool triggered = false;
  // The highest pressure that binds (own, global budget, host) and its tier.
  double global_pressure_before = 0.0;
  PressureTier global_tier_before = PressureTier::normal;
  // All bytes freed by this pass: pool relief plus shedding.
  std::uint64_t bytes_freed = 0;
  // Pools relieved for their own pressure that freed bytes, worst first.
  std::vector<PoolAction> pools_acted;
  // Pools relieved for their own pressure that freed nothing ("hot and stuck").
  std::vector<PoolAction> pools_stuck;
  // Present when the broker has a host-memory source or a global budget.
  std::optional<ShedReport> shed;
  // The alerts this pass delivered (after the backoff), in order.
  std::vector<PressureAlert> alerts;
  // Budgets the pass changed (global budget division), with the pool's name.
  std::vector<std::pair<std::string, BudgetChange>> budget_changes;
};

// What the broker knows of a PoolUtility pool: its curve around its budget, its cost and its
// budget history.
struct PoolUtilityState {
  double miss_cost_seconds = 0.0;
  std::uint64_t accesses_last_pass = 0;
  std::vector<CurvePoint> curve;  // at 1/4, 1/2, 3/4, 1, 3/2 and 2 times the budget
  std::vector<BudgetChange> budget_history;  // oldest first
};

// Per-pool history, reset when a pool is (re)registered under its name.
struct PoolReliefCounters {
  std::uint64_t relief_count = 0;  // times relieved for its own pressure
  std::uint64_t relief_bytes_freed = 0;
  std::uint64_t stuck_count = 0;  // reliefs that freed nothing
  std::uint64_t shed_count = 0;   // times asked to shed for host or budget pressure
  std::uint64_t shed_bytes = 0;
};

struct PoolPressure {
  std::string name;
  // The highest pressure that binds on this pool: its own, the global budget's or the
  // host's (see the file comment); its tier; and which ("pool", "globalBudget", "host", or
  // "none" when all are 0).
  double pressure = 0.0;
  PressureTier tier = PressureTier::normal;
  std::string binding = "none";
  // usage / capacity past the budget, else 0.
  double own_pressure = 0.0;
  bool managed = true;  // false when capacity is 0
  PoolStats stats;      // stats.pressure is the fill, usage / capacity
  PoolReliefCounters counters;
  std::optional<PoolUtilityState> utility;  // present for PoolUtility pools
};

struct HostSheddingState {
  bool episode_active = false;
  std::uint64_t episode_shed_bytes = 0;
  std::uint64_t episode_budget_bytes = 0;
  std::uint64_t shed_bytes_total = 0;  // over the broker's lifetime
};

struct BrokerSnapshot {
  double global_pressure = 0.0;  // the highest pressure that binds
  PressureTier global_tier = PressureTier::normal;
  std::string binding = "none";      // which figure gave global_pressure
  std::vector<PoolPressure> pools;   // sorted by pressure, descending
  std::uint64_t evictions_fired = 0;     // passes that freed bytes
  std::uint64_t bytes_freed_total = 0;   // relief and shedding
  std::uint64_t pool_reliefs_total = 0;  // pool reliefs that freed bytes
  std::uint64_t passes_total = 0;        // relieve() passes completed
  std::uint64_t alerts_delivered_total = 0;
  std::uint64_t alerts_suppressed_total = 0;  // held back by the backoff
  std::optional<HostMemoryReading> host_memory;  // a fresh reading; absent without a source
  PressureTier host_tier = PressureTier::normal;
  std::optional<GlobalBudgetReading> global_budget;  // absent without a global budget
  HostSheddingState host_shedding;
  bool running = false;  // background relief active
};

// camelCase JSON. BrokerSnapshot keeps the original `system/pressure-broker-state` shape and
// adds fields: {globalPressure, globalTier, binding, pools:[{name, pressure, tier, binding,
// ownPressure, stats:{...}, managed, reliefCount, reliefBytesFreed, stuckCount, shedCount,
// shedBytes, utility: null | {missCostSeconds, accessesLastPass, curve:[{bytes, missRatio}],
// budgetHistory:[{atMs, fromBytes, toBytes}]}}], evictionsFired, bytesFreedTotal, poolReliefsTotal, passesTotal,
// alertsDeliveredTotal, alertsSuppressedTotal, hostMemory: null | {source, limitBytes,
// usedBytes, pressure, reason, tier}, globalBudget: null | {limitBytes, usedBytes,
// capacityBytes, pressure, binds, tier}, hostShedding:{episodeActive, episodeShedBytes,
// episodeBudgetBytes, shedBytesTotal}, running}.
void to_json(nlohmann::json& j, const PoolAction& a);
void to_json(nlohmann::json& j, const GlobalBudgetReading& r);
void to_json(nlohmann::json& j, const ShedReport& r);
void to_json(nlohmann::json& j, const ReliefReport& r);
void to_json(nlohmann::json& j, const BrokerSnapshot& s);

class PressureBroker {
 public:
  // Throws PressureConfigError when `config` is invalid. `host` may be null (no host
  // shedding).
  explicit PressureBroker(BrokerConfig config = {},
                          std::shared_ptr<const HostMemorySource> host = nullptr);
  // Stops background relief (waits for a pass in progress).
  ~PressureBroker();
  PressureBroker(const PressureBroker&) = delete;
  PressureBroker& operator=(const PressureBroker&) = delete;

  const BrokerConfig& config() const noexcept { return config_; }

  // Registers `pool` under its tier_name(); an existing registration with that name is
  // replaced (its counters start again). Throws std::invalid_argument when `pool` is null.
  void register_pool(std::shared_ptr<ResourcePool> pool);
  // Removes the pool named `name`; false when there was none.
  bool unregister_pool(std::string_view name);
  std::vector<std::string> pool_names() const;

  // The highest pressure that binds now (pools' own, global budget, host); 0 with none.
  double global_pressure() const;

  // Adds a sink that receives every delivered alert, synchronously, on the thread running
  // the pass. Throws std::invalid_argument for an empty sink.
  void add_alert_sink(AlertSink sink);
  // Adds a listener that receives every pool action, synchronously, on the pass's thread.
  // Throws std::invalid_argument for an empty listener.
  void add_action_listener(ActionListener listener);

  // One pass, as described above. Never throws for a pool's failure (recorded in the
  // report); waits for a concurrent pass to finish first.
  ReliefReport relieve();

  // Current pressures, stats and counters; never evicts. Reads the host source afresh.
  BrokerSnapshot snapshot() const;

  // Starts background relief every `interval` (> 0), first pass one interval from now.
  // Throws std::invalid_argument for a non-positive interval and std::logic_error when
  // already running.
  void start(std::chrono::milliseconds interval);
  void start() { start(config_.tick_interval); }
  // Stops background relief; returns at once when idle (the waiting thread is woken), or
  // after the pass in progress. No-op when not running.
  void stop();
  bool running() const;
  // True while the background thread waits for its next pass (started, not in a pass): a
  // stop() now only has to wake it. Lets a caller (a test) order itself after that point.
  bool waiting_for_next_pass() const;

 private:
  struct CounterCells;  // PoolReliefCounters as relaxed atomics
  struct UtilityCells;  // accesses at the last pass, budget history
  struct ThrashCells;   // the thrash window; touched only under pass_mutex_
  struct Registration {
    std::string name;
    std::shared_ptr<ResourcePool> pool;
    std::shared_ptr<CounterCells> counters;
    // The same object as pool, when it is one and knows its curve.
    PoolUtility* utility = nullptr;
    std::shared_ptr<UtilityCells> utility_cells;
    std::shared_ptr<ThrashCells> thrash;
  };
  using Registry = std::vector<Registration>;
  // One alert condition's history; keyed by pool, cause and stuck-ness.
  struct Condition {
    std::uint64_t occurrences = 0;
    std::uint64_t next_delivery = 1;  // deliver when occurrences reaches this
    std::int64_t since_ms = 0;
    PressureAlert last;
  };
  // What binds now, measured once per pass or snapshot.
  struct Measurement;

  std::shared_ptr<const Registry> registry() const;
  Measurement measure(const Registry& pools, bool read_host) const;
  void divide_budget(const Measurement& m, ReliefReport& report);
  void relieve_pools(const Registry& pools, const Measurement& m, ReliefReport& report,
                     std::vector<PressureAlert>& raised);
  void shed(const Registry& pools, const Measurement& m, ReliefReport& report,
            std::vector<PressureAlert>& raised);
  // Adds this pass's misses and ghost hits to each pool's thrash window; raises the
  // condition of every pool found thrashing.
  void watch_thrashing(const Measurement& m, std::vector<PressureAlert>& raised);
  // Applies the backoff to this pass's raised alerts and delivers what is due.
  void deliver(std::vector<PressureAlert> raised, ReliefReport& report) PAGEKEEPER_REQUIRES(pass_mutex_);
  void notify(const PoolAction& action);
  void run_background(std::chrono::milliseconds interval);

  const BrokerConfig config_;
  const std::shared_ptr<const HostMemorySource> host_;

  mutable Mutex registry_mutex_;
  std::shared_ptr<const Registry> registry_ PAGEKEEPER_GUARDED_BY(registry_mutex_);

  Mutex sinks_mutex_;
  std::vector<AlertSink> sinks_ PAGEKEEPER_GUARDED_BY(sinks_mutex_);
  std::vector<ActionListener> listeners_ PAGEKEEPER_GUARDED_BY(sinks_mutex_);

  Mutex pass_mutex_;  // held for the whole of relieve()
  std::map<std::string, Condition> conditions_ PAGEKEEPER_GUARDED_BY(pass_mutex_);

  mutable Mutex state_mutex_;
  HostSheddingState host_state_;  // written under pass_mutex_ + state_mutex_

  std::atomic<std::uint64_t> evictions_fired_{0};
  std::atomic<std::uint64_t> bytes_freed_total_{0};
  std::atomic<std::uint64_t> pool_reliefs_total_{0};
  std::atomic<std::uint64_t> passes_total_{0};
  std::atomic<std::uint64_t> alerts_delivered_{0};
  std::atomic<std::uint64_t> alerts_suppressed_{0};

  Mutex lifecycle_mutex_;  // serializes start() and stop()
  mutable Mutex worker_mutex_;
  CondVar worker_cv_;
  bool stop_requested_ PAGEKEEPER_GUARDED_BY(worker_mutex_) = false;
  bool running_ PAGEKEEPER_GUARDED_BY(worker_mutex_) = false;
  bool worker_waiting_ PAGEKEEPER_GUARDED_BY(worker_mutex_) = false;
  std::thread worker_ PAGEKEEPER_GUARDED_BY(lifecycle_mutex_);
};

}  // namespace pagekeeper
