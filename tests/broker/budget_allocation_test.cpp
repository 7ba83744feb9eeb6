#include "pagekeeper/budget_allocation.hpp"

#include <algorithm>
#include <stdexcept>

#include <gtest/gtest.h>

namespace pagekeeper {
namespace {

// A working set of `fits` bytes: every access misses below it, none at or above it.
std::function<double(std::uint64_t)> cliff(std::uint64_t fits) {
  return [fits](std::uint64_t b) { return b >= fits ? 0.0 : 1.0 - static_cast<double>(b) / fits; };
}
// A scan: misses whatever the budget.
std::function<double(std::uint64_t)> scan() {
  return [](std::uint64_t) { return 1.0; };
}

TEST(Rebalance, BytesMoveFromTheScanToThePoolTheyHelp) {
  std::vector<PoolDemand> pools = {
      {"recency", 500, 0, 1000, 1.0, cliff(800)},
      {"scan", 500, 100, 1000, 1.0, scan()},
  };
  const auto budgets = rebalance(pools, {.step = 50, .hysteresis = 0.0, .max_moves = 100});
  EXPECT_EQ(budgets, (std::vector<std::uint64_t>{800, 200}));  // the recency set fits, no more
}

TEST(Rebalance, NeverBelowTheMinimumAndTheSumHolds) {
  std::vector<PoolDemand> pools = {
      {"a", 500, 0, 1000, 1.0, cliff(2000)},
      {"b", 500, 300, 1000, 1.0, scan()},
  };
  const auto budgets = rebalance(pools, {.step = 100, .hysteresis = 0.0, .max_moves = 100});
  EXPECT_EQ(budgets, (std::vector<std::uint64_t>{700, 300}));
}

TEST(Rebalance, MissCostWeighsTheChoice) {
  // Two identical curves; misses of `dear` cost ten times as much.
  std::vector<PoolDemand> pools = {
      {"cheap", 500, 0, 1000, 1.0, cliff(1000)},
      {"dear", 500, 0, 1000, 10.0, cliff(1000)},
  };
  const auto budgets = rebalance(pools, {.step = 100, .hysteresis = 0.0, .max_moves = 100});
  EXPECT_EQ(budgets, (std::vector<std::uint64_t>{0, 1000}));
}

TEST(Rebalance, HysteresisKeepsBudgetsWhenTheGainIsSmall) {
  std::vector<PoolDemand> pools = {
      {"a", 500, 0, 1000, 1.0, cliff(520)},  // 20 bytes short: 4% of its accesses miss
      {"b", 500, 0, 1000, 1.0, cliff(480)},
  };
  const auto stay = rebalance(pools, {.step = 20, .hysteresis = 0.10, .max_moves = 100});
  EXPECT_EQ(stay, (std::vector<std::uint64_t>{500, 500}));
  const auto move = rebalance(pools, {.step = 20, .hysteresis = 0.0, .max_moves = 100});
  EXPECT_EQ(move, (std::vector<std::uint64_t>{520, 480}));
}

// Entries of `entry` bytes each, `count` of them re-used uniformly: the miss ratio falls only
// where another whole entry fits, a plateau in between (adapters, models).
std::function<double(std::uint64_t)> whole_entries(std::uint64_t entry, std::uint64_t count) {
  return [entry, count](std::uint64_t b) {
    return 1.0 - static_cast<double>(std::min(b / entry, count)) / static_cast<double>(count);
  };
}

TEST(Rebalance, StepsSmallerThanAnEntryCrossAPlateau) {
  // Room for 2 of 4 entries of 1,000 bytes and a step of 300: one step gains nothing, four
  // gain a whole entry. One step at a time would stay at 2,000 for ever.
  std::vector<PoolDemand> pools = {
      {"entries", 2000, 0, 1000, 1.0, whole_entries(1000, 4)},
      {"scan", 4000, 0, 1000, 1.0, scan()},
  };
  const auto budgets = rebalance(pools, {.step = 300, .hysteresis = 0.01, .max_moves = 8});
  EXPECT_EQ(budgets, (std::vector<std::uint64_t>{4100, 1900}));  // 7 steps: all 4 fit
  // With fewer moves allowed than a whole entry needs, nothing moves; nor when the pool's
  // lookahead is shorter than its plateaus.
  const auto short_moves = rebalance(pools, {.step = 300, .hysteresis = 0.01, .max_moves = 3});
  EXPECT_EQ(short_moves, (std::vector<std::uint64_t>{2000, 4000}));
  pools[0].lookahead = 2;
  EXPECT_EQ(rebalance(pools, {.step = 300, .hysteresis = 0.01, .max_moves = 8}),
            (std::vector<std::uint64_t>{2000, 4000}));
  pools[0].lookahead = 4;  // an entry over the step, rounded up
  EXPECT_EQ(rebalance(pools, {.step = 300, .hysteresis = 0.01, .max_moves = 8}),
            (std::vector<std::uint64_t>{4100, 1900}));
}

TEST(Rebalance, RefusesNonsense) {
  std::vector<PoolDemand> pools = {{"a", 1, 0, 1, 1.0, scan()}};
  EXPECT_THROW(rebalance(pools, {.step = 0}), std::invalid_argument);
  EXPECT_THROW(rebalance(pools, {.step = 1, .hysteresis = 1.0}), std::invalid_argument);
  pools[0].miss_ratio = nullptr;
  EXPECT_THROW(rebalance(pools, {.step = 1}), std::invalid_argument);
}

}  // namespace
}  // namespace pagekeeper
