// Uses the installed pool: a 3-byte LRU budget over 1-byte values keeps the three most
// recently used keys. Exits non-zero, naming the failed check, when the pool misbehaves.
#include <cstdint>
#include <cstdio>
#include <string>

#include "pagekeeper/pool.hpp"
#include "pagekeeper/version.hpp"

namespace {

int failed(const char* what) {
  std::fprintf(stderr, "consumer: %s\n", what);
  return 1;
}

}  // namespace

int main() {
  using Pool = pagekeeper::PagedResourcePool<std::string, std::uint64_t>;
  pagekeeper::PoolConfig<std::string, std::uint64_t> config;
  config.name = "consumer";
  config.max_bytes = 3;
  config.sizer = [](const std::uint64_t&) { return std::uint64_t{1}; };
  config.policy = pagekeeper::EvictionPolicy<std::uint64_t>::lru();
  Pool pool(config);

  for (std::uint64_t i = 0; i < 3; ++i) pool.insert("k" + std::to_string(i), i);
  if (!pool.get("k0")) return failed("k0 missing before any eviction");  // k0 now most recent
  pool.insert("k3", 3);                                                 // evicts k1
  if (pool.contains("k1")) return failed("k1, the least recently used, was kept");
  if (!pool.contains("k0") || !pool.contains("k2") || !pool.contains("k3")) {
    return failed("a recently used key was evicted");
  }
  if (pool.stats().evictions != 1) return failed("expected exactly one eviction");
  std::printf("pagekeeper %s: pool ok (%llu entries)\n", pagekeeper::kVersion,
              static_cast<unsigned long long>(pool.stats().entry_count));
  return 0;
}
