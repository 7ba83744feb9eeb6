#include "pagekeeper/budget_allocation.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace pagekeeper {

double expected_miss_cost(const PoolDemand& pool, std::uint64_t budget) {
  return pool.accesses * pool.miss_cost * pool.miss_ratio(budget);
}

namespace {

// The pools' current budgets, after checking the options and the curves.
std::vector<std::uint64_t> checked_budgets(const std::vector<PoolDemand>& pools,
                                           const RebalanceOptions& options) {
  if (options.step == 0) throw std::invalid_argument("rebalance: step must be positive");
  if (!(options.hysteresis >= 0.0 && options.hysteresis < 1.0)) {
    throw std::invalid_argument("rebalance: hysteresis must be in [0, 1), got " +
                                std::to_string(options.hysteresis));
  }
  std::vector<std::uint64_t> budgets;
  budgets.reserve(pools.size());
  for (const auto& p : pools) {
    if (!p.miss_ratio) throw std::invalid_argument("rebalance: pool '" + p.name + "' has no curve");
    budgets.push_back(p.budget);
  }
  return budgets;
}

}  // namespace

std::vector<std::uint64_t> fit_budgets(const std::vector<PoolDemand>& pools, std::uint64_t total,
                                       const RebalanceOptions& options) {
  std::vector<std::uint64_t> budgets = checked_budgets(pools, options);
  std::uint64_t sum = 0;
  for (const std::uint64_t b : budgets) sum += b;
  while (sum > total) {
    std::size_t donor = pools.size();
    std::uint64_t cut = 0;
    double best = 0.0;  // cost added per byte cut
    for (std::size_t i = 0; i < pools.size(); ++i) {
      if (budgets[i] <= pools[i].min_budget) continue;
      const std::uint64_t c = std::min({options.step, sum - total, budgets[i] - pools[i].min_budget});
      const double per_byte = (expected_miss_cost(pools[i], budgets[i] - c) -
                               expected_miss_cost(pools[i], budgets[i])) /
                              static_cast<double>(c);
      if (donor == pools.size() || per_byte < best) {
        donor = i;
        cut = c;
        best = per_byte;
      }
    }
    if (donor == pools.size()) break;  // every pool at its minimum
    budgets[donor] -= cut;
    sum -= cut;
  }
  return budgets;
}

std::vector<std::uint64_t> rebalance(const std::vector<PoolDemand>& pools,
                                     const RebalanceOptions& options) {
  std::vector<std::uint64_t> budgets = checked_budgets(pools, options);
  const std::uint64_t step = options.step;
  // The cost if every access missed: the scale the hysteresis is a fraction of.
  double scale = 0.0;
  for (const auto& p : pools) scale += p.accesses * p.miss_cost;
  for (std::size_t move = 0; move < options.max_moves; ++move) {
    std::vector<double> loss(pools.size());  // cost added by giving `step` away
    std::vector<double> gain(pools.size());  // cost saved by receiving `step`
    std::vector<bool> can_give(pools.size());
    for (std::size_t i = 0; i < pools.size(); ++i) {
      const double now = expected_miss_cost(pools[i], budgets[i]);
      gain[i] = now - expected_miss_cost(pools[i], budgets[i] + step);
      can_give[i] = budgets[i] >= pools[i].min_budget + step;
      if (can_give[i]) loss[i] = expected_miss_cost(pools[i], budgets[i] - step) - now;
    }
    std::size_t donor = pools.size();
    std::size_t receiver = pools.size();
    double best = 0.0;
    for (std::size_t i = 0; i < pools.size(); ++i) {
      if (!can_give[i]) continue;
      for (std::size_t j = 0; j < pools.size(); ++j) {
        if (j == i) continue;
        const double net = gain[j] - loss[i];
        if (donor == pools.size() || net > best) {
          donor = i;
          receiver = j;
          best = net;
        }
      }
    }
    if (donor == pools.size() || best <= options.hysteresis * scale) break;
    budgets[donor] -= step;
    budgets[receiver] += step;
  }
  return budgets;
}

}  // namespace pagekeeper
