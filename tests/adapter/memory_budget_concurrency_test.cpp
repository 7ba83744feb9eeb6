// MemoryBudget under concurrent allocate/release (run under TSan: label `concurrent`). The
// invariant: usage never passes a gate, and every byte comes back when the guards are gone.

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "pagekeeper/errors.hpp"
#include "pagekeeper/memory_budget.hpp"

namespace pagekeeper {
namespace {

TEST(MemoryBudgetConcurrencyTest, ConcurrentAllocateReleaseNeverPassesTheGate) {
  MemoryBudgetConfig config;
  config.name = "stress";
  config.explicit_total_bytes = 100000;
  MemoryBudget budget(config);
  const std::uint64_t realtime_gate = budget.gate_limit_bytes(AllocationPriority::kRealtime);

  constexpr int kThreads = 8;
  constexpr int kIterations = 4000;
  std::atomic<std::uint64_t> granted{0};
  std::atomic<std::uint64_t> refused{0};
  std::atomic<std::uint64_t> max_seen{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<MemoryBudget::Guard> held;
      for (int i = 0; i < kIterations; ++i) {
        const auto priority = static_cast<AllocationPriority>((t + i) % 4);
        const auto subsystem = static_cast<Subsystem>(i % 3);
        const std::uint64_t bytes = 500 + static_cast<std::uint64_t>((t * 131 + i * 17) % 2500);
        try {
          held.push_back(budget.allocate(bytes, subsystem, priority));
          granted.fetch_add(1);
        } catch (const TierExhausted&) {
          refused.fetch_add(1);
        }
        const auto usage = budget.usage_bytes();
        auto prev = max_seen.load();
        while (usage > prev && !max_seen.compare_exchange_weak(prev, usage)) {
        }
        // Hand some guards back, sometimes by moving them to another owner first. Each thread
        // holds up to 30 guards (about 52 kB, a third of them tts), so even a thread that runs
        // alone passes the tts share and the batch gate: refusals happen on any schedule.
        if (held.size() > 30 || i % 50 == 0) {
          if (!held.empty()) {
            MemoryBudget::Guard moved = std::move(held.front());
            held.erase(held.begin());
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();

  EXPECT_GT(granted.load(), 0u);
  EXPECT_GT(refused.load(), 0u);  // the load is sized to hit the gates
  EXPECT_LT(max_seen.load(), realtime_gate);
  EXPECT_EQ(budget.usage_bytes(), 0u);
  EXPECT_EQ(budget.live_guards(), 0u);
  for (auto s : {Subsystem::kInference, Subsystem::kTts, Subsystem::kRender}) {
    EXPECT_EQ(budget.subsystem_usage_bytes(s), 0u);
  }
  EXPECT_EQ(budget.refusals(), refused.load());
}

}  // namespace
}  // namespace pagekeeper
