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

// A custom priority returning this is never evicted by budget or pressure (only by an
// explicit evict() or clear()).
inline constexpr std::int64_t kNeverEvict = std::numeric_limits<std::int64_t>::max();

template <class V>
class EvictionPolicy {
 public:
  enum class Kind { kLru, kSizeAwareLru, kCustom };
  using PriorityFn = std::function<std::int64_t(const EntryView&, const V&)>;

  static EvictionPolicy lru() { return EvictionPolicy(Kind::kLru, 0, {}); }

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

  const char* name() const noexcept {
    switch (kind_) {
      case Kind::kLru: return "lru";
      case Kind::kSizeAwareLru: return "size-lru";
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
};

}  // namespace pagekeeper
