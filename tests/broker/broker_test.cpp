#include <algorithm>
#include <stdexcept>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "broker/fake_tier.hpp"
#include "pagekeeper/broker.hpp"

namespace pagekeeper {
namespace {

using testing::FakeTier;

std::vector<std::string> names_of(const std::vector<PoolAction>& actions) {
  std::vector<std::string> names;
  for (const auto& a : actions) names.push_back(a.name);
  return names;
}

// A broker with default configuration whose alerts are collected in `alerts`.
class BrokerTest : public ::testing::Test {
 protected:
  BrokerTest() {
    broker.add_alert_sink([this](const PressureAlert& a) { alerts.push_back(a); });
  }
  // Creates a FakeTier and registers it.
  std::shared_ptr<FakeTier> add(std::string name, std::uint64_t capacity, std::uint64_t usage,
                                std::uint64_t entry_bytes = 1, std::uint64_t pinned_bytes = 0) {
    auto pool = FakeTier::make(std::move(name), capacity, usage, entry_bytes, pinned_bytes);
    broker.register_pool(pool);
    return pool;
  }
  PressureBroker broker;
  std::vector<PressureAlert> alerts;
};

TEST_F(BrokerTest, EmptyBrokerHasZeroPressureAndDoesNothing) {
  EXPECT_EQ(broker.global_pressure(), 0.0);
  const auto report = broker.relieve();
  EXPECT_FALSE(report.triggered);
  EXPECT_EQ(report.bytes_freed, 0u);
  EXPECT_FALSE(report.host.has_value());
}

TEST_F(BrokerTest, NormalAndWarningOnlyObserve) {
  auto a = add("a", 1000, 300);
  auto b = add("b", 1000, 500);
  EXPECT_DOUBLE_EQ(broker.global_pressure(), 0.5);
  auto report = broker.relieve();
  EXPECT_FALSE(report.triggered);
  EXPECT_EQ(report.global_tier_before, PressureTier::normal);
  EXPECT_DOUBLE_EQ(report.global_pressure_before, 0.5);

  b->set_usage(790);  // warning
  report = broker.relieve();
  EXPECT_FALSE(report.triggered);
  EXPECT_EQ(report.global_tier_before, PressureTier::warning);
  EXPECT_TRUE(a->requests().empty());
  EXPECT_TRUE(b->requests().empty());
  EXPECT_TRUE(alerts.empty());
  EXPECT_EQ(broker.snapshot().evictions_fired, 0u);
}

TEST_F(BrokerTest, HighRelievesOnlyTheWorstPoolDownToTheTarget) {
  auto kv = add("kv", 1000, 850);
  auto emb = add("embeddings", 1000, 700);

  const auto report = broker.relieve();
  EXPECT_TRUE(report.triggered);
  EXPECT_EQ(report.global_tier_before, PressureTier::high);
  EXPECT_DOUBLE_EQ(report.global_pressure_before, 0.85);
  ASSERT_EQ(names_of(report.pools_acted), std::vector<std::string>{"kv"});
  // Asked to fall to 0.60 of capacity: 850 - 600.
  EXPECT_EQ(kv->requests(), std::vector<std::uint64_t>{250});
  EXPECT_EQ(report.bytes_freed, 250u);
  EXPECT_DOUBLE_EQ(report.pools_acted[0].pressure_before, 0.85);
  EXPECT_DOUBLE_EQ(report.pools_acted[0].pressure_after, 0.60);
  EXPECT_EQ(report.pools_acted[0].bytes_requested, 250u);
  EXPECT_TRUE(emb->requests().empty());

  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].tier_name, "kv");
  EXPECT_EQ(alerts[0].tier, PressureTier::high);
  EXPECT_DOUBLE_EQ(alerts[0].pressure, 0.85);
  EXPECT_EQ(alerts[0].bytes_freed, 250u);
  EXPECT_TRUE(alerts[0].action_taken);
  EXPECT_EQ(alerts[0].cause, PressureAlert::Cause::pool_pressure);
  EXPECT_GT(alerts[0].at_ms, 1'600'000'000'000);  // Unix ms, not monotonic
}

TEST_F(BrokerTest, CriticalRelievesEveryPoolOverActAbove) {
  auto a = add("a", 100, 97);
  auto b = add("b", 100, 96);
  auto c = add("c", 100, 50);
  const auto report = broker.relieve();
  EXPECT_EQ(report.global_tier_before, PressureTier::critical);
  EXPECT_EQ(names_of(report.pools_acted), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(report.bytes_freed, 37u + 36u);
  EXPECT_TRUE(c->requests().empty());
  ASSERT_EQ(alerts.size(), 2u);
  for (const auto& alert : alerts) EXPECT_EQ(alert.tier, PressureTier::critical);
}

TEST(PressureBroker, CriticalAlsoRelievesPoolsBetweenActAboveAndHigh) {
  BrokerConfig config;
  config.act_above = 0.70;
  PressureBroker broker(config);
  auto hot = FakeTier::make("hot", 100, 99);
  auto warm = FakeTier::make("warm", 100, 75);
  auto cool = FakeTier::make("cool", 100, 65);
  for (const auto& p : {hot, warm, cool}) broker.register_pool(p);
  const auto report = broker.relieve();
  EXPECT_EQ(names_of(report.pools_acted), (std::vector<std::string>{"hot", "warm"}));
  EXPECT_EQ(warm->usage_bytes(), 60u);
  EXPECT_TRUE(cool->requests().empty());
}

TEST(PressureBroker, HighPassBelowActAboveDoesNothing) {
  BrokerConfig config;
  config.act_above = 0.90;
  PressureBroker broker(config);
  auto p = FakeTier::make("p", 100, 85);
  broker.register_pool(p);
  EXPECT_FALSE(broker.relieve().triggered);
  EXPECT_TRUE(p->requests().empty());
}

TEST_F(BrokerTest, ReRegisteringANameReplacesThePool) {
  auto first = add("kv", 1000, 850);
  auto second = add("kv", 1000, 850);
  EXPECT_EQ(broker.pool_names(), std::vector<std::string>{"kv"});
  const auto report = broker.relieve();
  EXPECT_EQ(report.bytes_freed, 250u);  // once, not twice
  EXPECT_TRUE(first->requests().empty());
  EXPECT_EQ(second->requests().size(), 1u);
}

TEST_F(BrokerTest, UnregisterRemovesThePool) {
  auto kv = add("kv", 1000, 990);
  add("other", 1000, 100);
  EXPECT_TRUE(broker.unregister_pool("kv"));
  EXPECT_FALSE(broker.unregister_pool("kv"));
  EXPECT_EQ(broker.pool_names(), std::vector<std::string>{"other"});
  EXPECT_DOUBLE_EQ(broker.global_pressure(), 0.1);
  EXPECT_FALSE(broker.relieve().triggered);
  EXPECT_TRUE(kv->requests().empty());
}

TEST_F(BrokerTest, NullPoolIsRefused) {
  EXPECT_THROW(broker.register_pool(nullptr), std::invalid_argument);
  EXPECT_THROW(broker.add_alert_sink(AlertSink{}), std::invalid_argument);
}

TEST_F(BrokerTest, ZeroCapacityPoolsAreNotManaged) {
  auto unmanaged = add("unmanaged", 0, 5000);
  auto hot = add("hot", 100, 99);
  EXPECT_DOUBLE_EQ(broker.global_pressure(), 0.99);
  const auto report = broker.relieve();
  EXPECT_EQ(names_of(report.pools_acted), std::vector<std::string>{"hot"});
  EXPECT_TRUE(unmanaged->requests().empty());
  ASSERT_EQ(alerts.size(), 1u);
  const auto snap = broker.snapshot();
  ASSERT_EQ(snap.pools.size(), 2u);
  EXPECT_EQ(snap.pools[1].name, "unmanaged");
  EXPECT_FALSE(snap.pools[1].managed);
  EXPECT_EQ(snap.pools[1].pressure, 0.0);
}

TEST_F(BrokerTest, StuckPoolAlertsButDoesNotTrigger) {
  auto stuck = add("stuck", 100, 99, /*entry_bytes=*/1, /*pinned_bytes=*/99);
  const auto report = broker.relieve();
  EXPECT_FALSE(report.triggered);
  EXPECT_TRUE(report.pools_acted.empty());
  EXPECT_EQ(names_of(report.pools_stuck), std::vector<std::string>{"stuck"});
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].tier, PressureTier::critical);
  EXPECT_EQ(alerts[0].bytes_freed, 0u);
  EXPECT_TRUE(alerts[0].action_taken);
  const auto snap = broker.snapshot();
  EXPECT_EQ(snap.evictions_fired, 0u);
  EXPECT_EQ(snap.pools[0].counters.stuck_count, 1u);
  EXPECT_EQ(snap.pools[0].counters.relief_count, 1u);
}

TEST_F(BrokerTest, CountsPassesAndPoolsSeparately) {
  auto a = add("a", 100, 97);
  auto b = add("b", 100, 96);
  broker.relieve();  // one pass, two pools
  a->set_usage(90);
  broker.relieve();  // high: one pool
  const auto snap = broker.snapshot();
  EXPECT_EQ(snap.evictions_fired, 2u);
  EXPECT_EQ(snap.pool_reliefs_total, 3u);
  EXPECT_EQ(snap.bytes_freed_total, 37u + 36u + 30u);
  for (const auto& p : snap.pools) {
    EXPECT_EQ(p.counters.relief_count, p.name == "a" ? 2u : 1u) << p.name;
  }
}

TEST_F(BrokerTest, EvictionOvershootIsReported) {
  auto coarse = add("coarse", 1000, 900, /*entry_bytes=*/200);
  const auto report = broker.relieve();
  ASSERT_EQ(report.pools_acted.size(), 1u);
  EXPECT_EQ(report.pools_acted[0].bytes_requested, 300u);
  EXPECT_EQ(report.pools_acted[0].bytes_freed, 400u);
  EXPECT_DOUBLE_EQ(report.pools_acted[0].pressure_after, 0.5);
}

class ThrowingTier final : public ResourcePool {
 public:
  std::string tier_name() const override { return "throws"; }
  std::uint64_t capacity_bytes() const override { return 100; }
  std::uint64_t usage_bytes() const override { return 99; }
  std::uint64_t evict_at_least(std::uint64_t) override {
    throw std::runtime_error("backend gone");
  }
  std::vector<EntrySnapshot> snapshot() const override { return {}; }
  PoolStats stats() const override { return {}; }
};

TEST_F(BrokerTest, AFailingPoolOrSinkDoesNotStopThePass) {
  int delivered = 0;
  broker.add_alert_sink([](const PressureAlert&) { throw std::runtime_error("sink down"); });
  broker.add_alert_sink([&](const PressureAlert&) { ++delivered; });
  broker.register_pool(std::make_shared<ThrowingTier>());
  auto ok = add("ok", 100, 98);
  ReliefReport report;
  ASSERT_NO_THROW(report = broker.relieve());
  EXPECT_EQ(names_of(report.pools_acted), std::vector<std::string>{"ok"});
  ASSERT_EQ(report.pools_stuck.size(), 1u);
  EXPECT_EQ(report.pools_stuck[0].error, "backend gone");
  EXPECT_EQ(delivered, 2);
}

TEST_F(BrokerTest, SnapshotSortsByPressureAndNamesTheTier) {
  add("low", 100, 10);
  add("high", 100, 90);
  add("mid", 100, 50);
  const auto snap = broker.snapshot();
  ASSERT_EQ(snap.pools.size(), 3u);
  EXPECT_EQ(snap.pools[0].name, "high");
  EXPECT_EQ(snap.pools[1].name, "mid");
  EXPECT_EQ(snap.pools[2].name, "low");
  EXPECT_DOUBLE_EQ(snap.global_pressure, 0.9);
  EXPECT_EQ(snap.global_tier, PressureTier::high);
  EXPECT_EQ(snap.pools[0].tier, PressureTier::high);
  EXPECT_EQ(snap.pools[2].tier, PressureTier::normal);
  EXPECT_EQ(snap.pools[0].stats.total_bytes, 90u);
  EXPECT_FALSE(snap.host_memory.has_value());
  EXPECT_FALSE(snap.running);
}

TEST_F(BrokerTest, SnapshotJsonHasTheBrokerStateShape) {
  add("kv", 100, 97);
  broker.relieve();
  const nlohmann::json j = broker.snapshot();
  for (const char* key : {"globalPressure", "globalTier", "pools", "evictionsFired",
                          "bytesFreedTotal", "poolReliefsTotal", "hostMemory", "hostShedding"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j.at("globalTier"), "warning");
  EXPECT_EQ(j.at("evictionsFired"), 1);
  EXPECT_EQ(j.at("bytesFreedTotal"), 37);
  EXPECT_TRUE(j.at("hostMemory").is_null());
  const auto& pool = j.at("pools").at(0);
  EXPECT_EQ(pool.at("name"), "kv");
  EXPECT_EQ(pool.at("tier"), "warning");
  EXPECT_EQ(pool.at("reliefCount"), 1);
  for (const char* key : {"name", "entryCount", "pinnedCount", "totalBytes", "maxBytes",
                          "pressure", "hitCount", "missCount", "evictionCount",
                          "inflightCount"}) {
    EXPECT_TRUE(pool.at("stats").contains(key)) << key;
  }
}

TEST_F(BrokerTest, ReliefReportJson) {
  add("kv", 1000, 850);
  const nlohmann::json j = broker.relieve();
  EXPECT_EQ(j.at("triggered"), true);
  EXPECT_EQ(j.at("globalTierBefore"), "high");
  EXPECT_EQ(j.at("bytesFreed"), 250);
  EXPECT_EQ(j.at("poolsActed").at(0).at("name"), "kv");
  EXPECT_EQ(j.at("poolsActed").at(0).at("bytesRequested"), 250);
  EXPECT_TRUE(j.at("host").is_null());
}

TEST(PressureAlertJson, RoundTripsInCamelCase) {
  const PressureAlert alert{"kv-cache", 0.97, PressureTier::critical, 8ull << 30, true,
                            1'767'225'600'000, PressureAlert::Cause::pool_pressure};
  const nlohmann::json j = alert;
  EXPECT_EQ(j.at("tierName"), "kv-cache");
  EXPECT_EQ(j.at("tier"), "critical");
  EXPECT_EQ(j.at("bytesFreed"), 8ull << 30);
  EXPECT_EQ(j.at("actionTaken"), true);
  EXPECT_EQ(j.at("atMs"), 1'767'225'600'000);
  EXPECT_EQ(j.at("cause"), "poolPressure");
  const auto back = j.get<PressureAlert>();
  EXPECT_EQ(back.tier_name, alert.tier_name);
  EXPECT_DOUBLE_EQ(back.pressure, alert.pressure);
  EXPECT_EQ(back.tier, alert.tier);
  EXPECT_EQ(back.bytes_freed, alert.bytes_freed);
  EXPECT_EQ(back.at_ms, alert.at_ms);
  EXPECT_EQ(back.cause, alert.cause);

  auto original_shape = j;
  original_shape.erase("cause");
  EXPECT_EQ(original_shape.get<PressureAlert>().cause, PressureAlert::Cause::pool_pressure);
  auto bad = j;
  bad["tier"] = "severe";
  EXPECT_THROW(bad.get<PressureAlert>(), nlohmann::json::exception);
}

TEST(BrokerConfig, RefusesTheActAboveDeadZoneAndOtherNonsense) {
  EXPECT_NO_THROW(BrokerConfig{}.validate());
  const auto refused = [](auto mutate) {
    BrokerConfig c;
    mutate(c);
    EXPECT_THROW(PressureBroker{c}, PressureConfigError);
  };
  refused([](BrokerConfig& c) { c.act_above = 0.5; });   // below warning
  refused([](BrokerConfig& c) { c.act_above = 0.99; });  // above critical
  refused([](BrokerConfig& c) { c.target_fraction = 0.8; });  // not below act_above
  refused([](BrokerConfig& c) { c.target_fraction = 0.0; });
  refused([](BrokerConfig& c) { c.thresholds = {0.8, 0.6, 0.95}; });
  refused([](BrokerConfig& c) { c.tick_interval = std::chrono::milliseconds(0); });
  refused([](BrokerConfig& c) { c.host_shedding.max_pool_fraction_per_pass = 0.0; });
  refused([](BrokerConfig& c) { c.host_shedding.max_total_fraction = 1.5; });
  try {
    BrokerConfig c;
    c.act_above = 0.5;
    c.validate();
    FAIL();
  } catch (const PressureConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("act_above"), std::string::npos) << e.what();
  }
  BrokerConfig lowest;
  lowest.act_above = 0.60;
  lowest.target_fraction = 0.5;
  EXPECT_NO_THROW(PressureBroker{lowest});
}

}  // namespace
}  // namespace pagekeeper
