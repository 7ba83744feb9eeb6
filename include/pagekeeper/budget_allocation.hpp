// pagekeeper/budget_allocation.hpp
//
// Moving bytes between pools' budgets toward the lowest total expected miss cost, the way
// CacheLib's pool optimizer moves slabs by marginal hits.
//
// Each pool states its demand: a miss-ratio curve (the fraction of its accesses that would
// miss at a given budget; for example from SHARDS sampling, detail/miss_ratio_sampler.hpp),
// how many accesses it serves in the period considered, and what one miss costs (the loader's
// time per byte times the bytes a miss loads, so an embedding miss and an adapter load are
// compared in one unit). Its expected cost at budget b is accesses * miss_cost * miss_ratio(b).
//
// rebalance() moves whole steps of `step` bytes from the pool whose cost rises least by losing
// them to the pool whose cost falls most by gaining them (the best pair), while the gain
// exceeds the loss by more than `hysteresis` times the cost if every access missed (the sum of
// accesses * miss_cost; so noise in the curves does not make budgets oscillate), at most
// `max_moves` steps in all. Each move may take several steps at once when their net saving
// per step is the best (a lookahead: a curve with plateaus, such as a pool of a few entries
// larger than a step, gains nothing from one step and much from several; PoolDemand::lookahead
// bounds how many, so curves are evaluated no further than needed); on convex curves
// it moves one step at a time. Budgets never fall below a pool's min_budget, and their sum
// never changes.
//
// Thread safety: a pure function of its arguments (the curves must be safe to call).

#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace pagekeeper {

struct PoolDemand {
  std::string name;
  std::uint64_t budget = 0;      // bytes now
  std::uint64_t min_budget = 0;  // never allocated less
  double accesses = 0.0;         // accesses in the period considered
  double miss_cost = 1.0;        // cost of one miss (e.g. loader seconds)
  std::function<double(std::uint64_t)> miss_ratio;  // by budget in bytes, in [0, 1]
  // The most steps one move into this pool may take at once (its plateaus are at most this
  // wide: about an entry's bytes over the step); 0: up to max_moves.
  std::size_t lookahead = 0;
};

struct RebalanceOptions {
  std::uint64_t step = 0;      // bytes per move; required (> 0)
  double hysteresis = 0.01;    // a move must gain this fraction of the all-miss cost, in [0, 1)
  std::size_t max_moves = 64;  // per call
};

// The expected cost of `pool` at `budget`.
double expected_miss_cost(const PoolDemand& pool, std::uint64_t budget);

// The new budgets, in the order of `pools`. Throws std::invalid_argument for a zero step, a
// hysteresis outside [0, 1) or a pool without a curve.
std::vector<std::uint64_t> rebalance(const std::vector<PoolDemand>& pools,
                                     const RebalanceOptions& options);

// Budgets cut to sum to at most `total`: steps of at most options.step are taken, each from the
// pool whose cost rises least per byte, never below a pool's min_budget (so the sum may stay
// above `total` when the minimums do). Budgets already within `total` are returned unchanged.
// Same errors as rebalance().
std::vector<std::uint64_t> fit_budgets(const std::vector<PoolDemand>& pools, std::uint64_t total,
                                       const RebalanceOptions& options);

}  // namespace pagekeeper
