// Benchmarks of PagedResourcePool's hot paths, each beside a baseline measured in the same
// binary: a plain std::mutex + std::unordered_map + std::list LRU.

#include <malloc.h>
#include <unistd.h>

#include <cstdio>

#include <algorithm>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <random>
#include <unordered_map>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include "pagekeeper/pool.hpp"

namespace {

using pagekeeper::EvictionPolicy;
using pagekeeper::PagedResourcePool;
using pagekeeper::PoolConfig;

using U64Pool = PagedResourcePool<std::uint64_t, std::uint64_t>;

constexpr std::uint64_t kWorkingSet = 64 * 1024;

std::unique_ptr<U64Pool> make_u64_pool(std::uint64_t entries, std::uint32_t shards = 0,
                                       std::uint32_t lru_refresh_ms = 0,
                                       EvictionPolicy<std::uint64_t> policy = EvictionPolicy<std::uint64_t>::lru()) {
  PoolConfig<std::uint64_t, std::uint64_t> c;
  c.name = "bench";
  c.max_bytes = entries * 16;
  c.sizer = [](const std::uint64_t&) { return std::uint64_t{16}; };
  c.policy = std::move(policy);
  c.shards = shards;
  c.lru_refresh_ms = lru_refresh_ms;
  return std::make_unique<U64Pool>(c);
}

// A random permutation walk over the working set, distinct per thread.
std::vector<std::uint64_t> access_sequence(int thread) {
  std::vector<std::uint64_t> keys(kWorkingSet);
  for (std::uint64_t i = 0; i < kWorkingSet; ++i) keys[i] = i;
  std::mt19937_64 rng(1234 + static_cast<std::uint64_t>(thread));
  std::shuffle(keys.begin(), keys.end(), rng);
  return keys;
}

// The baseline: the classic single-mutex LRU.
class MutexLru {
 public:
  explicit MutexLru(std::size_t capacity) : capacity_(capacity) { map_.reserve(capacity); }
  std::optional<std::uint64_t> get(std::uint64_t k) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(k);
    if (it == map_.end()) return std::nullopt;
    order_.splice(order_.begin(), order_, it->second);
    return it->second->second;
  }
  void put(std::uint64_t k, std::uint64_t v) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(k);
    if (it != map_.end()) {
      it->second->second = v;
      order_.splice(order_.begin(), order_, it->second);
      return;
    }
    order_.emplace_front(k, v);
    map_[k] = order_.begin();
    if (map_.size() > capacity_) {
      map_.erase(order_.back().first);
      order_.pop_back();
    }
  }

 private:
  std::mutex mu_;
  std::size_t capacity_;
  std::list<std::pair<std::uint64_t, std::uint64_t>> order_;
  std::unordered_map<std::uint64_t, std::list<std::pair<std::uint64_t, std::uint64_t>>::iterator> map_;
};

std::unique_ptr<U64Pool> g_pool;
std::unique_ptr<U64Pool> g_refresh_pool;
std::unique_ptr<MutexLru> g_baseline;

// Uniformly random hits over the working set, distinct per thread: 1M draws, so the walk
// does not repeat one permutation of the 64k keys. A repeated permutation (access_sequence)
// is a friendly case for a list-based LRU: after the first pass the list holds the keys in
// access order, so each splice touches the node of the key accessed next and prefetches it.
constexpr std::size_t kRandomDraws = std::size_t{1} << 20;
std::vector<std::uint64_t> random_sequence(int thread) {
  std::vector<std::uint64_t> keys(kRandomDraws);
  std::mt19937_64 rng(4321 + static_cast<std::uint64_t>(thread));
  for (auto& k : keys) k = rng() & (kWorkingSet - 1);
  return keys;
}

// The measured loop shared by the get-hit benchmarks: each thread walks its own permutation
// of the working set, which thread 0 has loaded into `cache` before the loop starts. The
// pointer is read only inside the loop, after the threads' start barrier: thread 0 may be
// replacing it (and destroying the previous run's cache) until then.
template <class Cache>
void get_hit_loop(benchmark::State& state, const std::unique_ptr<Cache>& cache,
                  bool uniform_random = false) {
  const auto keys = uniform_random ? random_sequence(state.thread_index())
                                   : access_sequence(state.thread_index());
  const std::size_t mask = keys.size() - 1;
  std::size_t i = 0;
  std::uint64_t found = 0;
  for (auto _ : state) {
    found += cache->get(keys[i]).has_value();
    i = (i + 1) & mask;
  }
  benchmark::DoNotOptimize(found);
  state.SetItemsProcessed(state.iterations());
  if (found != static_cast<std::uint64_t>(state.iterations())) state.SkipWithError("miss on hit path");
}

std::unique_ptr<U64Pool> make_loaded_pool(std::uint32_t lru_refresh_ms,
                                          EvictionPolicy<std::uint64_t> policy = EvictionPolicy<std::uint64_t>::lru()) {
  auto pool = make_u64_pool(kWorkingSet * 2, 0, lru_refresh_ms, std::move(policy));
  for (std::uint64_t i = 0; i < kWorkingSet; ++i) pool->insert(i, i);
  return pool;
}

void BM_PoolGetHit(benchmark::State& state) {
  if (state.thread_index() == 0) g_pool = make_loaded_pool(0);
  get_hit_loop(state, g_pool);
  if (state.thread_index() == 0) state.counters["shards"] = g_pool->shard_count();
}
BENCHMARK(BM_PoolGetHit)->Threads(1)->Threads(2)->UseRealTime();

// BM_PoolGetHit on a W-TinyLFU pool: the hit path is the same; the drain also counts each
// read in the shard's frequency sketch and moves entries between the policy's regions.
void BM_PoolGetHitTinyLfu(benchmark::State& state) {
  if (state.thread_index() == 0) g_pool = make_loaded_pool(0, EvictionPolicy<std::uint64_t>::tiny_lfu());
  get_hit_loop(state, g_pool);
}
BENCHMARK(BM_PoolGetHitTinyLfu)->Threads(1)->Threads(2)->UseRealTime();

// The same with a 1 s promotion delay (PoolConfig::lru_refresh_ms, CacheLib's lruRefreshTime).
void BM_PoolGetHitRefresh1s(benchmark::State& state) {
  if (state.thread_index() == 0) g_refresh_pool = make_loaded_pool(1000);
  get_hit_loop(state, g_refresh_pool);
}
BENCHMARK(BM_PoolGetHitRefresh1s)->Threads(1)->Threads(2)->UseRealTime();

void BM_BaselineMutexLruGetHit(benchmark::State& state) {
  if (state.thread_index() == 0) {
    g_baseline = std::make_unique<MutexLru>(kWorkingSet * 2);
    for (std::uint64_t i = 0; i < kWorkingSet; ++i) g_baseline->put(i, i);
  }
  get_hit_loop(state, g_baseline);
}
BENCHMARK(BM_BaselineMutexLruGetHit)->Threads(1)->Threads(2)->UseRealTime();

// The same two on uniformly random hits (see random_sequence).
void BM_PoolGetHitUniform(benchmark::State& state) {
  if (state.thread_index() == 0) g_pool = make_loaded_pool(0);
  get_hit_loop(state, g_pool, true);
}
BENCHMARK(BM_PoolGetHitUniform)->Threads(1)->Threads(2)->UseRealTime();

void BM_BaselineMutexLruGetHitUniform(benchmark::State& state) {
  if (state.thread_index() == 0) {
    g_baseline = std::make_unique<MutexLru>(kWorkingSet * 2);
    for (std::uint64_t i = 0; i < kWorkingSet; ++i) g_baseline->put(i, i);
  }
  get_hit_loop(state, g_baseline, true);
}
BENCHMARK(BM_BaselineMutexLruGetHitUniform)->Threads(1)->Threads(2)->UseRealTime();

// Keys for the insert benchmarks: a bijective scramble of a counter, so keys are spread like
// real ones (content hashes, ids) rather than sequential, which would hand an identity-hashed
// std::unordered_map perfectly sequential buckets.
std::uint64_t scrambled(std::uint64_t i) { return i * 0x9E3779B97F4A7C15ULL; }

// Insert of a new key into a full pool: each insert evicts one entry. Arg = resident entries.
void insert_evict_loop(benchmark::State& state, EvictionPolicy<std::uint64_t> policy) {
  const auto resident = static_cast<std::uint64_t>(state.range(0));
  auto pool = make_u64_pool(resident, 0, 0, std::move(policy));
  for (std::uint64_t i = 0; i < resident; ++i) pool->insert(scrambled(i), i);
  std::uint64_t next = resident;
  for (auto _ : state) {
    pool->insert(scrambled(next), next);
    ++next;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["evictions"] = static_cast<double>(pool->stats().evictions);
}

void BM_PoolInsertEvict(benchmark::State& state) { insert_evict_loop(state, EvictionPolicy<std::uint64_t>::lru()); }
BENCHMARK(BM_PoolInsertEvict)->Arg(10'000)->Arg(100'000)->Arg(1'000'000);

// The same on a W-TinyLFU pool: each insert also counts the key in the sketch, and each
// eviction compares the window's candidate with the main region's victim (a new key always
// loses to a resident one here, so the candidate is the one evicted).
void BM_PoolInsertEvictTinyLfu(benchmark::State& state) {
  insert_evict_loop(state, EvictionPolicy<std::uint64_t>::tiny_lfu());
}
BENCHMARK(BM_PoolInsertEvictTinyLfu)->Arg(10'000)->Arg(100'000)->Arg(1'000'000);

// The baseline's insert of a new key into a full cache, for the same sizes: how much of the
// growth from 10k to 1M entries is the memory hierarchy rather than the pool.
void BM_BaselineMutexLruInsertEvict(benchmark::State& state) {
  const auto resident = static_cast<std::uint64_t>(state.range(0));
  MutexLru lru(resident);
  for (std::uint64_t i = 0; i < resident; ++i) lru.put(scrambled(i), i);
  std::uint64_t next = resident;
  for (auto _ : state) {
    lru.put(scrambled(next), next);
    ++next;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BaselineMutexLruInsertEvict)->Arg(10'000)->Arg(100'000)->Arg(1'000'000);

// The machine's cost of one random cache line, for reading the insert figures: a dependent
// walk (each load's address comes from the previous one) over a random cyclic permutation of
// 64-byte lines spread over Arg MiB. Up to the caches' size it measures a cache hit, past it
// a memory access with its TLB miss: the wait a pool larger than the caches meets on every
// line of its table or entries that it did not start loading early.
void BM_RandomLineLatency(benchmark::State& state) {
  const auto lines = static_cast<std::size_t>(state.range(0)) * (std::size_t{1} << 20) / 64;
  struct alignas(64) Line {
    std::size_t next;
  };
  std::vector<Line> memory(lines);
  std::vector<std::size_t> order(lines);
  for (std::size_t i = 0; i < lines; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937_64(7));
  for (std::size_t i = 0; i < lines; ++i) memory[order[i]].next = order[(i + 1) % lines];
  std::size_t at = order[0];
  for (auto _ : state) {
    for (int k = 0; k < 1000; ++k) at = memory[at].next;
    benchmark::DoNotOptimize(at);
  }
  state.SetItemsProcessed(state.iterations() * 1000);
  // Seconds per line (shown as e.g. 170n): the rate of lines, inverted.
  state.counters["per_line"] = benchmark::Counter(static_cast<double>(state.iterations()) * 1000,
                                                  benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_RandomLineLatency)->Arg(1)->Arg(4)->Arg(16)->Arg(64);

// Resident bytes the process gains per entry beyond sizeof(key) + sizeof(value), measured
// as the growth of its resident set (/proc/self/statm) around filling a pool with 1M
// uint64 -> uint64 entries: the hash table (whose arrays are mmap'd when large), the arena's
// per-entry share (mapped directly) and the pool's own lists and heap allocations; excludes
// nothing.
std::uint64_t resident_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long long size_pages = 0;
  unsigned long long resident_pages = 0;
  const int n = std::fscanf(f, "%llu %llu", &size_pages, &resident_pages);
  std::fclose(f);
  return n == 2 ? resident_pages * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE)) : 0;
}

void BM_PoolMetadataOverhead(benchmark::State& state) {
  constexpr std::uint64_t kEntries = 1'000'000;
  double per_entry = 0;
  for (auto _ : state) {
    malloc_trim(0);
    const auto rss_before = resident_bytes();
    {
      auto pool = make_u64_pool(kEntries);
      for (std::uint64_t i = 0; i < kEntries; ++i) pool->insert(i, i);
      const auto rss_after = resident_bytes();
      per_entry = (static_cast<double>(rss_after) - static_cast<double>(rss_before)) / kEntries -
                  2 * sizeof(std::uint64_t);
    }
  }
  if (per_entry <= 0) state.SkipWithError("could not read /proc/self/statm");
  state.counters["overhead_bytes_per_entry"] = per_entry;
  state.counters["entry_header_bytes"] = static_cast<double>(U64Pool::entry_header_bytes());
}
BENCHMARK(BM_PoolMetadataOverhead)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace

namespace {

// load_many on keys never seen before (64 per call, a trivial loader): the cost the pool adds
// on the all-miss path of a batch (single-flight slots, inserts, evictions at steady state).
void BM_PoolLoadManyAllMiss(benchmark::State& state) {
  const auto batch = static_cast<std::uint64_t>(state.range(0));
  PoolConfig<std::uint64_t, std::uint64_t> c;
  c.name = "bench-miss";
  c.max_bytes = std::uint64_t{1} << 24;
  c.sizer = [](const std::uint64_t&) { return std::uint64_t{64}; };
  c.policy = EvictionPolicy<std::uint64_t>::size_aware_lru();
  U64Pool pool(c);
  std::vector<std::uint64_t> keys(batch);
  std::uint64_t next = 0;
  for (auto _ : state) {
    for (auto& k : keys) k = next++;
    auto values = pool.load_many(keys, [](const std::vector<std::uint64_t>& ks) { return ks; });
    benchmark::DoNotOptimize(values.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch));
}
BENCHMARK(BM_PoolLoadManyAllMiss)->Arg(1)->Arg(64);

}  // namespace
