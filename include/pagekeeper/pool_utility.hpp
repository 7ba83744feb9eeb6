// pagekeeper/pool_utility.hpp
//
// PoolUtility: what a pool's bytes are worth, for a PressureBroker that divides a global budget
// by marginal utility and sheds host memory first where bytes are worth least. A ResourcePool
// that also derives from PoolUtility is found as such when it is registered (dynamic_cast);
// other pools are managed as before.
//
// Units: a miss costs miss_cost_seconds() (the loader's time per byte times the bytes a miss
// loads, so an embedding miss and an adapter load compare in one unit); the expected cost of a
// budget b over a period is accesses in the period * miss_cost_seconds() * miss_ratio(b).
//
// Thread safety: every method must be safe to call from any thread, concurrently with the
// pool's own operations.

#pragma once

#include <cstdint>

namespace pagekeeper {

// One point of a miss-ratio curve: the estimated fraction of accesses that would miss with a
// budget of `bytes`.
struct CurvePoint {
  std::uint64_t bytes = 0;
  double miss_ratio = 0.0;
};

class PoolUtility {
 public:
  virtual ~PoolUtility() = default;
  // Estimated fraction of accesses that would miss with a budget of `bytes`, in [0, 1]
  // (for example from SHARDS sampling, detail/miss_ratio_sampler.hpp).
  virtual double miss_ratio(std::uint64_t bytes) const = 0;
  // Whether miss_ratio() says anything: false for a pool that estimates no curve (then the
  // broker manages it as a pool without utility). Fixed for the object's lifetime.
  virtual bool curve_known() const { return true; }
  // Accesses served so far; never decreases (the broker takes differences between passes).
  virtual std::uint64_t accesses() const = 0;
  // The cost of one miss, in seconds.
  virtual double miss_cost_seconds() const = 0;
  // Sets the pool's budget; a pool over the new budget evicts down to it.
  virtual void set_budget(std::uint64_t bytes) = 0;
};

}  // namespace pagekeeper
