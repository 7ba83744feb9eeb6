// AdapterPager under concurrent activations, pressure relief, broker passes and reads (run
// under TSan: label `concurrent`). Invariants: the pager never holds more than its budget (refuse
// mode), every activation either succeeds or is refused with TierExhausted, and once nothing
// holds an adapter the MemoryBudget accounts exactly the resident bytes.

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "adapter_test_support.hpp"
#include "pagekeeper/adapter_pager.hpp"
#include "pagekeeper/broker.hpp"
#include "pagekeeper/errors.hpp"

namespace pagekeeper {
namespace {

TEST(AdapterPagerConcurrencyTest, ActivationsReliefAndReadsKeepTheBudget) {
  MemoryBudgetConfig bc;
  bc.explicit_total_bytes = std::uint64_t{1} << 40;
  auto budget = std::make_shared<MemoryBudget>(bc);
  AdapterPagerConfig pc;
  pc.persona_id = "stress";
  pc.budget_bytes = 1000;
  auto pager = std::make_shared<AdapterPager>(pc, budget, nullptr);
  constexpr int kAdapters = 40;
  for (int i = 0; i < kAdapters; ++i) {
    AdapterInfo a;
    a.name = "a" + std::to_string(i);
    a.domain = "d" + std::to_string(i % 5);
    a.size_bytes = 50 + static_cast<std::uint64_t>(i % 7) * 20;
    a.priority = i % 13 == 0 ? 0.95 : 0.1 + 0.02 * i;
    pager->register_adapter(a);
  }
  auto broker = std::make_shared<PressureBroker>();
  broker->register_pool(pager);

  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> activated{0};
  std::atomic<std::uint64_t> refused{0};
  std::atomic<std::uint64_t> over_budget_seen{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t) * 7919u + 1u);
      for (int i = 0; i < 1500; ++i) {
        const std::string name = "a" + std::to_string(rng() % (kAdapters + 2));  // some unknown
        try {
          const auto r = pager->activate_skill(name);
          if (r.activated) activated.fetch_add(1);
          if (auto held = pager->active(name)) {
            EXPECT_GT(held->size_bytes, 0u);
          }
        } catch (const TierExhausted&) {
          refused.fetch_add(1);
        }
        pager->record_activity("d" + std::to_string(i % 7), i % 2 == 0);
        if (pager->usage_bytes() > pc.budget_bytes) over_budget_seen.fetch_add(1);
      }
    });
  }
  threads.emplace_back([&] {
    while (!stop.load()) {
      broker->relieve();
      pager->evict_under_pressure(0.5);
      (void)pager->state();
      (void)pager->coverage_report();
      (void)pager->snapshot();
      std::this_thread::yield();
    }
  });
  for (int t = 0; t < 4; ++t) threads[static_cast<std::size_t>(t)].join();
  stop.store(true);
  threads.back().join();

  EXPECT_GT(activated.load(), 0u);
  EXPECT_EQ(over_budget_seen.load(), 0u);
  EXPECT_LE(pager->usage_bytes(), pc.budget_bytes);
  EXPECT_EQ(budget->usage_bytes(), pager->usage_bytes());
  const auto state = pager->state();
  EXPECT_EQ(state["active_adapters"].size() + state["available_adapters"].size(),
            static_cast<std::size_t>(kAdapters));
  EXPECT_EQ(pager->stats().entry_count, state["active_adapters"].size());
}

// Two pagers with loaders and curves under one global budget: the broker's passes move their
// budgets (set_budget) while four threads activate adapters in both and read their curves.
TEST(AdapterPagerConcurrencyTest, BudgetMovesWhileActivationsRun) {
  adapter_test::ScratchDir dir;
  auto loader = std::make_shared<FileAdapterLoader>(dir.path());
  constexpr std::uint64_t kEach = 1500;
  std::vector<std::shared_ptr<AdapterPager>> pagers;
  for (const char* persona : {"left", "right"}) {
    AdapterPagerConfig pc;
    pc.persona_id = persona;
    pc.budget_bytes = kEach;
    pc.curve_sampling_rate = 1.0;
    auto pager = std::make_shared<AdapterPager>(pc, nullptr, loader);
    for (int i = 0; i < 20; ++i) {
      AdapterInfo a = adapter_test::adapter("a" + std::to_string(i), "d", 100 + 20 * (i % 5));
      a.path = dir.write_file(std::string(persona) + "-" + a.name, a.size_bytes);
      pager->register_adapter(a);
    }
    ASSERT_TRUE(pager->curve_known());
    pagers.push_back(std::move(pager));
  }
  BrokerConfig config;
  config.memory_budget_bytes = 2 * kEach;
  config.rebalance_hysteresis = 0.0;
  auto broker = std::make_shared<PressureBroker>(config);
  for (const auto& p : pagers) broker->register_pool(p);

  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> budget_changes{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t) + 17u);
      // The left pager re-uses 6 adapters (780 bytes), the right one cycles through 12 (1,620
      // bytes, more than its budget): bytes move right.
      for (int i = 0; i < 600; ++i) {
        pagers[0]->activate_skill("a" + std::to_string(rng() % 6));
        pagers[1]->activate_skill("a" + std::to_string(i % 12));
        (void)pagers[static_cast<std::size_t>(i % 2)]->miss_ratio(kEach);
      }
    });
  }
  threads.emplace_back([&] {
    while (!stop.load()) {
      budget_changes.fetch_add(broker->relieve().budget_changes.size());
      std::this_thread::yield();
    }
  });
  for (int t = 0; t < 4; ++t) threads[static_cast<std::size_t>(t)].join();
  stop.store(true);
  threads.back().join();
  // However the passes interleaved with the activations, one more sees what they left.
  budget_changes.fetch_add(broker->relieve().budget_changes.size());

  EXPECT_GT(budget_changes.load(), 0u);
  EXPECT_EQ(pagers[0]->capacity_bytes() + pagers[1]->capacity_bytes(), 2 * kEach);
  for (const auto& p : pagers) {
    EXPECT_LE(p->usage_bytes(), p->capacity_bytes()) << p->tier_name();
    std::uint64_t resident = 0;
    for (const auto& e : p->snapshot()) resident += e.size_bytes;
    EXPECT_EQ(resident, p->usage_bytes()) << p->tier_name();
  }
}

}  // namespace
}  // namespace pagekeeper
