#include "cli/belady.hpp"

#include <algorithm>
#include <limits>
#include <queue>
#include <stdexcept>
#include <utility>

namespace pagekeeper::cli {

BeladyResult belady_min(const std::vector<std::uint32_t>& keys, const std::vector<std::uint64_t>& sizes,
                        std::uint64_t capacity) {
  if (!sizes.empty() && sizes.size() != keys.size()) {
    throw std::invalid_argument("belady_min: sizes must be empty or one per request");
  }
  constexpr std::uint64_t kNever = std::numeric_limits<std::uint64_t>::max();
  const std::size_t n = keys.size();
  const std::uint32_t key_count = keys.empty() ? 0 : *std::max_element(keys.begin(), keys.end()) + 1;

  // next_use[i]: the position of the next request for keys[i] after i (kNever: none).
  std::vector<std::uint64_t> next_use(n);
  {
    std::vector<std::uint64_t> seen(key_count, kNever);
    for (std::size_t i = n; i-- > 0;) {
      next_use[i] = seen[keys[i]];
      seen[keys[i]] = i;
    }
  }

  // Residents by next use, farthest on top. An entry is stale (skipped when it surfaces)
  // when its key was since evicted or requested again: resident_next then differs.
  std::priority_queue<std::pair<std::uint64_t, std::uint32_t>> by_next_use;
  constexpr std::uint64_t kAbsent = kNever - 1;  // resident_next of a key not resident
  std::vector<std::uint64_t> resident_next(key_count, kAbsent);
  std::vector<std::uint64_t> resident_size(key_count, 0);
  auto farthest = [&]() -> std::pair<std::uint64_t, std::uint32_t> {
    while (!by_next_use.empty()) {
      const auto top = by_next_use.top();
      if (resident_next[top.second] == top.first) return top;
      by_next_use.pop();
    }
    return {kAbsent, 0};
  };

  BeladyResult r;
  std::uint64_t used = 0;
  std::uint64_t resident = 0;
  // Evicts `victim`, the resident farthest() just returned (the top of by_next_use).
  auto evict_farthest = [&](std::uint32_t victim) {
    by_next_use.pop();
    resident_next[victim] = kAbsent;
    used -= resident_size[victim];
    --resident;
    ++r.evictions;
  };
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t key = keys[i];
    const std::uint64_t size = sizes.empty() ? 1 : sizes[i];
    const std::uint64_t next = next_use[i];
    if (resident_next[key] != kAbsent) {
      ++r.hits;
      used -= resident_size[key];
      if (size > capacity) {  // a resize past the capacity: dropped, as the pool drops it
        resident_next[key] = kAbsent;
        --resident;
        continue;
      }
      // Room for a larger copy, farthest first; the key itself is never its own victim.
      resident_next[key] = kAbsent;
      while (used + size > capacity) evict_farthest(farthest().second);
      resident_next[key] = next;
      resident_size[key] = size;
      used += size;
      by_next_use.emplace(next, key);
      continue;
    }
    ++r.misses;
    if (size > capacity) {
      ++r.rejected_oversize;
      continue;
    }
    // Make room while the item is worth more than the farthest resident; else bypass it.
    bool admit = next != kNever;
    while (admit && used + size > capacity) {
      const auto [victim_next, victim] = farthest();
      if (next >= victim_next) {
        admit = false;
        break;
      }
      evict_farthest(victim);
    }
    if (!admit) {
      ++r.bypassed;
      continue;
    }
    resident_next[key] = next;
    resident_size[key] = size;
    used += size;
    ++resident;
    by_next_use.emplace(next, key);
  }
  r.resident_entries = resident;
  r.resident_bytes = used;
  return r;
}

}  // namespace pagekeeper::cli
