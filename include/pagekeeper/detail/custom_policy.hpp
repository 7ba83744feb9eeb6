// pagekeeper/detail/custom_policy.hpp
//
// CustomPolicy: a value-aware priority over the whole pool (EvictionPolicy::custom(fn)):
// each eviction pass ranks every unpinned entry of every shard by fn and evicts the lowest
// first; kNeverEvict is never evicted. Within a shard entries are kept in recency order,
// which the priority function sees as EntryView::last_access_at_ms. See lru_policy.hpp for
// the policy seam.
//
// Internal to PagedResourcePool (pagekeeper/pool.hpp): not part of the public API.

#pragma once

#include <cstdint>

#include "pagekeeper/detail/lru_policy.hpp"

namespace pagekeeper::pool_detail {

template <class Entry>
class CustomPolicy : public LruPolicy<Entry> {
 public:
  // Victims come from the pool-wide ranking (the pool's rank_all), never from victim().
  static constexpr bool kOrdersAcrossShards = true;
};

}  // namespace pagekeeper::pool_detail
