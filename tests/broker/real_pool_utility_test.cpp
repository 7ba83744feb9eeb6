// Real pools as PoolUtility: PagedResourcePools that sample their miss-ratio curves and time
// their loaders are divided a global budget by the broker, and under host pressure give bytes
// in the order their curves value them.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "broker/vector_pool.hpp"
#include "pagekeeper/broker.hpp"
#include "pagekeeper/host_memory.hpp"
#include "pagekeeper/pool.hpp"
#include "support/critical_host.hpp"

namespace pagekeeper {
namespace {

using Vector = std::vector<float>;
using Pool = testing::VectorPool;

// 100-byte entries; the curve sampled from every key (fixed-size SHARDS).
std::shared_ptr<Pool> make_pool(std::string name, std::uint64_t max_bytes, bool curve = true) {
  auto config = testing::vector_pool_config(std::move(name), max_bytes);
  config.curve_sampling_rate = curve ? 1.0 : 0.0;
  return std::make_shared<Pool>(config);
}

// Every load takes at least 20 microseconds (it waits on the clock), so both pools' measured
// miss costs are alike whatever the machine's load.
Vector load_vector() {
  const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(20);
  while (std::chrono::steady_clock::now() < until) {
  }
  return Vector(25, 1.0f);
}

// 600 uniform accesses over 150 keys (15,000 bytes): the miss ratio falls steadily with the
// budget until the whole set fits.
void reuse(Pool& pool, std::mt19937& random) {
  std::uniform_int_distribution<int> key(0, 149);
  for (int i = 0; i < 600; ++i) pool.load_or_share("reused-" + std::to_string(key(random)), load_vector);
}

// 150 keys never seen before: every access misses whatever the budget.
void scan(Pool& pool, int& next) {
  for (int i = 0; i < 150; ++i) pool.load_or_share("scanned-" + std::to_string(next++), load_vector);
}

TEST(RealPoolUtility, APoolWithoutACurveIsManagedAsBefore) {
  auto plain = make_pool("plain", 10'000, /*curve=*/false);
  EXPECT_FALSE(plain->curve_known());
  BrokerConfig config;
  config.memory_budget_bytes = 20'000;
  PressureBroker broker(config);
  broker.register_pool(plain);
  broker.relieve();
  EXPECT_FALSE(broker.snapshot().pools.at(0).utility.has_value());
  EXPECT_EQ(plain->capacity_bytes(), 10'000u);
}

TEST(RealPoolUtility, AGlobalBudgetMovesTowardTheReusedWorkingSetAndSettles) {
  auto reused = make_pool("reused", 10'000);
  auto scanned = make_pool("scanned", 10'000);
  BrokerConfig config;
  config.memory_budget_bytes = 20'000;
  PressureBroker broker(config);
  broker.register_pool(reused);
  broker.register_pool(scanned);
  std::mt19937 random(42);
  int next = 0;
  std::vector<std::uint64_t> budgets;
  for (int pass = 0; pass < 16; ++pass) {
    reuse(*reused, random);
    scan(*scanned, next);
    broker.relieve();
    budgets.push_back(reused->capacity_bytes());
    EXPECT_EQ(reused->capacity_bytes() + scanned->capacity_bytes(), 20'000u) << pass;
  }
  EXPECT_GE(reused->miss_cost_seconds(), 20e-6);  // 20 us per 100-byte load at least
  EXPECT_GE(scanned->miss_cost_seconds(), 20e-6);
  // Bytes went to the pool they help, up to about its working set.
  EXPECT_GE(reused->capacity_bytes(), 13'500u);
  EXPECT_LE(reused->capacity_bytes(), 17'000u);
  // Budgets only ever grew toward it (no back and forth), and the last passes moved nothing.
  for (std::size_t i = 1; i < budgets.size(); ++i) EXPECT_GE(budgets[i], budgets[i - 1]) << i;
  const auto settled = reused->capacity_bytes();
  for (int pass = 0; pass < 4; ++pass) {
    reuse(*reused, random);
    scan(*scanned, next);
    broker.relieve();
  }
  EXPECT_LE(std::max(reused->capacity_bytes(), settled) - std::min(reused->capacity_bytes(), settled),
            20'000u / 64);
  // The budget history is the broker's record of the moves.
  const auto snap = broker.snapshot();
  for (const auto& p : snap.pools) {
    ASSERT_TRUE(p.utility.has_value()) << p.name;
    EXPECT_FALSE(p.utility->budget_history.empty()) << p.name;
  }
}

TEST(RealPoolUtility, ABudgetIsNeverCutBelowWhatThePoolHasPinned) {
  // Models in use: 40 pinned entries (4,000 bytes) that nobody looks up again, so the curve
  // says their bytes are worth nothing; beside them a re-used set that wants 15,000 bytes,
  // more than the 16,000-byte budget leaves it.
  auto pinned = make_pool("pinned", 8'000);
  auto reused = make_pool("reused", 8'000);
  std::vector<Pool::PinHandle> pins;
  for (int i = 0; i < 40; ++i) {
    const std::string key = "in-use-" + std::to_string(i);
    pinned->load_or_share(key, load_vector);
    pins.push_back(pinned->pin(key));
    ASSERT_TRUE(pins.back());
  }
  BrokerConfig config;
  config.memory_budget_bytes = 16'000;
  PressureBroker broker(config);
  broker.register_pool(pinned);
  broker.register_pool(reused);
  std::mt19937 random(3);
  for (int pass = 0; pass < 12; ++pass) {
    reuse(*reused, random);
    const auto report = broker.relieve();
    EXPECT_TRUE(report.pools_acted.empty() && report.pools_stuck.empty()) << pass;
    EXPECT_LE(pinned->usage_bytes(), pinned->capacity_bytes()) << pass;
  }
  // The re-used set got every byte the pins leave (in steps of 250 bytes).
  EXPECT_EQ(pinned->capacity_bytes(), 4'000u);
  EXPECT_EQ(reused->capacity_bytes(), 12'000u);
  EXPECT_EQ(pinned->usage_bytes(), 4'000u);
}

TEST(RealPoolUtility, CriticalHostMemoryTakesBytesFromThePoolOfLeastMarginalValueFirst) {
  auto reused = make_pool("reused", 10'000);
  auto scanned = make_pool("scanned", 10'000);
  auto host = std::make_shared<SimulatedHostMemory>(1'000'000, 500'000);
  // A pool may give all it has in a pass, the episode a quarter of what the pools hold: the
  // order alone decides who gives.
  const BrokerConfig config = test_support::shedding_config(1.0, 0.25);
  PressureBroker broker(config, host);
  broker.register_pool(reused);
  broker.register_pool(scanned);
  std::mt19937 random(7);
  int next = 0;
  reuse(*reused, random);
  scan(*scanned, next);
  broker.relieve();  // counts the accesses; the host is fine
  reuse(*reused, random);
  scan(*scanned, next);

  host->set_used(990'000);  // critical, and far more over than both pools hold
  const auto report = broker.relieve();
  ASSERT_TRUE(report.shed.has_value());
  EXPECT_EQ(report.shed->host_tier, PressureTier::critical);
  // The episode may take 5,000 bytes: all from the scan, whose bytes save no miss.
  ASSERT_EQ(report.shed->pools_shed.size(), 1u);
  EXPECT_EQ(report.shed->pools_shed[0].name, "scanned");
  EXPECT_GE(report.shed->bytes_shed, 5'000u);
  EXPECT_EQ(reused->usage_bytes(), 10'000u);
  EXPECT_LE(scanned->usage_bytes(), 5'000u);
}

}  // namespace
}  // namespace pagekeeper
