// AdapterPager: equivalents of the original's genome tests, adjusted where a defect
// is fixed (an activation that cannot fit is refused instead of overrunning; priority 0 is
// evictable; pressure is uncapped), plus the pool/budget integration the original planned.

#include "pagekeeper/adapter_pager.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>

#include "adapter/adapter_test_support.hpp"
#include "pagekeeper/broker.hpp"
#include "pagekeeper/errors.hpp"
#include "support/critical_host.hpp"

namespace pagekeeper {
namespace {

using test_support::critical_host;

using adapter_test::adapter;
using adapter_test::kMiB;
using adapter_test::ManualClock;
using adapter_test::ScratchDir;

std::shared_ptr<MemoryBudget> budget_of(std::uint64_t total) {
  MemoryBudgetConfig c;
  c.name = "test-budget";
  c.explicit_total_bytes = total;
  return std::make_shared<MemoryBudget>(c);
}

class AdapterPagerTest : public ::testing::Test {
 protected:
  std::shared_ptr<AdapterPager> make_pager(
      std::uint64_t budget_bytes,
      AdapterPagerConfig::OverBudget mode = AdapterPagerConfig::OverBudget::kRefuse,
      std::shared_ptr<AdapterLoader> loader = nullptr) {
    AdapterPagerConfig c;
    c.persona_id = "persona-1";
    c.budget_bytes = budget_bytes;
    c.over_budget = mode;
    c.clock = clock.fn();
    return std::make_shared<AdapterPager>(c, budget, std::move(loader));
  }

  static void register_all(AdapterPager& pager, std::initializer_list<AdapterInfo> adapters) {
    for (const auto& a : adapters) pager.register_adapter(a);
  }
  static void activate_all(AdapterPager& pager, std::initializer_list<const char*> names) {
    for (const char* n : names) ASSERT_TRUE(pager.activate_skill(n).activated) << n;
  }
  // Registers and activates "oldest", "middle" and "newest" (30 MiB each), a second apart.
  void activate_by_age(AdapterPager& pager) {
    for (const char* n : {"oldest", "middle", "newest"}) {
      pager.register_adapter(adapter(n, "x", 30 * kMiB));
      clock.advance(1000);
      pager.activate_skill(n);
    }
  }

  ManualClock clock{100000};
  // 100 GiB: the gates never interfere unless a test wants them to.
  std::shared_ptr<MemoryBudget> budget = budget_of(100 * 1024 * kMiB);
};

// ---- scores ----

TEST(AdapterScoreTest, MatchesTheOriginalFormula) {
  EXPECT_TRUE(std::isinf(adapter_eviction_score(0.95, 0, 60000)));
  EXPECT_DOUBLE_EQ(adapter_eviction_score(0.5, 0, 60000), 12.0);  // 60 s at 0.5
  EXPECT_LT(adapter_eviction_score(0.8, 0, 60000), adapter_eviction_score(0.4, 0, 60000));
  EXPECT_GT(adapter_eviction_score(0.5, 0, 60000), adapter_eviction_score(0.5, 30000, 60000));
  EXPECT_DOUBLE_EQ(adapter_eviction_score(0.5, 60000, 60000), 0.0);  // just used
  EXPECT_DOUBLE_EQ(adapter_eviction_score(0.5, 70000, 60000), 0.0);  // clock behind: age 0
  // 0.9 itself is not critical ("above 0.9").
  EXPECT_FALSE(std::isinf(adapter_eviction_score(0.9, 0, 60000)));
}

TEST(AdapterScoreTest, PriorityZeroIsTheLowestPriorityNotADivisionByZero) {
  const double zero = adapter_eviction_score(0.0, 0, 60000);
  EXPECT_TRUE(std::isfinite(zero));
  EXPECT_DOUBLE_EQ(zero, adapter_eviction_score(kMinimumAdapterPriority, 0, 60000));
  EXPECT_DOUBLE_EQ(zero, 600.0);
  EXPECT_GT(zero, adapter_eviction_score(0.5, 0, 60000));
}

TEST(AdapterScoreTest, PoolPriorityKeepsTheOrderAndTheSentinel) {
  EXPECT_EQ(adapter_pool_priority(0.95, 0, 60000), kNeverEvict);
  EXPECT_EQ(adapter_pool_priority(0.5, 0, 60000), -12000000);
  // Higher score -> lower pool priority -> evicted first.
  EXPECT_LT(adapter_pool_priority(0.5, 0, 60000), adapter_pool_priority(0.5, 30000, 60000));
  EXPECT_LT(adapter_pool_priority(0.0, 0, 60000), adapter_pool_priority(0.5, 0, 60000));
  // Huge ages clamp instead of overflowing.
  const auto ancient = adapter_pool_priority(0.0, std::numeric_limits<std::int64_t>::min(),
                                             std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(ancient, -(std::int64_t{1} << 62));
}

// ---- activate_skill ----

TEST_F(AdapterPagerTest, CacheHitLoadsNothingAndTouchesLastUsed) {
  auto pager = make_pager(100 * kMiB);
  pager->register_adapter(adapter("code", "code", 40 * kMiB));
  auto first = pager->activate_skill("code");
  ASSERT_TRUE(first.activated);
  EXPECT_EQ(first.to_load, "code");
  clock.advance(5000);
  const auto hit = pager->activate_skill("code");
  EXPECT_TRUE(hit.activated);
  EXPECT_FALSE(hit.to_load.has_value());
  EXPECT_TRUE(hit.evicted.empty());
  EXPECT_EQ(pager->state()["active_adapters"][0]["last_used_ms"], clock.now());
  EXPECT_EQ(pager->stats().hits, 1u);
}

TEST_F(AdapterPagerTest, UnknownAdapterIsRefused) {
  auto pager = make_pager(100 * kMiB);
  const auto r = pager->activate_skill("nope");
  EXPECT_FALSE(r.activated);
  EXPECT_EQ(r.adapter_name, "nope");
  EXPECT_NE(r.reason.find("unknown adapter 'nope'"), std::string::npos);
  EXPECT_EQ(pager->usage_bytes(), 0u);
}

TEST_F(AdapterPagerTest, LoadsFromAvailableAndAccountsTheBudget) {
  auto pager = make_pager(100 * kMiB);
  pager->register_adapter(adapter("legal", "legal", 30 * kMiB));
  const auto r = pager->activate_skill("legal");
  EXPECT_TRUE(r.activated);
  EXPECT_EQ(r.to_load, "legal");
  EXPECT_FALSE(r.loaded);  // decision-only mode: the caller loads
  EXPECT_GE(r.decision_time_us, 0.0);
  EXPECT_EQ(pager->usage_bytes(), 30 * kMiB);
  EXPECT_EQ(budget->usage_bytes(), 30 * kMiB);
  const auto state = pager->state();
  EXPECT_EQ(state["memory_used_mb"], 30.0);
  EXPECT_EQ(state["active_adapters"].size(), 1u);
  EXPECT_EQ(state["active_adapters"][0]["is_loaded"], true);
}

TEST_F(AdapterPagerTest, FullPagerEvictsTheOldest) {
  auto pager = make_pager(100 * kMiB);
  register_all(*pager, {
    adapter("a", "x", 50 * kMiB),
    adapter("b", "y", 50 * kMiB),
    adapter("c", "z", 50 * kMiB)
  });
  clock.set(1000);
  pager->activate_skill("a");
  clock.set(2000);
  pager->activate_skill("b");
  clock.set(3000);
  const auto r = pager->activate_skill("c");
  EXPECT_TRUE(r.activated);
  EXPECT_EQ(r.evicted, std::vector<std::string>{"a"});
  EXPECT_EQ(pager->usage_bytes(), 100 * kMiB);
  EXPECT_EQ(budget->usage_bytes(), 100 * kMiB);
  EXPECT_EQ(pager->resident_names(), (std::vector<std::string>{"b", "c"}));
}

TEST_F(AdapterPagerTest, LargeAdapterEvictsSeveralWhileCriticalSurvives) {
  auto pager = make_pager(200 * kMiB);
  register_all(*pager, {
    adapter("a1", "x", 50 * kMiB),
    adapter("a2", "x", 50 * kMiB),
    adapter("a3", "x", 50 * kMiB),
    adapter("core", "x", 50 * kMiB, 0.95),
    adapter("big", "y", 120 * kMiB)
  });
  for (const char* n : {"a1", "core", "a2", "a3"}) {
    clock.advance(1000);
    ASSERT_TRUE(pager->activate_skill(n).activated);
  }
  clock.advance(1000);
  const auto r = pager->activate_skill("big");
  ASSERT_TRUE(r.activated);
  EXPECT_EQ(r.evicted.size(), 3u);
  EXPECT_NE(std::find(r.evicted.begin(), r.evicted.end(), "a1"), r.evicted.end());
  EXPECT_TRUE(pager->is_resident("core"));
  EXPECT_EQ(pager->usage_bytes(), 170 * kMiB);
  EXPECT_EQ(budget->usage_bytes(), 170 * kMiB);
}

TEST_F(AdapterPagerTest, EvictsOnlyWhatIsNeededInScoreOrder) {
  auto pager = make_pager(100 * kMiB);
  // Same age, different priorities: the lower priority has the higher score.
  register_all(*pager, {
    adapter("low", "x", 40 * kMiB, 0.2),
    adapter("high", "x", 40 * kMiB, 0.8),
    adapter("new", "x", 40 * kMiB)
  });
  activate_all(*pager, {"high", "low"});
  clock.advance(10000);
  const auto r = pager->activate_skill("new");
  EXPECT_EQ(r.evicted, std::vector<std::string>{"low"});
}

TEST_F(AdapterPagerTest, PriorityZeroAdapterIsEvictable) {
  auto pager = make_pager(100 * kMiB);
  register_all(*pager, {adapter("zero", "x", 60 * kMiB, 0.0), adapter("next", "x", 60 * kMiB)});
  pager->activate_skill("zero");
  clock.advance(1000);
  const auto r = pager->activate_skill("next");
  EXPECT_EQ(r.evicted, std::vector<std::string>{"zero"});
}

// The original loaded over budget when everything was critical; we refuse by default.
TEST_F(AdapterPagerTest, AllCriticalRefusesInsteadOfOverrunning) {
  auto pager = make_pager(100 * kMiB);
  register_all(*pager, {
    adapter("c1", "x", 50 * kMiB, 0.95),
    adapter("c2", "x", 50 * kMiB, 0.99),
    adapter("extra", "y", 10 * kMiB)
  });
  activate_all(*pager, {"c1", "c2"});
  try {
    pager->activate_skill("extra");
    FAIL() << "must refuse";
  } catch (const TierExhausted& e) {
    EXPECT_EQ(e.tier, "adapters:persona-1");
    EXPECT_EQ(e.requested_bytes, 10 * kMiB);
    EXPECT_EQ(e.available_bytes, 0u);
    EXPECT_EQ(e.evicted_bytes, 0u);
  }
  EXPECT_EQ(pager->usage_bytes(), 100 * kMiB);
  EXPECT_EQ(budget->usage_bytes(), 100 * kMiB);
  EXPECT_FALSE(pager->is_resident("extra"));
  EXPECT_EQ(pager->resident_names(), (std::vector<std::string>{"c1", "c2"}));
}

TEST_F(AdapterPagerTest, RefusalHasNoSideEffectsWhenEvictionCannotMakeRoom) {
  auto pager = make_pager(100 * kMiB);
  register_all(*pager, {
    adapter("crit", "x", 70 * kMiB, 0.95),
    adapter("small", "x", 20 * kMiB),
    adapter("big", "x", 40 * kMiB)
  });
  activate_all(*pager, {"crit", "small"});
  EXPECT_THROW(pager->activate_skill("big"), TierExhausted);
  EXPECT_TRUE(pager->is_resident("small"));  // not evicted in vain
  EXPECT_THROW(pager->activate_skill("big"), TierExhausted);
  pager->register_adapter(adapter("huge", "x", 101 * kMiB));
  EXPECT_THROW(pager->activate_skill("huge"), TierExhausted);  // larger than the budget
}

TEST_F(AdapterPagerTest, OvercommitModeLoadsWithAWarningAndIsReclaimedLater) {
  auto pager = make_pager(100 * kMiB, AdapterPagerConfig::OverBudget::kOvercommit);
  register_all(*pager, {
    adapter("c1", "x", 50 * kMiB, 0.95),
    adapter("c2", "x", 40 * kMiB, 0.95),
    adapter("n", "x", 5 * kMiB),
    adapter("extra", "y", 30 * kMiB)
  });
  activate_all(*pager, {"c1", "c2", "n"});
  const auto r = pager->activate_skill("extra");
  EXPECT_TRUE(r.activated);
  EXPECT_TRUE(r.overcommitted);
  EXPECT_EQ(r.evicted, std::vector<std::string>{"n"});  // every non-critical went first
  EXPECT_EQ(pager->usage_bytes(), 120 * kMiB);
  EXPECT_DOUBLE_EQ(pager->pressure(), 1.2);  // uncapped: the overrun is visible
  // The next pass reclaims the overrun.
  EXPECT_EQ(pager->evict_under_pressure(1.0), 30 * kMiB);
  EXPECT_EQ(pager->usage_bytes(), 90 * kMiB);
  // Larger than the whole budget is refused even in overcommit mode.
  pager->register_adapter(adapter("huge", "x", 200 * kMiB));
  EXPECT_THROW(pager->activate_skill("huge"), TierExhausted);
}

TEST_F(AdapterPagerTest, MemoryBudgetRefusalRefusesTheActivation) {
  budget = budget_of(100 * kMiB);  // interactive gate: 0.80 * 95 MiB = 76 MiB
  auto pager = make_pager(1000 * kMiB);
  register_all(*pager, {adapter("a", "x", 70 * kMiB), adapter("b", "x", 10 * kMiB)});
  pager->activate_skill("a");
  try {
    pager->activate_skill("b");
    FAIL() << "the memory budget's gate must refuse";
  } catch (const TierExhausted& e) {
    EXPECT_EQ(e.tier, "test-budget/inference");
  }
  EXPECT_FALSE(pager->is_resident("b"));
  EXPECT_EQ(pager->usage_bytes(), 70 * kMiB);
  EXPECT_EQ(budget->usage_bytes(), 70 * kMiB);
}

// ---- evict_under_pressure ----

TEST_F(AdapterPagerTest, EvictUnderPressureBelowTargetIsANoOp) {
  auto pager = make_pager(100 * kMiB);
  pager->register_adapter(adapter("a", "x", 30 * kMiB));
  pager->activate_skill("a");
  EXPECT_EQ(pager->evict_under_pressure(0.75), 0u);
  EXPECT_TRUE(pager->is_resident("a"));
}

TEST_F(AdapterPagerTest, EvictUnderPressurePartialDropsOldestThenMiddle) {
  auto pager = make_pager(100 * kMiB);
  activate_by_age(*pager);
  EXPECT_EQ(pager->usage_bytes(), 90 * kMiB);
  const auto freed = pager->evict_under_pressure(0.5);
  EXPECT_EQ(freed, 60 * kMiB);
  EXPECT_LE(pager->usage_bytes(), 50 * kMiB);
  EXPECT_EQ(pager->resident_names(), std::vector<std::string>{"newest"});
}

TEST_F(AdapterPagerTest, EvictUnderPressureAllCriticalFreesNothing) {
  auto pager = make_pager(100 * kMiB);
  register_all(*pager, {adapter("c1", "x", 45 * kMiB, 0.95), adapter("c2", "x", 45 * kMiB, 0.91)});
  activate_all(*pager, {"c1", "c2"});
  EXPECT_EQ(pager->evict_under_pressure(0.1), 0u);
  EXPECT_EQ(pager->usage_bytes(), 90 * kMiB);
}

TEST_F(AdapterPagerTest, EvictUnderPressureReleasesTheVictimsGuard) {
  auto pager = make_pager(100 * kMiB);
  register_all(*pager, {adapter("victim", "x", 60 * kMiB), adapter("keep", "x", 30 * kMiB, 0.95)});
  activate_all(*pager, {"victim", "keep"});
  EXPECT_EQ(budget->usage_bytes(), 90 * kMiB);
  const auto freed = pager->evict_under_pressure(0.5);
  EXPECT_GE(freed, 60 * kMiB);
  EXPECT_EQ(budget->usage_bytes(), 30 * kMiB);  // the guard went with the entry
  const auto state = pager->state();
  ASSERT_EQ(state["available_adapters"].size(), 1u);
  EXPECT_EQ(state["available_adapters"][0]["name"], "victim");
  EXPECT_EQ(state["available_adapters"][0]["is_loaded"], false);
  EXPECT_THROW(pager->evict_under_pressure(-0.1), std::invalid_argument);
}

// The pool decides these evictions itself (the broker's lever); the pager learns of them
// from the pool's removal listener, in the pool's order.
TEST_F(AdapterPagerTest, PoolEvictionsReachThePagerThroughTheRemovalListener) {
  auto pager = make_pager(100 * kMiB);
  activate_by_age(*pager);
  EXPECT_EQ(pager->evict_at_least(31 * kMiB), 60 * kMiB);
  EXPECT_EQ(pager->resident_names(), std::vector<std::string>{"newest"});
  EXPECT_EQ(budget->usage_bytes(), 30 * kMiB);
  const auto state = pager->state();
  ASSERT_EQ(state["available_adapters"].size(), 2u);
  EXPECT_EQ(state["available_adapters"][0]["name"], "middle");
  EXPECT_EQ(state["available_adapters"][1]["name"], "oldest");
  // An evicted adapter is brought in again; the survivor is a hit.
  EXPECT_EQ(pager->activate_skill("oldest").to_load, std::optional<std::string>("oldest"));
  EXPECT_EQ(pager->activate_skill("newest").to_load, std::nullopt);
  EXPECT_EQ(pager->usage_bytes(), 60 * kMiB);
  EXPECT_EQ(budget->usage_bytes(), 60 * kMiB);
}

TEST_F(AdapterPagerTest, AHeldCopyKeepsTheBytesAccountedUntilReleased) {
  auto pager = make_pager(100 * kMiB);
  pager->register_adapter(adapter("inuse", "x", 60 * kMiB));
  pager->activate_skill("inuse");
  auto held = pager->active("inuse");
  ASSERT_TRUE(held.has_value());
  EXPECT_EQ(pager->evict_under_pressure(0.0), 60 * kMiB);
  EXPECT_EQ(pager->usage_bytes(), 0u);
  EXPECT_EQ(budget->usage_bytes(), 60 * kMiB);  // still in use by the holder
  held.reset();
  EXPECT_EQ(budget->usage_bytes(), 0u);
}

// ---- sync, pressure, state, coverage ----

TEST_F(AdapterPagerTest, SyncReplacesEverything) {
  auto pager = make_pager(100 * kMiB);
  register_all(*pager, {adapter("old1", "x", 20 * kMiB), adapter("old2", "x", 20 * kMiB)});
  activate_all(*pager, {"old1", "old2"});
  auto keep = adapter("old2", "x", 20 * kMiB, 0.7, 5000);
  keep.is_loaded = true;
  auto fresh = adapter("fresh", "y", 30 * kMiB, 0.5, 6000);
  fresh.is_loaded = true;
  auto idle = adapter("idle", "z", 10 * kMiB);
  const auto r = pager->sync_state({keep, fresh, idle});
  EXPECT_TRUE(r.synced);
  EXPECT_EQ(r.adapter_count, 3u);
  EXPECT_EQ(r.active_count, 2u);
  EXPECT_EQ(r.memory_used_bytes, 50 * kMiB);
  EXPECT_DOUBLE_EQ(r.memory_pressure, 0.5);
  EXPECT_TRUE(r.refused.empty());
  EXPECT_EQ(pager->resident_names(), (std::vector<std::string>{"fresh", "old2"}));
  EXPECT_EQ(budget->usage_bytes(), 50 * kMiB);
  const auto state = pager->state();
  EXPECT_EQ(state["available_adapters"].size(), 1u);
  EXPECT_EQ(state["active_adapters"][1]["priority"], 0.7);
  EXPECT_EQ(state["active_adapters"][1]["last_used_ms"], 5000);
  EXPECT_EQ(nlohmann::json(r)["memory_used_mb"], 50.0);
  // Invalid input changes nothing.
  EXPECT_THROW(pager->sync_state({keep, keep}), AdapterInfoError);
  EXPECT_EQ(pager->registered_count(), 3u);
}

TEST_F(AdapterPagerTest, SyncOverBudgetKeepsWhatEvictingTheLowestEachTimeKeeps) {
  // 2,000 adapters of 1 MiB into 16 MiB, in shuffled priority order: each admission evicts
  // the lowest-priority resident adapter. The sync decides with one heap instead of a scan
  // per victim; the outcome must be the one-at-a-time rule's, computed here directly.
  constexpr int kCount = 2000;
  auto pager = make_pager(16 * kMiB);
  std::vector<AdapterInfo> list;
  for (int i = 0; i < kCount; ++i) {
    auto a = adapter("a" + std::to_string(i), "x", kMiB, 0.05 + 0.8 * ((i * 7919) % kCount) / kCount, 0);
    a.is_loaded = true;
    list.push_back(a);
  }
  std::vector<std::pair<double, std::string>> expected;  // (priority, name), at most 16
  for (const auto& a : list) {
    if (expected.size() == 16) expected.erase(std::min_element(expected.begin(), expected.end()));
    expected.emplace_back(a.priority, a.name);
  }
  std::vector<std::string> expected_names;
  for (const auto& [_, name] : expected) expected_names.push_back(name);
  std::sort(expected_names.begin(), expected_names.end());

  const auto r = pager->sync_state(list);
  EXPECT_EQ(r.adapter_count, static_cast<std::size_t>(kCount));
  EXPECT_EQ(r.active_count, 16u);
  EXPECT_TRUE(r.refused.empty());
  auto resident = pager->resident_names();
  std::sort(resident.begin(), resident.end());
  EXPECT_EQ(resident, expected_names);
  EXPECT_EQ(pager->usage_bytes(), 16 * kMiB);
}

TEST_F(AdapterPagerTest, SyncReportsAdaptersThatCannotFit) {
  auto pager = make_pager(100 * kMiB);
  auto a = adapter("a", "x", 80 * kMiB, 0.95);
  a.is_loaded = true;
  auto b = adapter("b", "x", 40 * kMiB, 0.95);
  b.is_loaded = true;
  const auto r = pager->sync_state({a, b});
  EXPECT_EQ(r.active_count, 1u);
  ASSERT_EQ(r.refused.size(), 1u);
  EXPECT_EQ(r.refused[0].first, "b");
  EXPECT_LE(pager->usage_bytes(), 100 * kMiB);
}

TEST_F(AdapterPagerTest, PressureIsUncappedAndBudgetZeroIsRejected) {
  auto pager = make_pager(200 * kMiB, AdapterPagerConfig::OverBudget::kOvercommit);
  register_all(*pager, {adapter("a", "x", 150 * kMiB, 0.95), adapter("b", "x", 100 * kMiB, 0.95)});
  activate_all(*pager, {"a", "b"});
  EXPECT_DOUBLE_EQ(pager->pressure(), 1.25);  // 250/200; the original capped it at 1
  EXPECT_DOUBLE_EQ(pager->state()["memory_pressure"], 1.25);
  AdapterPagerConfig zero;
  zero.persona_id = "p";
  zero.budget_bytes = 0;
  EXPECT_THROW(AdapterPager(zero, nullptr, nullptr), std::invalid_argument);
}

TEST_F(AdapterPagerTest, StateHasTheOriginalShape) {
  auto pager = make_pager(200 * kMiB);
  register_all(*pager, {adapter("b", "code", 50 * kMiB, 0.6), adapter("a", "chat", 25 * kMiB)});
  pager->activate_skill("b");
  const auto s = pager->state();
  for (const char* key : {"memory_budget_mb", "memory_used_mb", "memory_pressure",
                          "active_adapters", "available_adapters"}) {
    EXPECT_TRUE(s.contains(key)) << key;
  }
  EXPECT_EQ(s["memory_budget_mb"], 200.0);
  EXPECT_EQ(s["memory_used_mb"], 50.0);
  EXPECT_DOUBLE_EQ(s["memory_pressure"], 0.25);
  const auto& b = s["active_adapters"][0];
  EXPECT_EQ(b["name"], "b");
  EXPECT_EQ(b["domain"], "code");
  EXPECT_EQ(b["size_mb"], 50.0);
  EXPECT_EQ(b["priority"], 0.6);
  EXPECT_EQ(s["available_adapters"][0]["name"], "a");
  // An AdapterInfo round-trips through JSON.
  const AdapterInfo back = s["active_adapters"][0].get<AdapterInfo>();
  EXPECT_EQ(back.name, "b");
  EXPECT_EQ(back.size_bytes, 50 * kMiB);
  EXPECT_TRUE(back.is_loaded);
}

TEST(AdapterInfoJsonTest, FromJsonValidatesFields) {
  const auto mb = nlohmann::json{{"name", "x"}, {"size_mb", 1.5}}.get<AdapterInfo>();
  EXPECT_EQ(mb.size_bytes, 3 * kMiB / 2);
  EXPECT_EQ(mb.priority, 0.5);
  EXPECT_THROW((nlohmann::json{{"size_mb", 1}}.get<AdapterInfo>()), AdapterInfoError);
  EXPECT_THROW((nlohmann::json{{"name", "x"}}.get<AdapterInfo>()), AdapterInfoError);
  EXPECT_THROW((nlohmann::json{{"name", "x"}, {"size_mb", -1}}.get<AdapterInfo>()), AdapterInfoError);
  EXPECT_THROW((nlohmann::json{{"name", "x"}, {"size_bytes", 1}, {"priority", 1.5}}.get<AdapterInfo>()),
               AdapterInfoError);
  EXPECT_THROW((nlohmann::json{{"name", "x"}, {"size_bytes", 1}, {"priority", "high"}}.get<AdapterInfo>()),
               AdapterInfoError);
  EXPECT_THROW((nlohmann::json::array().get<AdapterInfo>()), AdapterInfoError);
}

TEST_F(AdapterPagerTest, CoverageReport) {
  auto pager = make_pager(100 * kMiB);
  EXPECT_DOUBLE_EQ(pager->coverage_report().coverage_ratio, 1.0);  // no activity
  register_all(*pager, {adapter("c", "code", kMiB), adapter("l", "legal", kMiB)});
  pager->record_activity("code", true);
  pager->record_activity("legal", false);
  for (int i = 0; i < 3; ++i) pager->record_activity("math", i == 0);
  pager->record_activity("poetry", true);
  pager->register_adapter(adapter("p", "poetry", kMiB));
  const auto report = pager->coverage_report();
  EXPECT_EQ(report.covered, (std::vector<std::string>{"code", "legal", "poetry"}));
  ASSERT_EQ(report.gaps.size(), 1u);
  EXPECT_EQ(report.gaps[0].domain, "math");
  EXPECT_EQ(report.gaps[0].interactions, 3u);
  EXPECT_EQ(report.gaps[0].successes, 1u);
  EXPECT_DOUBLE_EQ(report.coverage_ratio, 0.75);
}

TEST_F(AdapterPagerTest, CoverageGapsSortedByInteractions) {
  auto pager = make_pager(100 * kMiB);
  pager->register_adapter(adapter("c", "code", kMiB));
  pager->record_activity("code", true);
  pager->record_activity("rare", true);
  for (int i = 0; i < 5; ++i) pager->record_activity("frequent", true);
  const auto report = pager->coverage_report();
  ASSERT_EQ(report.gaps.size(), 2u);
  EXPECT_EQ(report.gaps[0].domain, "frequent");
  EXPECT_EQ(report.gaps[1].domain, "rare");
  EXPECT_NEAR(report.coverage_ratio, 1.0 / 3.0, 1e-12);
  EXPECT_EQ(nlohmann::json(report)["gaps"][0]["interactions"], 5);
}

TEST_F(AdapterPagerTest, UnregisterEvictsAResidentAdapter) {
  auto pager = make_pager(100 * kMiB);
  pager->register_adapter(adapter("a", "x", 10 * kMiB));
  pager->activate_skill("a");
  EXPECT_TRUE(pager->unregister_adapter("a"));
  EXPECT_FALSE(pager->unregister_adapter("a"));
  EXPECT_EQ(pager->usage_bytes(), 0u);
  EXPECT_EQ(budget->usage_bytes(), 0u);
  EXPECT_FALSE(pager->activate_skill("a").activated);
}

// ---- real bytes: the file loader ----

TEST_F(AdapterPagerTest, FileLoaderAccountsTheRealBytes) {
  ScratchDir dir;
  dir.write_file("a.bin", 3000);
  dir.write_file("b.bin", 5000);
  auto loader = std::make_shared<FileAdapterLoader>(dir.path());
  auto pager = make_pager(10000, AdapterPagerConfig::OverBudget::kRefuse, loader);
  auto a = adapter("a", "x", 2000);  // declared size is wrong: the file is 3000 bytes
  a.path = "a.bin";
  auto b = adapter("b", "x", 5000);
  b.path = (dir.path() / "b.bin").string();
  pager->register_adapter(a);
  pager->register_adapter(b);
  const auto r = pager->activate_skill("a");
  EXPECT_TRUE(r.loaded);
  EXPECT_EQ(pager->usage_bytes(), 3000u);
  EXPECT_EQ(budget->usage_bytes(), 3000u);
  pager->activate_skill("b");
  EXPECT_EQ(budget->usage_bytes(), 8000u);
  auto held = pager->active("b");
  ASSERT_TRUE(held && held->weights);
  const auto& weights = dynamic_cast<const FileAdapterWeights&>(*held->weights);
  EXPECT_EQ(weights.bytes().size(), 5000u);
  EXPECT_EQ(weights.bytes()[1], static_cast<std::byte>(38));
}

TEST_F(AdapterPagerTest, MissingFileIsAClearErrorAndLeavesNothingBehind) {
  ScratchDir dir;
  auto loader = std::make_shared<FileAdapterLoader>(dir.path());
  auto pager = make_pager(10000, AdapterPagerConfig::OverBudget::kRefuse, loader);
  auto ghost = adapter("ghost", "x", 100);
  ghost.path = "ghost.bin";
  pager->register_adapter(ghost);
  try {
    pager->activate_skill("ghost");
    FAIL() << "missing file must throw";
  } catch (const AdapterLoadError& e) {
    EXPECT_NE(std::string(e.what()).find("ghost.bin"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(pager->is_resident("ghost"));
  EXPECT_EQ(budget->usage_bytes(), 0u);
  auto nopath = adapter("nopath", "x", 100);
  pager->register_adapter(nopath);
  EXPECT_THROW(pager->activate_skill("nopath"), AdapterLoadError);
  auto dir_entry = adapter("dir", "x", 100);
  dir_entry.path = dir.path().string();
  pager->register_adapter(dir_entry);
  EXPECT_THROW(pager->activate_skill("dir"), AdapterLoadError);
}

// ---- the broker relieves a pager: real bytes come back ----

TEST_F(AdapterPagerTest, BrokerSheddingUnderCriticalHostPressureFreesRealBytes) {
  ScratchDir dir;
  auto loader = std::make_shared<FileAdapterLoader>(dir.path());
  auto pager = make_pager(100000, AdapterPagerConfig::OverBudget::kRefuse, loader);
  std::uint64_t sizes = 0;
  for (int i = 0; i < 4; ++i) {
    const std::string name = "skill" + std::to_string(i);
    dir.write_file(name + ".bin", 24000);
    auto a = adapter(name, "x", 24000);
    a.path = name + ".bin";
    pager->register_adapter(a);
    clock.advance(1000);
    pager->activate_skill(name);
    sizes += 24000;
  }
  EXPECT_EQ(budget->usage_bytes(), sizes);
  EXPECT_DOUBLE_EQ(pager->pressure(), 0.96);  // full, which alone is not pressure

  // A host at critical pressure, and a broker allowed to shed 40% of a pool in one pass.
  const BrokerConfig config = test_support::shedding_config(0.40, 0.40);
  auto broker = std::make_shared<PressureBroker>(
      config, critical_host());
  broker->register_pool(pager);
  const auto report = broker->relieve();
  EXPECT_TRUE(report.triggered);
  ASSERT_TRUE(report.shed.has_value());
  ASSERT_EQ(report.shed->pools_shed.size(), 1u);
  EXPECT_EQ(report.shed->pools_shed[0].name, "adapters:persona-1");
  // Asked for 40% of 96000 = 38400 -> two whole 24000-byte adapters, the oldest.
  EXPECT_EQ(report.bytes_freed, 48000u);
  EXPECT_EQ(budget->usage_bytes(), sizes - 48000);
  EXPECT_EQ(pager->resident_names(), (std::vector<std::string>{"skill2", "skill3"}));
  const auto state = pager->state();
  EXPECT_EQ(state["available_adapters"].size(), 2u);
}

TEST_F(AdapterPagerTest, RegistryKeepsOnePagerPerPersonaAndRegistersWithTheBroker) {
  auto broker = std::make_shared<PressureBroker>();
  AdapterPagerDefaults defaults;
  defaults.expected_personas = 4;
  defaults.clock = clock.fn();
  AdapterPagerRegistry registry(defaults, budget, nullptr, broker);
  auto p1 = registry.get_or_create("alice");
  EXPECT_EQ(p1->budget_bytes(), budget->per_persona_inference_bytes(4));
  EXPECT_EQ(registry.get_or_create("alice", 5 * kMiB), p1);  // fixed at creation
  auto p2 = registry.get_or_create("bob", 5 * kMiB);
  EXPECT_EQ(p2->budget_bytes(), 5 * kMiB);
  EXPECT_EQ(registry.find("carol"), nullptr);
  EXPECT_EQ(registry.persona_ids(), (std::vector<std::string>{"alice", "bob"}));
  auto names = broker->pool_names();
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"adapters:alice", "adapters:bob"}));
  EXPECT_TRUE(registry.remove("bob"));
  EXPECT_FALSE(registry.remove("bob"));
  EXPECT_EQ(broker->pool_names(), std::vector<std::string>{"adapters:alice"});
  EXPECT_THROW(registry.get_or_create(""), std::invalid_argument);
  AdapterPagerRegistry no_budget({}, nullptr, nullptr, nullptr);
  EXPECT_THROW(no_budget.get_or_create("x"), std::invalid_argument);
}

}  // namespace
}  // namespace pagekeeper
