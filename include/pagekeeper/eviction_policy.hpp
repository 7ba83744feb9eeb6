// pagekeeper/eviction_policy.hpp
//
// EvictionPolicy<V>: the order in which a PagedResourcePool gives entries back when it must
// free bytes. Three kinds:
//
//   lru()              true least-recently-used: the entry whose last access is oldest leaves
//                      first. O(1) per victim (an intrusive list per shard).
//   size_aware_lru()   LRU that, among the `sample` least recent unpinned entries of a shard,
//                      evicts the one with the lowest last_access_ms - size_bytes / 1024: of
//                      entries of similar age the larger goes first (1 KiB weighs as 1 ms of
//                      age, as in the original). O(sample) per victim, never a full scan.
//   tiny_lfu()         W-TinyLFU: a small LRU admission window, a segmented-LRU main region
//                      and a frequency sketch that admits a window entry into the main
//                      region only if it is asked for more often than the entry it would
//                      displace; the window's share adapts by hill climbing. Keeps what is
//                      asked for again through scans that flush an LRU cache. O(1) per
//                      victim; reads are counted by the drain, not on the hit path.
//   custom(fn)         a value-aware priority fn(EntryView, const V&) -> int64: lower is
//                      evicted first; kNeverEvict is never evicted (skipped, not sorted last).
//                      Cost: each eviction pass evaluates fn once per unpinned entry of the
//                      whole pool and sorts them, O(n log n) per pass (not per victim). Meant
//                      for pools of at most a few thousand entries (adapters, models).
//
// Thread safety: a policy is an immutable value; `fn` is called with pool locks held and
// must be cheap, thread-safe and must not call back into the pool.

#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace pagekeeper {

// A plain copy of an entry's bookkeeping, handed to custom priorities. Times are
// pagekeeper::monotonic_ms() milliseconds; loaded_at_ms has 1 s resolution (it is stored as
// seconds since the pool's creation to keep entries small), last_access_at_ms a few ms.
struct EntryView {
  std::uint64_t size_bytes = 0;
  std::uint32_t pin_count = 0;
  std::int64_t loaded_at_ms = 0;
  std::int64_t last_access_at_ms = 0;
  std::uint64_t access_count = 0;
};

// Parameters of EvictionPolicy::tiny_lfu(). The defaults are Caffeine's.
struct TinyLfuOptions {
  // How the window's share adapts: kTrials (default) adopts the share of the best of a few
  // miniature caches replaying a sample of the keys; kHillClimbing steps it by the change in
  // hit ratio, as Caffeine does; kFixed keeps window_fraction.
  enum class Adapt { kFixed, kHillClimbing, kTrials };

  // Initial share of the capacity held by the admission window, in [0, 1). An adaptive
  // window keeps it until its first verdict, which needs the cache full and a period of
  // requests after that: 4% (not Caffeine's 1%) keeps a recency-biased trace that is short
  // for its capacity from losing its first hundreds of thousands of requests to the filter
  // (OLTP at 32,768 keys: 71.34% against 70.90%, docs/PERFORMANCE.md).
  double window_fraction = 0.04;
  Adapt adapt = Adapt::kTrials;
  // Seed of the admission jitter's random sequence (fixed, so replays are reproducible).
  std::uint64_t seed = 0x9e3779b97f4a7c15ULL;
};

// A custom priority returning this is never evicted by budget or pressure (only by an
// explicit erase() or clear()).
inline constexpr std::int64_t kNeverEvict = std::numeric_limits<std::int64_t>::max();

template <class V>
class EvictionPolicy {
 public:
  enum class Kind { kLru, kSizeAwareLru, kTinyLfu, kCustom };
  using PriorityFn = std::function<std::int64_t(const EntryView&, const V&)>;

  static EvictionPolicy lru() { return EvictionPolicy(Kind::kLru, 0, {}); }

  // Throws std::invalid_argument when options.window_fraction is outside [0, 1).
  static EvictionPolicy tiny_lfu(TinyLfuOptions options = {}) {
    if (!(options.window_fraction >= 0.0 && options.window_fraction < 1.0)) {
      throw std::invalid_argument("policy.window_fraction must be in [0, 1)");
    }
    EvictionPolicy p(Kind::kTinyLfu, 0, {});
    p.tiny_lfu_ = options;
    return p;
  }

  // `sample`: how many least-recent unpinned entries are compared per victim (1..64).
  static EvictionPolicy size_aware_lru(std::uint32_t sample = 8) {
    if (sample == 0 || sample > 64) {
      throw std::invalid_argument("policy.sample must be in [1, 64]");
    }
    return EvictionPolicy(Kind::kSizeAwareLru, sample, {});
  }

  // Requires: fn is callable. Lower priority is evicted first.
  static EvictionPolicy custom(PriorityFn fn) {
    if (!fn) throw std::invalid_argument("policy.priority must be a callable");
    return EvictionPolicy(Kind::kCustom, 0, std::move(fn));
  }

  Kind kind() const noexcept { return kind_; }
  std::uint32_t sample() const noexcept { return sample_; }
  const PriorityFn& priority() const noexcept { return fn_; }
  const TinyLfuOptions& tiny_lfu_options() const noexcept { return tiny_lfu_; }

  const char* name() const noexcept {
    switch (kind_) {
      case Kind::kLru: return "lru";
      case Kind::kSizeAwareLru: return "size-lru";
      case Kind::kTinyLfu: return "tinylfu";
      case Kind::kCustom: return "custom";
    }
    return "unknown";
  }

 private:
  EvictionPolicy(Kind kind, std::uint32_t sample, PriorityFn fn)
      : kind_(kind), sample_(sample), fn_(std::move(fn)) {}
  Kind kind_;
  std::uint32_t sample_;
  PriorityFn fn_;
  TinyLfuOptions tiny_lfu_;
};

// The eviction policy a configuration chooses for a cache the daemon builds (the embedding
// cache, the pool of loaded models): "tinylfu" (the default) or "lru".
enum class CachePolicy { kLru, kTinyLfu };

inline const char* to_string(CachePolicy policy) noexcept {
  return policy == CachePolicy::kLru ? "lru" : "tinylfu";
}

// Throws std::invalid_argument naming the accepted values.
inline CachePolicy parse_cache_policy(std::string_view text) {
  if (text == "lru") return CachePolicy::kLru;
  if (text == "tinylfu") return CachePolicy::kTinyLfu;
  throw std::invalid_argument("policy must be \"lru\" or \"tinylfu\", got \"" + std::string(text) + "\"");
}

// The EvictionPolicy for `policy`: tiny_lfu(), or for kLru size_aware_lru() (of entries of
// similar age the larger leaves first: what these caches of unequal values want from LRU).
template <class V>
EvictionPolicy<V> eviction_policy_for(CachePolicy policy) {
  return policy == CachePolicy::kLru ? EvictionPolicy<V>::size_aware_lru() : EvictionPolicy<V>::tiny_lfu();
}

}  // namespace pagekeeper
