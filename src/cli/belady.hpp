// Belady's MIN with bypass: the most hits any cache of a given capacity can get on a trace
// known in advance. On a miss the cache may decline to store the requested item; when it
// must make room it evicts the resident whose next request lies farthest ahead, and it
// declines (bypasses) an item whose own next request lies farther than every resident's.
// For traces whose requests all have the same size this is the optimum (Belady 1966;
// Mattson et al. 1970 for the bypass form). With mixed sizes optimal caching is NP-hard;
// the same farthest-next-use rule is then a strong heuristic, not a bound.
//
// Thread safety: pure functions.

#pragma once

#include <cstdint>
#include <vector>

namespace pagekeeper::cli {

struct BeladyResult {
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t evictions = 0;
  std::uint64_t bypassed = 0;          // misses not stored
  std::uint64_t rejected_oversize = 0; // misses larger than the capacity on their own
  std::uint64_t resident_entries = 0;  // at the end
  std::uint64_t resident_bytes = 0;
};

// Replays `keys` (dense ids, 0..max) with per-request `sizes` (empty: every size is 1)
// through MIN with bypass at `capacity` size units. A request whose size differs from the
// resident copy's replaces it (a hit, as in `pagekeeper sim`).
// Requires: sizes is empty or as long as keys. Memory: O(requests + distinct keys).
BeladyResult belady_min(const std::vector<std::uint32_t>& keys, const std::vector<std::uint64_t>& sizes,
                        std::uint64_t capacity);

}  // namespace pagekeeper::cli
