// The hit ratio of a trace replayed by several threads at once through one pool, beside the
// same trace replayed by one thread: what the pool's read sampling costs in hits (while threads
// read one shard at the same time its policy is handed one hit in 16; see pool.hpp).
// Thread t of T replays requests t, t + T, t + 2T, ... of the trace (get; insert on a miss),
// all threads released together. One shard, so that the threads meet on it as much as they
// can (the worst case for sampling) and the one-thread figure is the exact replay of the sim
// tables in docs/PERFORMANCE.md.
// Args: capacity in keys; policy (0: LRU, 1: W-TinyLFU); threads. Counter hit_ratio (percent).
// The trace is OLTP from PAGEKEEPER_TRACE_DIR (the ARC traces); skipped without it.

#include <cstdint>
#include <latch>
#include <memory>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>

#include "pagekeeper/pool.hpp"
#include "arc_trace.hpp"

namespace {

using ReplayPool = pagekeeper::PagedResourcePool<std::uint64_t, std::uint64_t>;

void BM_PoolTraceReplayThreads(benchmark::State& state) {
  const auto& keys = pagekeeper::bench::arc_trace_keys("OLTP.lis.zst");
  if (keys.empty()) {
    state.SkipWithError("set PAGEKEEPER_TRACE_DIR to the ARC traces (OLTP)");
    return;
  }
  const auto threads = static_cast<std::size_t>(state.range(2));
  double hit_ratio = 0.0;
  for (auto _ : state) {
    pagekeeper::PoolConfig<std::uint64_t, std::uint64_t> c;
    c.name = "replay";
    c.max_bytes = static_cast<std::uint64_t>(state.range(0));
    c.sizer = [](const std::uint64_t&) { return std::uint64_t{1}; };
    c.policy = state.range(1) == 1 ? pagekeeper::EvictionPolicy<std::uint64_t>::tiny_lfu()
                                   : pagekeeper::EvictionPolicy<std::uint64_t>::lru();
    c.shards = 1;
    ReplayPool pool(c);
    std::latch start(static_cast<std::ptrdiff_t>(threads));
    std::vector<std::thread> replayers;
    for (std::size_t t = 0; t < threads; ++t) {
      replayers.emplace_back([&, t] {
        start.arrive_and_wait();
        for (std::size_t i = t; i < keys.size(); i += threads) {
          if (!pool.get(keys[i])) pool.insert(keys[i], keys[i]);
        }
      });
    }
    for (auto& r : replayers) r.join();
    const auto st = pool.stats();
    hit_ratio = 100.0 * static_cast<double>(st.hits) / static_cast<double>(st.hits + st.misses);
  }
  state.counters["hit_ratio"] = hit_ratio;
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(keys.size()));
}
BENCHMARK(BM_PoolTraceReplayThreads)
    ->ArgsProduct({{1000, 8192}, {0, 1}, {1, 2}})
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
