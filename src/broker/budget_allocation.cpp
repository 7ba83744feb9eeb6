#include "pagekeeper/budget_allocation.hpp"

#include <algorithm>
#include <map>
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
  // Curves are evaluated at the same budgets again and again across moves: remember them.
  std::vector<std::map<std::uint64_t, double>> costs(pools.size());
  const auto cost = [&](std::size_t i, std::uint64_t budget) {
    const auto [it, added] = costs[i].try_emplace(budget, 0.0);
    if (added) it->second = expected_miss_cost(pools[i], budget);
    return it->second;
  };
  std::size_t moves = 0;
  while (moves < options.max_moves) {
    // Up to `horizon` steps at once: a curve with plateaus (a few large entries, such as
    // adapters or models bigger than a step) gains nothing from one step and a lot from
    // several. Pairs and lengths are compared by their net saving per step, the lookahead of
    // utility-based cache partitioning; on convex curves one step is always the best.
    std::size_t widest = 0;  // the longest move any receiver allows
    for (const auto& p : pools) {
      widest = std::max(widest, p.lookahead == 0 ? options.max_moves : p.lookahead);
    }
    const std::size_t horizon = std::min(options.max_moves - moves, widest);
    std::size_t donor = pools.size();
    std::size_t receiver = pools.size();
    std::size_t length = 0;
    double best = 0.0;  // net saving per step
    for (std::size_t n = 1; n <= horizon; ++n) {
      const std::uint64_t bytes = step * n;
      for (std::size_t i = 0; i < pools.size(); ++i) {
        if (budgets[i] < pools[i].min_budget + bytes) continue;
        const double loss = cost(i, budgets[i] - bytes) - cost(i, budgets[i]);
        for (std::size_t j = 0; j < pools.size(); ++j) {
          if (j == i || (pools[j].lookahead != 0 && n > pools[j].lookahead)) continue;
          const double gain = cost(j, budgets[j]) - cost(j, budgets[j] + bytes);
          const double per_step = (gain - loss) / static_cast<double>(n);
          if (donor == pools.size() || per_step > best) {
            donor = i;
            receiver = j;
            length = n;
            best = per_step;
          }
        }
      }
    }
    if (donor == pools.size() || best <= options.hysteresis * scale) break;
    budgets[donor] -= step * length;
    budgets[receiver] += step * length;
    moves += length;
  }
  return budgets;
}

}  // namespace pagekeeper
