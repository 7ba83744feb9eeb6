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

void BM_HostMemoryRead(benchmark::State& state) {
  const pagekeeper::HostMemory host;
  for (auto _ : state) {
    auto reading = host.read();
    benchmark::DoNotOptimize(reading);
  }
}
BENCHMARK(BM_HostMemoryRead);

}  // namespace
