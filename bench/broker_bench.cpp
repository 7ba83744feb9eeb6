// Benchmarks of PressureBroker passes over real PagedResourcePools. Baseline in the same
// binary: the least any pass must do, reading capacity and pressure of every pool.

#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "pagekeeper/broker.hpp"
#include "pagekeeper/host_memory.hpp"
#include "pagekeeper/pool.hpp"

namespace {

using pagekeeper::EvictionPolicy;
using pagekeeper::PagedResourcePool;
using pagekeeper::PoolConfig;
using pagekeeper::PressureBroker;
using pagekeeper::ResourcePool;

using BlobPool = PagedResourcePool<std::string, std::uint64_t>;

constexpr int kPools = 100;

// `count` pools of 1 MiB, each holding ten 10 KiB entries (pressure ~0.1: no action needed).
std::vector<std::shared_ptr<ResourcePool>> idle_pools(int count) {
  std::vector<std::shared_ptr<ResourcePool>> pools;
  for (int p = 0; p < count; ++p) {
    PoolConfig<std::string, std::uint64_t> c;
    c.name = "pool-" + std::to_string(p);
    c.max_bytes = 1 << 20;
    c.sizer = [](const std::uint64_t& v) { return v; };
    c.policy = EvictionPolicy<std::uint64_t>::lru();
    auto pool = std::make_shared<BlobPool>(c);
    for (int e = 0; e < 10; ++e) pool->insert("entry-" + std::to_string(e), 10 * 1024);
    pools.push_back(std::move(pool));
  }
  return pools;
}

std::unique_ptr<PressureBroker> broker_over(
    const std::vector<std::shared_ptr<ResourcePool>>& pools,
    std::shared_ptr<const pagekeeper::HostMemorySource> host = nullptr) {
  auto broker = std::make_unique<PressureBroker>(pagekeeper::BrokerConfig{}, std::move(host));
  for (const auto& pool : pools) broker->register_pool(pool);
  return broker;
}

// Baseline: capacity and pressure of every pool, which every pass has to read.
void BM_ReadPressure100Pools(benchmark::State& state) {
  const auto pools = idle_pools(kPools);
  for (auto _ : state) {
    double global = 0.0;
    for (const auto& pool : pools) {
      if (pool->capacity_bytes() == 0) continue;
      global = std::max(global, pool->pressure());
    }
    benchmark::DoNotOptimize(global);
  }
}
BENCHMARK(BM_ReadPressure100Pools);

void BM_BrokerRelieveIdle100Pools(benchmark::State& state) {
  const auto broker = broker_over(idle_pools(kPools));
  for (auto _ : state) {
    auto report = broker->relieve();
    if (report.triggered) state.SkipWithError("an idle pass acted");
    benchmark::DoNotOptimize(report);
  }
}
BENCHMARK(BM_BrokerRelieveIdle100Pools);

// The same pass with this machine's real host-memory reading (cgroup v2 or /proc/meminfo).
void BM_BrokerRelieveIdle100PoolsWithHostMemory(benchmark::State& state) {
  const auto broker =
      broker_over(idle_pools(kPools), std::make_shared<pagekeeper::HostMemory>());
  for (auto _ : state) {
    auto report = broker->relieve();
    benchmark::DoNotOptimize(report);
  }
}
BENCHMARK(BM_BrokerRelieveIdle100PoolsWithHostMemory);

void BM_BrokerSnapshot100Pools(benchmark::State& state) {
  const auto broker = broker_over(idle_pools(kPools));
  for (auto _ : state) {
    auto snap = broker->snapshot();
    benchmark::DoNotOptimize(snap);
  }
}
BENCHMARK(BM_BrokerSnapshot100Pools);

// Three pools that sample their curves (64 shards each, the most a pool chooses; 16 Ki keys of
// 64 bytes looked up at random, a quarter more than fits) under one global budget: every pass
// divides it (fit_budgets and rebalance() with its lookahead evaluate the curves), so the pass
// costs what the curves cost. Argument: 1 with the global budget, 0 without (the baseline:
// the same pools, no division).
std::vector<std::shared_ptr<ResourcePool>> utility_pools() {
  std::vector<std::shared_ptr<ResourcePool>> pools;
  for (int p = 0; p < 3; ++p) {
    PoolConfig<std::string, std::uint64_t> c;
    c.name = "utility-" + std::to_string(p);
    c.max_bytes = (16 << 10) * 64 * 4 / 5;
    c.sizer = [](const std::uint64_t& v) { return v; };
    c.policy = EvictionPolicy<std::uint64_t>::lru();
    c.shards = 64;
    c.curve_sampling_rate = 1.0;
    auto pool = std::make_shared<BlobPool>(c);
    std::uint64_t key = static_cast<std::uint64_t>(p) + 1;
    for (int i = 0; i < 200'000; ++i) {
      key = key * 6364136223846793005ULL + 1442695040888963407ULL;
      const std::string name = "key-" + std::to_string((key >> 33) % (16 << 10));
      pool->load_or_share(name, [] { return std::uint64_t{64}; });
    }
    pools.push_back(std::move(pool));
  }
  return pools;
}

void BM_BrokerRelieveThreeUtilityPools(benchmark::State& state) {
  const auto pools = utility_pools();
  pagekeeper::BrokerConfig config;
  if (state.range(0) != 0) {
    for (const auto& pool : pools) config.memory_budget_bytes += pool->capacity_bytes();
  }
  PressureBroker broker(config);
  for (const auto& pool : pools) broker.register_pool(pool);
  for (auto _ : state) {
    auto report = broker.relieve();
    benchmark::DoNotOptimize(report);
  }
}
BENCHMARK(BM_BrokerRelieveThreeUtilityPools)->Arg(0)->Arg(1);

// One curve evaluation of one of those pools (every shard's histogram merged).
void BM_UtilityPoolMissRatio(benchmark::State& state) {
  const auto pools = utility_pools();
  const auto& pool = dynamic_cast<const BlobPool&>(*pools[0]);
  std::uint64_t bytes = pool.capacity_bytes();
  for (auto _ : state) {
    benchmark::DoNotOptimize(pool.miss_ratio(bytes));
    bytes ^= 64;
  }
}
BENCHMARK(BM_UtilityPoolMissRatio);

void BM_HostMemoryRead(benchmark::State& state) {
  const pagekeeper::HostMemory host;
  for (auto _ : state) {
    auto reading = host.read();
    benchmark::DoNotOptimize(reading);
  }
}
BENCHMARK(BM_HostMemoryRead);

}  // namespace
