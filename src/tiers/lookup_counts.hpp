// How the tiers count a batched lookup: each key found is a hit, each other key a miss,
// added once per batch.
//
// Thread safety: the counters are atomics added with relaxed ordering (statistics, read
// without ordering against the records); any thread may count.

#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pagekeeper {

inline void count_lookups(const std::vector<std::optional<std::string>>& found, std::atomic<std::uint64_t>& hits,
                          std::atomic<std::uint64_t>& misses) {
  const auto hit = static_cast<std::uint64_t>(
      std::count_if(found.begin(), found.end(), [](const std::optional<std::string>& r) { return r.has_value(); }));
  hits.fetch_add(hit, std::memory_order_relaxed);
  misses.fetch_add(found.size() - hit, std::memory_order_relaxed);
}

}  // namespace pagekeeper
