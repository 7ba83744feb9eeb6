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
  EXPECT_FALSE(report.shed.has_value());
}

// A byte-budgeted pool evicts for itself: sitting at (or near) its budget is not pressure.
TEST_F(BrokerTest, APoolAtItsBudgetIsNormal) {
  auto a = add("a", 1000, 300);
  auto b = add("b", 1000, 790);
  auto full = add("full", 1000, 1000);
  auto pinned_full = add("pinned-full", 1000, 1000, 1, 1000);
  EXPECT_EQ(broker.global_pressure(), 0.0);
  for (int pass = 0; pass < 3; ++pass) {
    const auto report = broker.relieve();
    EXPECT_FALSE(report.triggered);
    EXPECT_EQ(report.global_tier_before, PressureTier::normal);
    EXPECT_EQ(report.global_pressure_before, 0.0);
  }
  for (const auto& p : {a, b, full, pinned_full}) EXPECT_TRUE(p->requests().empty());
  EXPECT_TRUE(alerts.empty());
  const auto snap = broker.snapshot();
  EXPECT_EQ(snap.global_tier, PressureTier::normal);
  EXPECT_EQ(snap.binding, "none");
  EXPECT_EQ(snap.evictions_fired, 0u);
  for (const auto& p : snap.pools) {
    EXPECT_EQ(p.tier, PressureTier::normal) << p.name;
    EXPECT_EQ(p.binding, "none") << p.name;
  }
  // The fill is still visible in the pool's stats.
  const auto it = std::find_if(snap.pools.begin(), snap.pools.end(),
                               [](const PoolPressure& p) { return p.name == "full"; });
  ASSERT_NE(it, snap.pools.end());
  EXPECT_DOUBLE_EQ(it->stats.pressure, 1.0);
}

TEST(PressureBroker, HighRelievesOnlyTheWorstPoolPastItsBudgetDownToTheTarget) {
  BrokerConfig config;
  config.thresholds = {0.60, 0.80, 1.50};  // past the budget by less than half: high
  PressureBroker broker(config);
  std::vector<PressureAlert> alerts;
  broker.add_alert_sink([&](const PressureAlert& a) { alerts.push_back(a); });
  auto kv = FakeTier::make("kv", 1000, 1100);
  auto emb = FakeTier::make("embeddings", 1000, 1050);
  broker.register_pool(kv);
  broker.register_pool(emb);

  const auto report = broker.relieve();
  EXPECT_TRUE(report.triggered);
  EXPECT_EQ(report.global_tier_before, PressureTier::high);
  EXPECT_DOUBLE_EQ(report.global_pressure_before, 1.1);
  ASSERT_EQ(names_of(report.pools_acted), std::vector<std::string>{"kv"});
  // Asked to fall to 0.60 of capacity: 1100 - 600.
  EXPECT_EQ(kv->requests(), std::vector<std::uint64_t>{500});
  EXPECT_EQ(report.bytes_freed, 500u);
  EXPECT_DOUBLE_EQ(report.pools_acted[0].pressure_before, 1.1);
  EXPECT_DOUBLE_EQ(report.pools_acted[0].pressure_after, 0.60);
  EXPECT_EQ(report.pools_acted[0].bytes_requested, 500u);
  EXPECT_TRUE(emb->requests().empty());

  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].tier_name, "kv");
  EXPECT_EQ(alerts[0].tier, PressureTier::high);
  EXPECT_DOUBLE_EQ(alerts[0].pressure, 1.1);
  EXPECT_EQ(alerts[0].bytes_freed, 500u);
  EXPECT_TRUE(alerts[0].action_taken);
  EXPECT_EQ(alerts[0].cause, PressureAlert::Cause::pool_pressure);
  EXPECT_EQ(alerts[0].occurrences, 1u);
  EXPECT_GT(alerts[0].at_ms, 1'600'000'000'000);  // Unix ms, not monotonic
  EXPECT_NE(alerts[0].message.find("pool 'kv' is past its budget"), std::string::npos)
      << alerts[0].message;
  EXPECT_NE(alerts[0].message.find("freed 500 B"), std::string::npos) << alerts[0].message;
}

TEST_F(BrokerTest, CriticalRelievesEveryPoolPastItsBudgetAndNoOther) {
  auto a = add("a", 100, 197);
  auto b = add("b", 100, 196);
  auto full = add("full", 100, 100);
  auto c = add("c", 100, 50);
  const auto report = broker.relieve();
  EXPECT_EQ(report.global_tier_before, PressureTier::critical);
  EXPECT_EQ(names_of(report.pools_acted), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(report.bytes_freed, 137u + 136u);
  EXPECT_TRUE(full->requests().empty());
  EXPECT_TRUE(c->requests().empty());
  ASSERT_EQ(alerts.size(), 2u);
  for (const auto& alert : alerts) EXPECT_EQ(alert.tier, PressureTier::critical);
}

TEST(PressureBroker, HighPassBelowActAboveDoesNothing) {
  BrokerConfig config;
  config.thresholds = {0.60, 0.80, 1.50};
  config.act_above = 1.20;
  PressureBroker broker(config);
  auto p = FakeTier::make("p", 100, 110);
  broker.register_pool(p);
  EXPECT_FALSE(broker.relieve().triggered);
  EXPECT_TRUE(p->requests().empty());
}

TEST_F(BrokerTest, ReRegisteringANameReplacesThePool) {
  auto first = add("kv", 1000, 1100);
  auto second = add("kv", 1000, 1100);
  EXPECT_EQ(broker.pool_names(), std::vector<std::string>{"kv"});
  const auto report = broker.relieve();
  EXPECT_EQ(report.bytes_freed, 500u);  // once, not twice
  EXPECT_TRUE(first->requests().empty());
  EXPECT_EQ(second->requests().size(), 1u);
}

TEST_F(BrokerTest, UnregisterRemovesThePool) {
  auto kv = add("kv", 1000, 1990);
  add("other", 1000, 100);
  EXPECT_DOUBLE_EQ(broker.global_pressure(), 1.99);
  EXPECT_TRUE(broker.unregister_pool("kv"));
  EXPECT_FALSE(broker.unregister_pool("kv"));
  EXPECT_EQ(broker.pool_names(), std::vector<std::string>{"other"});
  EXPECT_DOUBLE_EQ(broker.global_pressure(), 0.0);
  EXPECT_FALSE(broker.relieve().triggered);
  EXPECT_TRUE(kv->requests().empty());
}

TEST_F(BrokerTest, NullPoolIsRefused) {
  EXPECT_THROW(broker.register_pool(nullptr), std::invalid_argument);
  EXPECT_THROW(broker.add_alert_sink(AlertSink{}), std::invalid_argument);
  EXPECT_THROW(broker.add_action_listener(ActionListener{}), std::invalid_argument);
}

TEST_F(BrokerTest, ZeroCapacityPoolsAreNotManaged) {
  auto unmanaged = add("unmanaged", 0, 5000);
  auto hot = add("hot", 100, 199);
  EXPECT_DOUBLE_EQ(broker.global_pressure(), 1.99);
  const auto report = broker.relieve();
  EXPECT_EQ(names_of(report.pools_acted), std::vector<std::string>{"hot"});
  EXPECT_TRUE(unmanaged->requests().empty());
  ASSERT_EQ(alerts.size(), 1u);
  const auto snap = broker.snapshot();
  ASSERT_EQ(snap.pools.size(), 2u);
  EXPECT_FALSE(snap.pools[0].managed && snap.pools[1].managed);
  for (const auto& p : snap.pools) {
    if (p.name == "unmanaged") {
      EXPECT_FALSE(p.managed);
      EXPECT_EQ(p.pressure, 0.0);
    }
  }
}

TEST_F(BrokerTest, StuckPoolAlertsButDoesNotTrigger) {
  auto stuck = add("stuck", 100, 150, /*entry_bytes=*/1, /*pinned_bytes=*/150);
  const auto report = broker.relieve();
  EXPECT_FALSE(report.triggered);
  EXPECT_TRUE(report.pools_acted.empty());
  EXPECT_EQ(names_of(report.pools_stuck), std::vector<std::string>{"stuck"});
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].tier, PressureTier::critical);
  EXPECT_EQ(alerts[0].bytes_freed, 0u);
  EXPECT_TRUE(alerts[0].action_taken);
  EXPECT_NE(alerts[0].message.find("freed nothing"), std::string::npos) << alerts[0].message;
  const auto snap = broker.snapshot();
  EXPECT_EQ(snap.evictions_fired, 0u);
  EXPECT_EQ(snap.pools[0].counters.stuck_count, 1u);
  EXPECT_EQ(snap.pools[0].counters.relief_count, 1u);
}

// The original alerted on every tick while a pool stayed hot (1,603 alerts at a 200 ms tick).
TEST_F(BrokerTest, AnUnchangedConditionAlertsWithExponentialBackoffAndClearsOnce) {
  std::vector<std::uint64_t> acted_passes;
  broker.add_action_listener([&](const PoolAction& a) { acted_passes.push_back(a.bytes_freed); });
  auto stuck = add("stuck", 100, 150, /*entry_bytes=*/1, /*pinned_bytes=*/150);
  for (int pass = 0; pass < 20; ++pass) broker.relieve();
  // Delivered when the condition had held for 1, 2, 4, 8 and 16 passes.
  ASSERT_EQ(alerts.size(), 5u);
  const std::vector<std::uint64_t> expected = {1, 2, 4, 8, 16};
  for (std::size_t i = 0; i < alerts.size(); ++i) {
    EXPECT_EQ(alerts[i].occurrences, expected[i]);
    EXPECT_FALSE(alerts[i].cleared);
    EXPECT_EQ(alerts[i].since_ms, alerts[0].since_ms);
  }
  EXPECT_NE(alerts[4].message.find("16 consecutive passes"), std::string::npos)
      << alerts[4].message;
  EXPECT_EQ(acted_passes.size(), 20u);  // listeners see every action
  auto snap = broker.snapshot();
  EXPECT_EQ(snap.alerts_delivered_total, 5u);
  EXPECT_EQ(snap.alerts_suppressed_total, 15u);

  stuck->set_usage(90);  // back within its budget: the condition clears, once
  auto report = broker.relieve();
  ASSERT_EQ(alerts.size(), 6u);
  EXPECT_TRUE(alerts[5].cleared);
  EXPECT_FALSE(alerts[5].action_taken);
  EXPECT_EQ(alerts[5].occurrences, 20u);
  EXPECT_EQ(alerts[5].tier_name, "stuck");
  EXPECT_NE(alerts[5].message.find("cleared"), std::string::npos) << alerts[5].message;
  EXPECT_EQ(report.alerts.size(), 1u);
  for (int pass = 0; pass < 5; ++pass) broker.relieve();
  EXPECT_EQ(alerts.size(), 6u);

  stuck->set_usage(150);  // a new episode alerts at once again
  broker.relieve();
  ASSERT_EQ(alerts.size(), 7u);
  EXPECT_EQ(alerts[6].occurrences, 1u);
}

TEST_F(BrokerTest, CountsPassesAndPoolsSeparately) {
  auto a = add("a", 100, 197);
  auto b = add("b", 100, 196);
  broker.relieve();  // one pass, two pools
  a->set_usage(190);
  broker.relieve();  // one pool
  const auto snap = broker.snapshot();
  EXPECT_EQ(snap.evictions_fired, 2u);
  EXPECT_EQ(snap.passes_total, 2u);
  EXPECT_EQ(snap.pool_reliefs_total, 3u);
  EXPECT_EQ(snap.bytes_freed_total, 137u + 136u + 130u);
  for (const auto& p : snap.pools) {
    EXPECT_EQ(p.counters.relief_count, p.name == "a" ? 2u : 1u) << p.name;
  }
}

TEST_F(BrokerTest, EvictionOvershootIsReported) {
  auto coarse = add("coarse", 1000, 1100, /*entry_bytes=*/200);
  const auto report = broker.relieve();
  ASSERT_EQ(report.pools_acted.size(), 1u);
  EXPECT_EQ(report.pools_acted[0].bytes_requested, 500u);
  EXPECT_EQ(report.pools_acted[0].bytes_freed, 600u);
  EXPECT_DOUBLE_EQ(report.pools_acted[0].pressure_after, 0.5);
}

// Pools whose budgets together exceed the global budget: their usage against it binds.
TEST(PressureBroker, AGlobalBudgetTheBudgetsExceedIsShedFrom) {
  BrokerConfig config;
  config.memory_budget_bytes = 100'000;
  PressureBroker broker(config);
  std::vector<PressureAlert> alerts;
  broker.add_alert_sink([&](const PressureAlert& a) { alerts.push_back(a); });
  auto a = FakeTier::make("a", 80'000, 40'000);
  auto b = FakeTier::make("b", 80'000, 50'000);
  broker.register_pool(a);
  broker.register_pool(b);

  const auto report = broker.relieve();  // 0.90 of the global budget: high
  EXPECT_EQ(report.global_tier_before, PressureTier::high);
  ASSERT_TRUE(report.shed.has_value());
  ASSERT_TRUE(report.shed->budget.has_value());
  EXPECT_TRUE(report.shed->budget->binds);
  EXPECT_EQ(report.shed->budget->capacity_bytes, 160'000u);
  EXPECT_EQ(report.shed->tier, PressureTier::high);
  EXPECT_FALSE(report.shed->reading.known());
  EXPECT_EQ(report.shed->bytes_wanted, 10'000u);  // down to 0.80 of 100,000
  // Bounded per pass: 5% of each pool's usage.
  EXPECT_EQ(a->requests(), std::vector<std::uint64_t>{2000});
  EXPECT_EQ(b->requests(), std::vector<std::uint64_t>{2500});
  ASSERT_EQ(alerts.size(), 2u);
  for (const auto& alert : alerts) {
    EXPECT_EQ(alert.cause, PressureAlert::Cause::budget_pressure);
    EXPECT_DOUBLE_EQ(alert.pressure, 0.9);
    EXPECT_NE(alert.message.find("global memory budget"), std::string::npos) << alert.message;
  }
  const auto snap = broker.snapshot();
  EXPECT_EQ(snap.binding, "globalBudget");
  ASSERT_TRUE(snap.global_budget.has_value());
  EXPECT_EQ(snap.global_budget->used_bytes, 85'500u);
  const nlohmann::json j = snap;
  EXPECT_EQ(j.at("globalBudget").at("limitBytes"), 100'000);
  EXPECT_EQ(j.at("pools").at(0).at("binding"), "globalBudget");
}

TEST(PressureBroker, AGlobalBudgetThePoolBudgetsFitInNeverBinds) {
  BrokerConfig config;
  config.memory_budget_bytes = 100'000;
  PressureBroker broker(config);
  auto a = FakeTier::make("a", 50'000, 50'000);
  auto b = FakeTier::make("b", 50'000, 49'000);
  broker.register_pool(a);
  broker.register_pool(b);
  const auto report = broker.relieve();  // 0.99 of the budget, but each pool keeps to its own
  EXPECT_FALSE(report.triggered);
  EXPECT_EQ(report.global_tier_before, PressureTier::normal);
  ASSERT_TRUE(report.shed && report.shed->budget);
  EXPECT_FALSE(report.shed->budget->binds);
  EXPECT_DOUBLE_EQ(report.shed->budget->pressure, 0.99);
  EXPECT_TRUE(a->requests().empty());
  EXPECT_TRUE(b->requests().empty());
}

class ThrowingTier final : public ResourcePool {
 public:
  std::string tier_name() const override { return "throws"; }
  std::uint64_t capacity_bytes() const override { return 100; }
  std::uint64_t usage_bytes() const override { return 199; }
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
  auto ok = add("ok", 100, 198);
  ReliefReport report;
  ASSERT_NO_THROW(report = broker.relieve());
  EXPECT_EQ(names_of(report.pools_acted), std::vector<std::string>{"ok"});
  ASSERT_EQ(report.pools_stuck.size(), 1u);
  EXPECT_EQ(report.pools_stuck[0].error, "backend gone");
  EXPECT_EQ(delivered, 2);
}

TEST_F(BrokerTest, SnapshotSortsByPressureAndNamesTheTier) {
  add("low", 100, 10);
  add("high", 100, 190);
  add("mid", 100, 150);
  const auto snap = broker.snapshot();
  ASSERT_EQ(snap.pools.size(), 3u);
  EXPECT_EQ(snap.pools[0].name, "high");
  EXPECT_EQ(snap.pools[1].name, "mid");
  EXPECT_EQ(snap.pools[2].name, "low");
  EXPECT_DOUBLE_EQ(snap.global_pressure, 1.9);
  EXPECT_EQ(snap.global_tier, PressureTier::critical);
  EXPECT_EQ(snap.binding, "pool");
  EXPECT_EQ(snap.pools[0].tier, PressureTier::critical);
  EXPECT_EQ(snap.pools[0].binding, "pool");
  EXPECT_DOUBLE_EQ(snap.pools[0].own_pressure, 1.9);
  EXPECT_EQ(snap.pools[2].tier, PressureTier::normal);
  EXPECT_EQ(snap.pools[0].stats.total_bytes, 190u);
  EXPECT_FALSE(snap.host_memory.has_value());
  EXPECT_FALSE(snap.global_budget.has_value());
  EXPECT_FALSE(snap.running);
}

TEST_F(BrokerTest, SnapshotJsonHasTheBrokerStateShape) {
  add("kv", 100, 197);
  broker.relieve();
  const nlohmann::json j = broker.snapshot();
  for (const char* key : {"globalPressure", "globalTier", "pools", "evictionsFired",
                          "bytesFreedTotal", "poolReliefsTotal", "hostMemory", "hostShedding",
                          "binding", "passesTotal", "alertsDeliveredTotal",
                          "alertsSuppressedTotal", "globalBudget"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j.at("globalTier"), "normal");  // relieved back inside its budget
  EXPECT_EQ(j.at("evictionsFired"), 1);
  EXPECT_EQ(j.at("bytesFreedTotal"), 137);
  EXPECT_EQ(j.at("passesTotal"), 1);
  EXPECT_TRUE(j.at("hostMemory").is_null());
  EXPECT_TRUE(j.at("globalBudget").is_null());
  const auto& pool = j.at("pools").at(0);
  EXPECT_EQ(pool.at("name"), "kv");
  EXPECT_EQ(pool.at("tier"), "normal");
  EXPECT_EQ(pool.at("binding"), "none");
  EXPECT_EQ(pool.at("reliefCount"), 1);
  for (const char* key : {"name", "entryCount", "pinnedCount", "totalBytes", "maxBytes",
                          "pressure", "hitCount", "missCount", "evictionCount",
                          "inflightCount"}) {
    EXPECT_TRUE(pool.at("stats").contains(key)) << key;
  }
}

TEST_F(BrokerTest, ReliefReportJson) {
  add("kv", 1000, 1100);
  const nlohmann::json j = broker.relieve();
  EXPECT_EQ(j.at("triggered"), true);
  EXPECT_EQ(j.at("globalTierBefore"), "critical");
  EXPECT_EQ(j.at("bytesFreed"), 500);
  EXPECT_EQ(j.at("poolsActed").at(0).at("name"), "kv");
  EXPECT_EQ(j.at("poolsActed").at(0).at("bytesRequested"), 500);
  EXPECT_TRUE(j.at("shed").is_null());
  EXPECT_EQ(j.at("alerts").at(0).at("tierName"), "kv");
}

TEST(PressureAlertJson, RoundTripsInCamelCase) {
  PressureAlert alert;
  alert.tier_name = "kv-cache";
  alert.pressure = 0.97;
  alert.tier = PressureTier::critical;
  alert.bytes_freed = 8ull << 30;
  alert.at_ms = 1'767'225'600'000;
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

  EXPECT_EQ(j.at("occurrences"), 1);
  EXPECT_EQ(j.at("cleared"), false);
  EXPECT_TRUE(j.contains("message"));

  auto original_shape = j;
  for (const char* key : {"cause", "occurrences", "cleared", "sinceMs", "message"}) {
    original_shape.erase(key);
  }
  const auto original = original_shape.get<PressureAlert>();
  EXPECT_EQ(original.cause, PressureAlert::Cause::pool_pressure);
  EXPECT_EQ(original.occurrences, 1u);
  EXPECT_EQ(original.since_ms, alert.at_ms);
  auto budget = j;
  budget["cause"] = "budgetPressure";
  EXPECT_EQ(budget.get<PressureAlert>().cause, PressureAlert::Cause::budget_pressure);
  auto unknown_cause = j;
  unknown_cause["cause"] = "gremlins";
  EXPECT_THROW(unknown_cause.get<PressureAlert>(), nlohmann::json::exception);
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
  refused([](BrokerConfig& c) { c.act_above = 0.7; });   // warning tier: the dead zone
  refused([](BrokerConfig& c) { c.act_above = 0.99; });  // above critical
  refused([](BrokerConfig& c) { c.target_fraction = 0.8; });  // not below act_above
  refused([](BrokerConfig& c) { c.target_fraction = 0.0; });
  refused([](BrokerConfig& c) { c.thresholds = {0.8, 0.6, 0.95}; });
  refused([](BrokerConfig& c) { c.tick_interval = std::chrono::milliseconds(0); });
  refused([](BrokerConfig& c) { c.host_shedding.max_pool_fraction_per_pass = 0.0; });
  refused([](BrokerConfig& c) { c.host_shedding.max_total_fraction = 1.5; });
  try {
    BrokerConfig c;
    c.act_above = 0.7;
    c.validate();
    FAIL();
  } catch (const PressureConfigError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("act_above"), std::string::npos) << what;
    EXPECT_NE(what.find("high"), std::string::npos) << what;
  }
  BrokerConfig lowest;
  lowest.act_above = 0.80;
  lowest.target_fraction = 0.5;
  EXPECT_NO_THROW(PressureBroker{lowest});
  BrokerConfig highest;
  highest.act_above = 0.95;
  EXPECT_NO_THROW(PressureBroker{highest});
}

}  // namespace
}  // namespace pagekeeper
