// pagekeeper/detail/window_trials.hpp
//
// WindowTrials: how W-TinyLFU's window share is chosen, by measuring rather than guessing.
// A few miniature W-TinyLFU caches, each with a fixed window share, replay the requests of a
// spatial sample of the keys (those whose hash falls in 1/rate of the hash space, SHARDS'
// sampling) at 1/rate of the capacity; after every period the policy adopts the share of the
// trial with the most hits lately (an exponentially decayed count). Spatial sampling keeps
// each key's whole request stream, so a trial sees the reuse pattern of the full cache at a
// smaller scale (Waldspurger et al., "Cache Modeling and Optimization using Miniature
// Simulations", USENIX ATC 2017). Small caches are tried unsampled.
//
// Internal to PagedResourcePool (pagekeeper/pool.hpp): not part of the public API.
// Not thread-safe: owned by one shard's policy, used under the shard's exclusive lock.

#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_map>

#include "pagekeeper/detail/link_list.hpp"

namespace pagekeeper::pool_detail {

template <class Entry>
class TinyLfuPolicy;

class WindowTrials {
 public:
  // The window shares tried: from Caffeine's 1% (frequency-biased traces) to recency-biased.
  static constexpr std::array<double, 7> kShares = {0.01, 0.03, 0.08, 0.15, 0.25, 0.4, 0.6};

  // For a shard of `capacity` bytes holding about `entries` entries at the mean size, with
  // each trial simulating about `trial_entries` of them. Throws std::bad_alloc.
  WindowTrials(std::uint64_t capacity, std::size_t entries, std::size_t trial_entries, std::uint64_t seed);
  ~WindowTrials();
  WindowTrials(const WindowTrials&) = delete;
  WindowTrials& operator=(const WindowTrials&) = delete;

  // One request for hash h of `size` bytes. Returns true when a period ended and best_share()
  // may have changed. A trial that cannot allocate stops counting (it then loses every
  // comparison); the pool is not affected.
  // Inline: most requests are outside the sample, and every replayed hit comes here.
  bool request(std::uint64_t h, std::uint64_t size) noexcept {
    if (!sampled(h)) return false;
    return replay(h, size);
  }

  double best_share() const noexcept { return kShares[best_]; }

 private:
  struct Node : Link {
    std::uint64_t hash = 0;
    std::uint64_t size = 0;
    std::uint32_t policy_tag : 2 = 0;  // NOLINT(readability-magic-numbers)
    std::uint32_t pins() const noexcept { return 0; }
    std::int64_t last_access() const noexcept { return 0; }
  };
  struct Context {
    std::uint64_t size(const Node* n) const noexcept { return n->size; }
    std::uint64_t hash(const Node* n) const noexcept { return n->hash; }
  };
  struct Trial;

  // request() of a sampled hash.
  bool replay(std::uint64_t h, std::uint64_t size) noexcept;

  // SHARDS' spatial sample: a fixed 1/rate of the hash space (rate a power of two).
  bool sampled(std::uint64_t h) const noexcept { return (((h * 0x9e3779b97f4a7c15ULL) >> 40) & (rate_ - 1)) == 0; }

  std::uint64_t rate_ = 1;
  std::uint64_t requests_ = 0;
  std::uint64_t period_ = 0;
  std::size_t best_ = 0;
  std::array<std::unique_ptr<Trial>, kShares.size()> trials_;
};

}  // namespace pagekeeper::pool_detail
