// Instantiates every member function of PagedResourcePool (lock-free reads of atomic words
// and reads under the shared lock; each kind of eviction policy), so that clang's
// -Werror=thread-safety checks every access to the pool's shard state and load costs. It
// must compile as it is; the layering tests compile it again against copies of the pool
// headers with one lock removed, and those must fail.
#include <cstdint>
#include <string>
#include <vector>

#include "pagekeeper/pool.hpp"

namespace {

template <class K, class V>
int exercise(pagekeeper::EvictionPolicy<V> policy, K key, V value) {
  pagekeeper::PoolConfig<K, V> config;
  config.name = "probe";
  config.max_bytes = 1 << 20;
  config.sizer = [](const V&) { return std::uint64_t{64}; };
  config.policy = std::move(policy);
  config.curve_sampling_rate = 1.0;
  config.ghost_max_keys = 64;
  pagekeeper::PagedResourcePool<K, V> pool(std::move(config));
  pool.insert(key, value);
  int found = pool.get(key) ? 1 : 0;
  found += pool.contains(key) ? 1 : 0;
  found += pool.load_or_share(key, [&] { return value; }) == value ? 1 : 0;
  const std::vector<V> batch = pool.load_many(
      std::vector<K>{key}, [&](const std::vector<K>& keys) { return std::vector<V>(keys.size(), value); });
  found += static_cast<int>(batch.size());
  if (auto handle = pool.pin(key)) found += 1;
  found += static_cast<int>(pool.snapshot().size() + pool.stats().entry_count);
  found += pool.ghost() ? 1 : 0;
  found += pool.miss_ratio(64) >= 0.0 ? 1 : 0;
  found += pool.miss_cost_seconds() >= 0.0 ? 1 : 0;
  found += pool.verify_invariants().empty() ? 1 : 0;
  pool.evict_at_least(64);
  pool.evict_under_pressure(0.5);
  pool.erase(key);
  pool.clear();
  return found;
}

template <class K, class V>
int exercise_policies(K key, V value) {
  using Policy = pagekeeper::EvictionPolicy<V>;
  return exercise<K, V>(Policy::lru(), key, value) +
         exercise<K, V>(Policy::size_aware_lru(), key, value) +
         exercise<K, V>(Policy::tiny_lfu(), key, value) +
         exercise<K, V>(Policy::custom([](const pagekeeper::EntryView& v, const V&) {
                          return v.last_access_at_ms;
                        }),
                        key, value);
}

}  // namespace

int main() {
  static_assert(pagekeeper::PagedResourcePool<std::uint64_t, std::uint64_t>::lock_free_reads());
  static_assert(!pagekeeper::PagedResourcePool<std::string, std::string>::lock_free_reads());
  const int found = exercise_policies<std::uint64_t, std::uint64_t>(1, 2) +
                    exercise_policies<std::string, std::string>("key", "value");
  return found > 0 ? 0 : 1;
}
