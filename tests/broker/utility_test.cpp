// The broker with pools that say what their bytes are worth (PoolUtility): a global budget is
// divided by marginal miss cost, and host shedding takes first from the pool whose curve
// values its bytes least.

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "broker/fake_tier.hpp"
#include "pagekeeper/broker.hpp"
#include "pagekeeper/pool_utility.hpp"

namespace pagekeeper {
namespace {

// A pool of `usage` bytes (evicted in bytes) whose miss ratio follows `curve`, serving
// `accesses_per_pass` accesses between passes (the test calls served()).
class ValuedTier final : public testing::FakeTier, public PoolUtility {
 public:
  ValuedTier(std::string name, std::uint64_t capacity, std::uint64_t usage,
             std::function<double(std::uint64_t)> curve, double miss_cost = 1.0)
      : FakeTier(std::move(name), capacity, usage), curve_(std::move(curve)), miss_cost_(miss_cost) {}

  double miss_ratio(std::uint64_t bytes) const override { return curve_(bytes); }
  std::uint64_t accesses() const override { return accesses_.load(); }
  double miss_cost_seconds() const override { return miss_cost_; }
  void set_budget(std::uint64_t bytes) override { set_capacity(bytes); }

  void served(std::uint64_t n) { accesses_.fetch_add(n); }

 private:
  std::atomic<std::uint64_t> accesses_{0};
  const std::function<double(std::uint64_t)> curve_;
  const double miss_cost_;
};

// A working set of `fits` bytes: the miss ratio falls linearly to 0 at `fits`.
std::function<double(std::uint64_t)> working_set(std::uint64_t fits) {
  return [fits](std::uint64_t b) {
    return b >= fits ? 0.0 : 1.0 - static_cast<double>(b) / static_cast<double>(fits);
  };
}
// A scan: every access misses whatever the budget.
std::function<double(std::uint64_t)> scan() {
  return [](std::uint64_t) { return 1.0; };
}

// Two pools registered with a broker that divides a global budget of `budget` bytes (or,
// with `host`, sheds for the host's memory); pass() serves both then runs one broker pass.
struct TwoPools {
  TwoPools(std::shared_ptr<ValuedTier> first, std::shared_ptr<ValuedTier> second, std::uint64_t budget,
           std::shared_ptr<const HostMemorySource> host = nullptr)
      : broker(config_with(budget), std::move(host)), a(std::move(first)), b(std::move(second)) {
    broker.register_pool(a);
    broker.register_pool(b);
  }
  ReliefReport pass(std::uint64_t accesses = 1000) {
    a->served(accesses);
    b->served(accesses);
    return broker.relieve();
  }
  static BrokerConfig config_with(std::uint64_t budget) {
    BrokerConfig config;
    config.memory_budget_bytes = budget;
    return config;
  }

  PressureBroker broker;
  const std::shared_ptr<ValuedTier> a;
  const std::shared_ptr<ValuedTier> b;
};

TEST(BrokerUtility, HostPressureTakesFirstFromThePoolWhoseBytesAreWorthLeast) {
  auto host = std::make_shared<SimulatedHostMemory>(1'000'000, 500'000);
  auto hot = std::make_shared<ValuedTier>("hot", 100'000, 100'000, working_set(100'000));
  auto scanning = std::make_shared<ValuedTier>("scanning", 100'000, 100'000, scan());
  TwoPools pools(hot, scanning, 0, host);
  PressureBroker& broker = pools.broker;
  pools.pass();  // counts the accesses; nothing to shed

  host->set_used(803'000);  // 3,000 bytes over high: less than one pool's 5% bound
  const auto report = broker.relieve();
  ASSERT_TRUE(report.shed.has_value());
  EXPECT_EQ(report.shed->bytes_wanted, 3000u);
  EXPECT_EQ(scanning->requests(), std::vector<std::uint64_t>{3000});
  EXPECT_TRUE(hot->requests().empty());  // in proportion, each would have given 1,500

  host->set_used(990'000);  // far over: both give up to their bound, the scan first
  const auto more = broker.relieve();
  ASSERT_EQ(more.shed->pools_shed.size(), 2u);
  EXPECT_EQ(more.shed->pools_shed[0].name, "scanning");
  EXPECT_EQ(more.shed->pools_shed[1].name, "hot");
}

TEST(BrokerUtility, AGlobalBudgetMovesTowardTheLowerMissCost) {
  auto hot = std::make_shared<ValuedTier>("hot", 100'000, 100'000, working_set(150'000));
  auto scanning = std::make_shared<ValuedTier>("scanning", 100'000, 100'000, scan());
  TwoPools pools(hot, scanning, 200'000);
  for (int pass = 0; pass < 20; ++pass) pools.pass();
  // The hot pool's working set fits; the scan keeps the rest; the sum is the global budget.
  EXPECT_GE(hot->capacity_bytes(), 150'000u);
  EXPECT_LT(hot->capacity_bytes(), 150'000u + 200'000u / 64);
  EXPECT_EQ(hot->capacity_bytes() + scanning->capacity_bytes(), 200'000u);
  const auto snap = pools.broker.snapshot();
  const auto it = std::find_if(snap.pools.begin(), snap.pools.end(),
                               [](const PoolPressure& p) { return p.name == "hot"; });
  ASSERT_NE(it, snap.pools.end());
  ASSERT_TRUE(it->utility.has_value());
  EXPECT_FALSE(it->utility->budget_history.empty());
  EXPECT_EQ(it->utility->budget_history.front().from_bytes, 100'000u);
  EXPECT_EQ(it->utility->budget_history.back().to_bytes, hot->capacity_bytes());
  EXPECT_EQ(it->utility->accesses_last_pass, 1000u);
  ASSERT_EQ(it->utility->curve.size(), 6u);
  const nlohmann::json j = snap;
  const auto& pool = j.at("pools").at(0).at("utility").is_null() ? j.at("pools").at(1)
                                                                  : j.at("pools").at(0);
  EXPECT_TRUE(pool.at("utility").contains("budgetHistory"));
  EXPECT_TRUE(pool.at("utility").at("curve").at(3).contains("missRatio"));

  // Settled: further passes move nothing.
  const auto settled = hot->capacity_bytes();
  EXPECT_TRUE(pools.pass().budget_changes.empty());
  EXPECT_EQ(hot->capacity_bytes(), settled);
}

TEST(BrokerUtility, BudgetsOverTheGlobalBudgetAreCutWhereBytesAreWorthLeast) {
  auto hot = std::make_shared<ValuedTier>("hot", 150'000, 150'000, working_set(150'000));
  auto scanning = std::make_shared<ValuedTier>("scanning", 150'000, 150'000, scan());
  TwoPools pools(hot, scanning, 200'000);
  const auto report = pools.pass();
  EXPECT_EQ(hot->capacity_bytes(), 150'000u);
  EXPECT_EQ(scanning->capacity_bytes(), 50'000u);
  ASSERT_EQ(report.budget_changes.size(), 1u);
  EXPECT_EQ(report.budget_changes[0].first, "scanning");
}

TEST(BrokerUtility, EqualValueDoesNotOscillate) {
  TwoPools pools(std::make_shared<ValuedTier>("a", 100'000, 100'000, working_set(300'000)),
                 std::make_shared<ValuedTier>("b", 100'000, 100'000, working_set(300'000)), 200'000);
  for (int pass = 0; pass < 10; ++pass) EXPECT_TRUE(pools.pass().budget_changes.empty()) << pass;
}

}  // namespace
}  // namespace pagekeeper
