// pagekeeper/detail/size_aware_lru_policy.hpp
//
// SizeAwareLruPolicy: LRU order in which, among the `sample` least recent unpinned entries
// of a shard, the one with the lowest last_access_ms - size_bytes / 1024 leaves first
// (EvictionPolicy::size_aware_lru()). See lru_policy.hpp for the policy seam.
//
// Internal to PagedResourcePool (pagekeeper/pool.hpp): not part of the public API.

#pragma once

#include <cstddef>
#include <cstdint>

#include "pagekeeper/detail/lru_policy.hpp"

namespace pagekeeper::pool_detail {

template <class Entry>
class SizeAwareLruPolicy : public LruPolicy<Entry> {
 public:
  explicit SizeAwareLruPolicy(std::uint32_t sample) noexcept : sample_(sample) {}

  template <class Cx>
  Entry* victim(std::size_t limit, const Cx& cx) noexcept {
    // Of entries of similar age the larger goes first: 1 KiB weighs as 1 ms of age.
    return lowest_of_tail<Entry>(this->list_, sample_, limit, [&](const Entry* e) {
      return e->last_access() - static_cast<std::int64_t>(cx.size(e) / 1024);
    });
  }

 private:
  std::uint32_t sample_;
};

}  // namespace pagekeeper::pool_detail
