// activate_skill decision time with 1,000 registered adapters (target <= 10 us, a tenth of
// the original's bound of 100 us), against a baseline in the same run: the original engine's
// algorithm (its GenomePagingEngine) re-stated as plain maps with a linear victim scan
// and no pool, no budget guards and no locking.
//
// Pager runs use decision-only mode (no loader), so the measured call is the decision itself:
// lookup, fit, eviction through the pool, MemoryBudget allocation, and insert.

#include <benchmark/benchmark.h>

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "pagekeeper/adapter_pager.hpp"
#include "pagekeeper/clock.hpp"

namespace pagekeeper {
namespace {

constexpr int kRegistered = 1000;
constexpr std::uint64_t kAdapterBytes = 16 << 20;

std::string adapter_name(int i) { return "skill-" + std::to_string(i); }

std::shared_ptr<AdapterPager> make_pager(std::int64_t resident_capacity) {
  MemoryBudgetConfig bc;
  bc.explicit_total_bytes = std::uint64_t{1} << 50;
  auto budget = std::make_shared<MemoryBudget>(bc);
  AdapterPagerConfig pc;
  pc.persona_id = "bench";
  pc.budget_bytes = static_cast<std::uint64_t>(resident_capacity) * kAdapterBytes;
  auto pager = std::make_shared<AdapterPager>(pc, budget, nullptr);
  for (int i = 0; i < kRegistered; ++i) {
    AdapterInfo a;
    a.name = adapter_name(i);
    a.domain = "d" + std::to_string(i % 37);
    a.size_bytes = kAdapterBytes;
    a.priority = i % 10 == 0 ? 0.95 : 0.2 + 0.05 * (i % 12);  // every 10th critical
    pager->register_adapter(a);
  }
  return pager;
}

// Every call activates an adapter that is not resident: one eviction per call.
void BM_ActivateSkillMiss(benchmark::State& state) {
  const auto resident = state.range(0);
  auto pager = make_pager(resident);
  std::vector<std::string> names;
  for (int i = 0; i < kRegistered; ++i) {
    if (i % 10 != 0) names.push_back(adapter_name(i));  // non-critical ones cycle
  }
  std::size_t next = 0;
  double decision_us = 0.0;
  std::int64_t evicted = 0;
  for (auto _ : state) {
    const auto r = pager->activate_skill(names[next]);
    next = (next + 1) % names.size();
    decision_us += r.decision_time_us;
    evicted += static_cast<std::int64_t>(r.evicted.size());
    benchmark::DoNotOptimize(r);
  }
  state.counters["decision_us"] = decision_us / static_cast<double>(state.iterations());
  state.counters["evicted_per_call"] = static_cast<double>(evicted) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_ActivateSkillMiss)->Arg(32)->Arg(256);

// The adapter is resident: a touch.
void BM_ActivateSkillHit(benchmark::State& state) {
  auto pager = make_pager(64);
  pager->activate_skill(adapter_name(1));
  for (auto _ : state) benchmark::DoNotOptimize(pager->activate_skill(adapter_name(1)));
}
BENCHMARK(BM_ActivateSkillHit);

// ---- baseline: the original engine's algorithm ----

struct OriginalAdapter {
  std::uint64_t size = 0;
  double priority = 0.5;
  std::int64_t last_used_ms = 0;
};

class OriginalStyleEngine {
 public:
  OriginalStyleEngine(std::uint64_t budget) : budget_(budget) {}
  void add(const std::string& name, OriginalAdapter a) { available_.emplace(name, a); }

  // Returns the number evicted; as the original, loads over budget when nothing can go.
  int activate(const std::string& name, std::int64_t now) {
    if (auto it = active_.find(name); it != active_.end()) {
      it->second.last_used_ms = now;
      return 0;
    }
    auto it = available_.find(name);
    if (it == available_.end()) return -1;
    OriginalAdapter adapter = it->second;
    int evicted = 0;
    while (used_ + adapter.size > budget_) {
      auto victim = active_.end();
      double worst = -1.0;
      for (auto a = active_.begin(); a != active_.end(); ++a) {
        const double score = adapter_eviction_score(a->second.priority, a->second.last_used_ms, now);
        if (score != std::numeric_limits<double>::infinity() && score > worst) {
          worst = score;
          victim = a;
        }
      }
      if (victim == active_.end()) break;
      used_ -= victim->second.size;
      available_[victim->first] = victim->second;
      active_.erase(victim);
      ++evicted;
    }
    adapter.last_used_ms = now;
    used_ += adapter.size;
    active_[name] = adapter;
    available_.erase(name);
    return evicted;
  }

 private:
  std::uint64_t budget_;
  std::uint64_t used_ = 0;
  std::map<std::string, OriginalAdapter> active_;
  std::map<std::string, OriginalAdapter> available_;
};

void BM_BaselineOriginalEngineMiss(benchmark::State& state) {
  const auto resident = state.range(0);
  OriginalStyleEngine engine(static_cast<std::uint64_t>(resident) * kAdapterBytes);
  std::vector<std::string> names;
  for (int i = 0; i < kRegistered; ++i) {
    const double priority = i % 10 == 0 ? 0.95 : 0.2 + 0.05 * (i % 12);
    engine.add(adapter_name(i), {kAdapterBytes, priority, 0});
    if (i % 10 != 0) names.push_back(adapter_name(i));
  }
  std::size_t next = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(engine.activate(names[next], monotonic_ms()));
    next = (next + 1) % names.size();
  }
}
BENCHMARK(BM_BaselineOriginalEngineMiss)->Arg(32)->Arg(256);

}  // namespace
}  // namespace pagekeeper
