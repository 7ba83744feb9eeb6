// Real PagedResourcePools of float vectors for the broker tests that need the real pool (its
// LRU order, pins, ghost and curve): 4 bytes per float, so a vector of 25 is a 100-byte entry.
//
// Thread safety: as PagedResourcePool.

#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "pagekeeper/pool.hpp"

namespace pagekeeper::testing {

using VectorPool = PagedResourcePool<std::string, std::vector<float>>;

// An LRU pool named `name` of `max_bytes`; callers set further options before building it.
inline PoolConfig<std::string, std::vector<float>> vector_pool_config(std::string name, std::uint64_t max_bytes) {
  PoolConfig<std::string, std::vector<float>> config;
  config.name = std::move(name);
  config.max_bytes = max_bytes;
  config.sizer = [](const std::vector<float>& v) { return static_cast<std::uint64_t>(v.size() * 4); };
  config.policy = EvictionPolicy<std::vector<float>>::lru();
  return config;
}

}  // namespace pagekeeper::testing
