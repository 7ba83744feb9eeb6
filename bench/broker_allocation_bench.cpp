// Two pools under one global budget, fed two ARC traces interleaved request by request: the
// budget split that rebalance() (budget_allocation.hpp) reaches from SHARDS miss-ratio curves
// (detail/miss_ratio_sampler.hpp), against every static split in 5% steps (the best found
// offline) and the equal split. The second argument is what a miss of the first pool costs,
// in misses of the second, in percent (100: every miss costs the same, so cost = misses; an
// adapter load costs far more than an embedding): the rebalancing weighs curves by it and
// every figure is a total miss cost in second-pool misses.
//
// Traces come from PAGEKEEPER_TRACE_DIR (the ARC traces); the benchmark is skipped without
// them. The pair is OLTP (recency-heavy) and P3 (scan-heavy) unless PAGEKEEPER_ALLOC_FIRST /
// PAGEKEEPER_ALLOC_SECOND name other files there. Counters: dynamic_cost (the rebalancing
// run), final_split_cost (a static run at the split it ended with), best_static_cost and
// best_static_first_share_pct, equal_split_cost, and the ratios of the first two to the best
// and of the final and best splits to the equal split.

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "pagekeeper/budget_allocation.hpp"
#include "pagekeeper/detail/miss_ratio_sampler.hpp"
#include "pagekeeper/pool.hpp"
#include "cli/trace.hpp"

namespace {

using pagekeeper::PagedResourcePool;
using pagekeeper::PoolConfig;
using pagekeeper::pool_detail::MissRatioSampler;
using KeyPool = PagedResourcePool<std::uint64_t, std::uint64_t>;

constexpr std::size_t kRequestsPerTrace = 900'000;

std::vector<std::uint64_t> load_trace(const std::string& name) {
  const char* dir = std::getenv("PAGEKEEPER_TRACE_DIR");
  if (dir == nullptr) return {};
  std::vector<std::uint64_t> keys;
  try {
    auto reader = pagekeeper::TraceReader::open_file(std::string(dir) + "/" + name);
    pagekeeper::TraceRequest r;
    while (keys.size() < kRequestsPerTrace && reader.next(r)) keys.push_back(r.key);
  } catch (const pagekeeper::TraceError&) {
    return {};
  }
  return keys;
}

std::unique_ptr<KeyPool> key_pool(std::uint64_t capacity) {
  PoolConfig<std::uint64_t, std::uint64_t> c;
  c.name = "trace";
  c.max_bytes = capacity;
  c.sizer = [](const std::uint64_t&) { return std::uint64_t{1}; };
  c.policy = pagekeeper::EvictionPolicy<std::uint64_t>::lru();
  c.shards = 1;  // exact LRU, as the curves assume
  return std::make_unique<KeyPool>(c);
}

struct Replay {
  std::uint64_t misses[2] = {0, 0};
  std::uint64_t final_first_budget = 0;
  double cost(const double (&miss_cost)[2]) const {
    return miss_cost[0] * static_cast<double>(misses[0]) + miss_cost[1] * static_cast<double>(misses[1]);
  }
};

// Replays the two traces interleaved. With `rebalance_every` > 0 the split starts equal and
// is rebalanced from the pools' sampled curves every that many requests.
Replay replay(const std::vector<std::uint64_t>& a, const std::vector<std::uint64_t>& b,
              std::uint64_t total, std::uint64_t first_budget, std::size_t rebalance_every,
              const double (&miss_cost)[2]) {
  std::uint64_t budgets[2] = {first_budget, total - first_budget};
  std::unique_ptr<KeyPool> pools[2] = {key_pool(budgets[0]), key_pool(budgets[1])};
  MissRatioSampler samplers[2] = {MissRatioSampler(0.1, 8192), MissRatioSampler(0.1, 8192)};
  double window_accesses[2] = {0, 0};
  const std::vector<std::uint64_t>* traces[2] = {&a, &b};
  Replay out;
  const std::size_t n = std::max(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    for (int p = 0; p < 2; ++p) {
      if (i >= traces[p]->size()) continue;
      const std::uint64_t key = (*traces[p])[i];
      if (!pools[p]->get(key)) {
        ++out.misses[p];
        pools[p]->insert(key, key);
      }
      if (rebalance_every > 0) {
        samplers[p].access(MissRatioSampler::sample_hash(key), 1);
        window_accesses[p] += 1;
      }
    }
    if (rebalance_every > 0 && (i + 1) % rebalance_every == 0) {
      std::vector<pagekeeper::PoolDemand> demand;
      for (int p = 0; p < 2; ++p) {
        auto histogram = std::make_shared<pagekeeper::pool_detail::ReuseHistogram>(
            samplers[p].histogram());
        demand.push_back({"pool" + std::to_string(p), budgets[p], total / 20, window_accesses[p],
                          miss_cost[p], [histogram](std::uint64_t bytes) {
                            return histogram->miss_ratio(static_cast<double>(bytes));
                          }});
        window_accesses[p] = 0;
      }
      const auto next = pagekeeper::rebalance(
          demand, {.step = std::max<std::uint64_t>(total / 40, 1), .hysteresis = 0.002,
                   .max_moves = 4});
      for (int p = 0; p < 2; ++p) {
        budgets[p] = next[p];
        pools[p]->set_max_bytes(budgets[p]);
      }
    }
  }
  out.final_first_budget = budgets[0];
  return out;
}

// Args: total budget in keys; a first-pool miss's cost in second-pool misses, in percent.
void BM_BrokerAllocationTwoTraces(benchmark::State& state) {
  const char* first = std::getenv("PAGEKEEPER_ALLOC_FIRST");
  const char* second = std::getenv("PAGEKEEPER_ALLOC_SECOND");
  const auto recency = load_trace(first ? first : "OLTP.lis.zst");
  const auto scan = load_trace(second ? second : "P3.lis.zst");
  if (recency.empty() || scan.empty()) {
    state.SkipWithError("set PAGEKEEPER_TRACE_DIR to the ARC traces (OLTP, P3)");
    return;
  }
  const auto total = static_cast<std::uint64_t>(state.range(0));
  const double miss_cost[2] = {static_cast<double>(state.range(1)) / 100.0, 1.0};
  Replay dynamic;
  for (auto _ : state) dynamic = replay(recency, scan, total, total / 2, 20'000, miss_cost);
  double best = 0.0;
  std::uint64_t best_share = 0;
  double equal = 0.0;
  for (int step = 1; step < 20; ++step) {
    const std::uint64_t first = total * static_cast<std::uint64_t>(step) / 20;
    const double cost = replay(recency, scan, total, first, 0, miss_cost).cost(miss_cost);
    if (step == 10) equal = cost;
    if (best_share == 0 || cost < best) {
      best = cost;
      best_share = static_cast<std::uint64_t>(step) * 5;
    }
  }
  const double final_split =
      replay(recency, scan, total, dynamic.final_first_budget, 0, miss_cost).cost(miss_cost);
  state.counters["dynamic_cost"] = dynamic.cost(miss_cost);
  state.counters["final_split_cost"] = final_split;
  state.counters["final_first_share_pct"] =
      100.0 * static_cast<double>(dynamic.final_first_budget) / static_cast<double>(total);
  state.counters["best_static_cost"] = best;
  state.counters["best_static_first_share_pct"] = static_cast<double>(best_share);
  state.counters["equal_split_cost"] = equal;
  state.counters["final_vs_best"] = final_split / best;
  state.counters["dynamic_vs_best"] = dynamic.cost(miss_cost) / best;
  state.counters["final_vs_equal"] = final_split / equal;
  state.counters["best_vs_equal"] = best / equal;
}
// Miss costs 1x, 10x and 100x (a first-pool miss against a second-pool one), and the reverse.
BENCHMARK(BM_BrokerAllocationTwoTraces)
    ->ArgsProduct({{1000, 5000, 50000}, {1, 100, 1000, 10000}})
    ->Iterations(1)
    ->Unit(benchmark::kSecond);

}  // namespace

namespace {

// What miss-ratio sampling costs a hit: get() hits on 64 Ki keys walked in a fixed random
// order (the shape of pool_bench's BM_PoolGetHit), with PoolConfig::curve_sampling_rate off
// and on. The sampling runs in the drain of recorded hits, under the shard's lock.
void get_hits(benchmark::State& state, double curve_sampling_rate) {
  constexpr std::uint64_t kKeys = 64 * 1024;
  PoolConfig<std::uint64_t, std::uint64_t> c;
  c.name = "hits";
  c.max_bytes = kKeys * 2 * 16;
  c.sizer = [](const std::uint64_t&) { return std::uint64_t{16}; };
  c.policy = pagekeeper::EvictionPolicy<std::uint64_t>::lru();
  c.curve_sampling_rate = curve_sampling_rate;
  KeyPool pool(c);
  std::vector<std::uint64_t> order(kKeys);
  for (std::uint64_t k = 0; k < kKeys; ++k) {
    order[k] = (k * 40503) & (kKeys - 1);  // an odd multiplier permutes the keys
    pool.insert(k, k);
  }
  std::size_t i = 0;
  std::uint64_t found = 0;
  for (auto _ : state) {
    found += pool.get(order[i]).has_value();
    i = (i + 1) & (kKeys - 1);
  }
  benchmark::DoNotOptimize(found);
  state.SetItemsProcessed(state.iterations());
}

void BM_PoolGetHitCurvesOff(benchmark::State& state) { get_hits(state, 0.0); }
BENCHMARK(BM_PoolGetHitCurvesOff);
void BM_PoolGetHitCurvesOn(benchmark::State& state) {
  get_hits(state, static_cast<double>(state.range(0)) / 1000.0);
}
BENCHMARK(BM_PoolGetHitCurvesOn)->Arg(10)->Arg(100);  // per mille of keys sampled

}  // namespace

namespace {

// What the ghost of evicted keys costs the insert path: inserts of new keys into a full pool
// (every one evicts one entry, which the ghost remembers, and is looked up in the ghost),
// PoolConfig::ghost_max_keys off and at 4,096 (the embedding cache's).
void insert_evicting(benchmark::State& state, std::uint32_t ghost_max_keys) {
  constexpr std::uint64_t kResident = 64 * 1024;
  PoolConfig<std::uint64_t, std::uint64_t> c;
  c.name = "evicting";
  c.max_bytes = kResident * 16;
  c.sizer = [](const std::uint64_t&) { return std::uint64_t{16}; };
  c.policy = pagekeeper::EvictionPolicy<std::uint64_t>::lru();
  c.ghost_max_keys = ghost_max_keys;
  KeyPool pool(c);
  std::uint64_t next = 0;
  for (; next < kResident; ++next) pool.insert(next, next);
  for (auto _ : state) {
    pool.insert(next, next);
    ++next;
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_PoolInsertEvictingGhostOff(benchmark::State& state) { insert_evicting(state, 0); }
BENCHMARK(BM_PoolInsertEvictingGhostOff);
void BM_PoolInsertEvictingGhostOn(benchmark::State& state) { insert_evicting(state, 4096); }
BENCHMARK(BM_PoolInsertEvictingGhostOn);

}  // namespace
