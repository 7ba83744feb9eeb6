// Two pools under one global budget, fed two ARC traces: the budget split that rebalance()
// (budget_allocation.hpp) reaches from SHARDS miss-ratio curves
// (detail/miss_ratio_sampler.hpp), against every static split in 5% steps (the best found
// offline) and the equal split. Arguments: the total budget in keys; what a miss of the first
// pool costs, in misses of the second, in percent (100: every miss costs the same, so cost =
// misses; an adapter load costs far more than an embedding): the rebalancing weighs curves by
// it and every figure is a total miss cost in second-pool misses; the eviction policy of both
// pools (0: exact LRU, the policy the sampled curves model; 1: W-TinyLFU, the embedding
// cache's default). Both pools have one shard, so a pool's misses depend only on its budget.
//
// Traces come from PAGEKEEPER_TRACE_DIR (the ARC traces); the benchmark is skipped without
// them. The pair is P6 (a working set of about 100,000 keys: the hit ratio jumps between
// 65,536 and 131,072 keys) and P3 (scan-heavy) unless PAGEKEEPER_ALLOC_FIRST /
// PAGEKEEPER_ALLOC_SECOND name other files there. PAGEKEEPER_ALLOC_REQUESTS caps the requests
// read from each trace (unset or 0: whole traces). The two traces are interleaved in
// proportion to their lengths (the next request comes from the trace that is behind in its
// fraction), so both run from the start to the end of the replay and the rebalancing sees
// both throughout; a static split's misses do not depend on the interleaving, so each trace
// is replayed alone at each static budget (and remembered across runs of one process).
//
// Counters: dynamic_cost (the rebalancing run), final_split_cost (a static run at the split it
// ended with), best_static_cost and best_static_first_share_pct, equal_split_cost, the ratios
// of the first two to the best and of the final and best splits to the equal split, and the
// first pool's miss ratio at the final split as its sampled curve estimated it and as the
// static replay measured it (in percent).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <benchmark/benchmark.h>

#include "pagekeeper/budget_allocation.hpp"
#include "pagekeeper/detail/miss_ratio_sampler.hpp"
#include "pagekeeper/pool.hpp"
#include "arc_trace.hpp"

namespace {

using pagekeeper::PagedResourcePool;
using pagekeeper::PoolConfig;
using pagekeeper::pool_detail::MissRatioSampler;
using KeyPool = PagedResourcePool<std::uint64_t, std::uint64_t>;

// The requests read from each trace: PAGEKEEPER_ALLOC_REQUESTS, or every one.
std::size_t request_cap() {
  const char* text = std::getenv("PAGEKEEPER_ALLOC_REQUESTS");
  const std::size_t cap = text == nullptr ? 0 : std::strtoull(text, nullptr, 10);
  return cap == 0 ? SIZE_MAX : cap;
}

// The keys of trace `name`, capped by PAGEKEEPER_ALLOC_REQUESTS; empty without the trace.
const std::vector<std::uint64_t>& trace_keys(const std::string& name) {
  return pagekeeper::bench::arc_trace_keys(name, request_cap());
}

std::unique_ptr<KeyPool> key_pool(std::uint64_t capacity, bool tiny_lfu) {
  PoolConfig<std::uint64_t, std::uint64_t> c;
  c.name = "trace";
  c.max_bytes = capacity;
  c.sizer = [](const std::uint64_t&) { return std::uint64_t{1}; };
  c.policy = tiny_lfu ? pagekeeper::EvictionPolicy<std::uint64_t>::tiny_lfu()
                      : pagekeeper::EvictionPolicy<std::uint64_t>::lru();
  c.shards = 1;  // one shard: exact LRU (as the curves assume) or one W-TinyLFU sketch
  return std::make_unique<KeyPool>(c);
}

// One request to `pool`: whether it missed (the key is then inserted).
bool missed(KeyPool& pool, std::uint64_t key) {
  if (pool.get(key)) return false;
  pool.insert(key, key);
  return true;
}

// The misses of trace `name` replayed alone under a fixed budget, remembered per process.
std::uint64_t static_misses(const std::string& name, std::uint64_t budget, bool tiny_lfu) {
  static std::map<std::tuple<std::string, std::uint64_t, bool>, std::uint64_t> known;
  const auto [it, added] = known.try_emplace({name, budget, tiny_lfu}, 0);
  if (!added) return it->second;
  const auto pool = key_pool(budget, tiny_lfu);
  for (const std::uint64_t key : trace_keys(name)) it->second += missed(*pool, key) ? 1 : 0;
  return it->second;
}

struct Replay {
  std::uint64_t misses[2] = {0, 0};
  std::uint64_t final_first_budget = 0;
  double first_sampled_miss_ratio = 0.0;  // the first pool's curve at final_first_budget
  double cost(const double (&miss_cost)[2]) const {
    return miss_cost[0] * static_cast<double>(misses[0]) + miss_cost[1] * static_cast<double>(misses[1]);
  }
};

// Replays the two traces interleaved in proportion to their lengths, starting at the equal
// split and rebalancing from the pools' sampled curves every `rebalance_every` requests.
Replay replay_rebalancing(const std::vector<std::uint64_t>& a, const std::vector<std::uint64_t>& b,
                          std::uint64_t total, bool tiny_lfu, std::size_t rebalance_every,
                          const double (&miss_cost)[2]) {
  std::uint64_t budgets[2] = {total / 2, total - total / 2};
  std::unique_ptr<KeyPool> pools[2] = {key_pool(budgets[0], tiny_lfu), key_pool(budgets[1], tiny_lfu)};
  MissRatioSampler samplers[2] = {MissRatioSampler(0.1, 8192), MissRatioSampler(0.1, 8192)};
  double window_accesses[2] = {0, 0};
  const std::vector<std::uint64_t>* traces[2] = {&a, &b};
  std::size_t next[2] = {0, 0};
  Replay out;
  for (std::size_t done = 0; done < a.size() + b.size(); ++done) {
    // The trace behind in its fraction goes next: next[0] / |a| <= next[1] / |b|.
    const int p = next[1] == b.size() || (next[0] < a.size() && next[0] * b.size() <= next[1] * a.size())
                      ? 0
                      : 1;
    const std::uint64_t key = (*traces[p])[next[p]++];
    out.misses[p] += missed(*pools[p], key) ? 1 : 0;
    samplers[p].access(MissRatioSampler::sample_hash(key), 1);
    window_accesses[p] += 1;
    if ((done + 1) % rebalance_every != 0) continue;
    std::vector<pagekeeper::PoolDemand> demand;
    for (int q = 0; q < 2; ++q) {
      auto histogram = std::make_shared<pagekeeper::pool_detail::ReuseHistogram>(samplers[q].histogram());
      demand.push_back({"pool" + std::to_string(q), budgets[q], total / 20, window_accesses[q], miss_cost[q],
                        [histogram](std::uint64_t bytes) { return histogram->miss_ratio(static_cast<double>(bytes)); }});
      window_accesses[q] = 0;
    }
    const auto moved = pagekeeper::rebalance(
        demand, {.step = std::max<std::uint64_t>(total / 40, 1), .hysteresis = 0.002, .max_moves = 4});
    for (int q = 0; q < 2; ++q) {
      budgets[q] = moved[q];
      pools[q]->set_max_bytes(budgets[q]);
    }
  }
  out.final_first_budget = budgets[0];
  out.first_sampled_miss_ratio = samplers[0].histogram().miss_ratio(static_cast<double>(budgets[0]));
  return out;
}

// Args: total budget in keys; a first-pool miss's cost in second-pool misses, in percent;
// the pools' policy (0: LRU, 1: W-TinyLFU).
void BM_BrokerAllocationTwoTraces(benchmark::State& state) {
  const char* first_env = std::getenv("PAGEKEEPER_ALLOC_FIRST");
  const char* second_env = std::getenv("PAGEKEEPER_ALLOC_SECOND");
  const std::string names[2] = {first_env ? first_env : "P6.lis.zst", second_env ? second_env : "P3.lis.zst"};
  const auto& first = trace_keys(names[0]);
  const auto& second = trace_keys(names[1]);
  if (first.empty() || second.empty()) {
    state.SkipWithError("set PAGEKEEPER_TRACE_DIR to the ARC traces (P6, P3)");
    return;
  }
  const auto total = static_cast<std::uint64_t>(state.range(0));
  const double miss_cost[2] = {static_cast<double>(state.range(1)) / 100.0, 1.0};
  const bool tiny_lfu = state.range(2) != 0;
  Replay dynamic;
  for (auto _ : state) dynamic = replay_rebalancing(first, second, total, tiny_lfu, 40'000, miss_cost);
  // A static split's cost: each trace alone at its share.
  const auto static_cost = [&](std::uint64_t first_budget) {
    return miss_cost[0] * static_cast<double>(static_misses(names[0], first_budget, tiny_lfu)) +
           miss_cost[1] * static_cast<double>(static_misses(names[1], total - first_budget, tiny_lfu));
  };
  double best = 0.0;
  std::uint64_t best_share = 0;
  for (int step = 1; step < 20; ++step) {
    const double cost = static_cost(total * static_cast<std::uint64_t>(step) / 20);
    if (best_share == 0 || cost < best) {
      best = cost;
      best_share = static_cast<std::uint64_t>(step) * 5;
    }
  }
  const double equal = static_cost(total / 2);
  const double final_split = static_cost(dynamic.final_first_budget);
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
  state.counters["dynamic_vs_equal"] = dynamic.cost(miss_cost) / equal;
  state.counters["first_sampled_miss_pct_at_final"] = 100.0 * dynamic.first_sampled_miss_ratio;
  state.counters["first_actual_miss_pct_at_final"] =
      100.0 * static_cast<double>(static_misses(names[0], dynamic.final_first_budget, tiny_lfu)) /
      static_cast<double>(first.size());
}
// Budgets around P6's jump; miss costs 1x and 10x; LRU and W-TinyLFU.
BENCHMARK(BM_BrokerAllocationTwoTraces)
    ->ArgsProduct({{65536, 131072}, {100, 1000}, {0, 1}})
    ->Iterations(1)
    ->Unit(benchmark::kSecond);

}  // namespace

namespace {

// What miss-ratio sampling costs a hit: get() hits on 64 Ki keys walked in a fixed random
// order (the shape of pool_bench's BM_PoolGetHit), with PoolConfig::curve_sampling_rate off
// and on. The sampling runs in the drain of recorded hits, under the shard's lock.
void get_hits(benchmark::State& state, double curve_sampling_rate, std::uint32_t curve_max_samples) {
  constexpr std::uint64_t kKeys = 64 * 1024;
  PoolConfig<std::uint64_t, std::uint64_t> c;
  c.name = "hits";
  c.max_bytes = kKeys * 2 * 16;
  c.sizer = [](const std::uint64_t&) { return std::uint64_t{16}; };
  c.policy = pagekeeper::EvictionPolicy<std::uint64_t>::lru();
  c.curve_sampling_rate = curve_sampling_rate;
  c.curve_max_samples = curve_max_samples;
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

void BM_PoolGetHitCurvesOff(benchmark::State& state) { get_hits(state, 0.0, 0); }
BENCHMARK(BM_PoolGetHitCurvesOff);
// Args: per mille of keys sampled at first; curve_max_samples (the pool's default is 4,096).
// 1000 is pagekeeperd's rate under a global budget: every key until curve_max_samples are
// tracked, then fewer (here 4,096 of 64 Ki keys: 6% of the hits are sampled).
void BM_PoolGetHitCurvesOn(benchmark::State& state) {
  get_hits(state, static_cast<double>(state.range(0)) / 1000.0, static_cast<std::uint32_t>(state.range(1)));
}
BENCHMARK(BM_PoolGetHitCurvesOn)
    ->Args({10, 4096})
    ->Args({100, 4096})
    ->Args({1000, 4096})
    ->Args({1000, 2048})
    ->Args({1000, 1024});

// What the cap on sampled keys costs the curve's accuracy: a trace replayed through a pool of
// 8 shards that holds every key (so the curve sees every access; curve_sampling_rate 1, as
// pagekeeperd sets it), with Arg curve_max_samples, against the same pool tracking every key
// (twice the distinct keys: the exact LRU curve at the histogram's resolution). Counters: the mean and the largest
// absolute difference of the two miss ratios at 65 cache sizes spaced evenly in log scale from
// 16 keys to the trace's distinct keys. The trace, whole: PAGEKEEPER_CURVE_TRACE in
// PAGEKEEPER_TRACE_DIR (default OLTP.lis.zst); skipped without it.
std::unique_ptr<KeyPool> curve_pool(std::uint32_t max_samples) {
  PoolConfig<std::uint64_t, std::uint64_t> c;
  c.name = "curve";
  c.max_bytes = std::uint64_t{1} << 40;
  c.sizer = [](const std::uint64_t&) { return std::uint64_t{1}; };
  c.policy = pagekeeper::EvictionPolicy<std::uint64_t>::lru();
  c.shards = 8;
  c.curve_sampling_rate = 1.0;
  c.curve_max_samples = max_samples;
  return std::make_unique<KeyPool>(c);
}

void replay_all(KeyPool& pool, const std::vector<std::uint64_t>& keys) {
  for (const std::uint64_t key : keys) pool.load_or_share(key, [key] { return key; });
}

void BM_SampledCurveError(benchmark::State& state) {
  const char* trace_env = std::getenv("PAGEKEEPER_CURVE_TRACE");
  const std::string trace = trace_env != nullptr ? trace_env : "OLTP.lis.zst";
  const auto& keys = pagekeeper::bench::arc_trace_keys(trace);
  if (keys.empty()) {
    state.SkipWithError("set PAGEKEEPER_TRACE_DIR to the ARC traces");
    return;
  }
  static std::map<std::string, std::pair<std::unique_ptr<KeyPool>, double>> exact_by_trace;
  auto& [exact, distinct] = exact_by_trace[trace];
  if (!exact) {
    distinct = static_cast<double>(std::set<std::uint64_t>(keys.begin(), keys.end()).size());
    exact = curve_pool(static_cast<std::uint32_t>(std::min<double>(distinct * 2 + 1024, 1u << 30)));
    replay_all(*exact, keys);
  }
  double mean = 0.0;
  double largest = 0.0;
  for (auto _ : state) {
    const auto sampled = curve_pool(static_cast<std::uint32_t>(state.range(0)));
    replay_all(*sampled, keys);
    mean = 0.0;
    largest = 0.0;
    constexpr int kSizes = 65;
    for (int i = 0; i < kSizes; ++i) {
      const double keys_cached = std::exp2(4.0 + (std::log2(distinct) - 4.0) * i / (kSizes - 1));
      const auto bytes = static_cast<std::uint64_t>(keys_cached);
      const double error = std::abs(sampled->estimated_miss_ratio(bytes) - exact->estimated_miss_ratio(bytes));
      mean += error / kSizes;
      largest = std::max(largest, error);
    }
  }
  state.counters["mean_abs_error"] = mean;
  state.counters["max_abs_error"] = largest;
}
BENCHMARK(BM_SampledCurveError)->Arg(1024)->Arg(2048)->Arg(4096)->Arg(8192)->Iterations(1)->Unit(benchmark::kSecond);

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
