// pagekeeper/detail/lru_policy.hpp
//
// LruPolicy: exact least-recently-used order of one pool shard (EvictionPolicy::lru()).
//
// Internal to PagedResourcePool (pagekeeper/pool.hpp): not part of the public API.
//
// The policy seam. Each shard of a pool holds one policy object; the pool calls it under the
// shard's exclusive lock and it orders that shard's entries. A policy is a class with:
//   kOrdersAcrossShards        true when victims are ranked over the whole pool at once
//                              (the pool then evicts through rank_all, not victim()).
//   kReplaysByHash             true when on_access uses the key's hash: the read buffers
//                              then carry each hit's hash (otherwise on_access gets 0).
//   set_capacity(bytes)        the shard's share of the pool's budget (at construction and
//                              whenever the budget changes).
//   on_insert(e, cx)           e was added (it is unpinned and not yet accessed).
//   prefetch_access(h)         start loading what on_access of a key with hash h touches
//                              by the hash alone (drain batches, before the entry's header
//                              is read; only with kReplaysByHash).
//   prefetch_relink(e)         start loading the entries on_access(e) will relink.
//   prefetch_insert(h)         start loading what on_insert of a key with hash h will touch;
//                              called without the shard's lock (it may read only atomics).
//   on_access(e, h, cx)        a recorded hit on e, replayed by the drain (after the pool
//                              stamped its recency and access count); h is its key's hash
//                              with kReplaysByHash.
//   on_pin(e, cx)              e was pinned (a pin refreshes recency but is not a hit).
//   on_remove(e, cx)           e leaves the shard (evicted, erased, replaced or cleared).
//   victim(limit, cx)          the next unpinned entry to evict, or nullptr when there is
//                              none; `limit` bounds the entries it may step over. It may
//                              reorder entries but does not remove the victim.
//   prefetch_victim(pf)        calls pf(next, after) with an entry victim() will return
//                              soon (the next one, or one further ahead) and the one after
//                              it, so their lines load early; pf returns next's hash.
//   coldest_access()           last-access time of the shard's next victim (INT64_MAX when
//                              empty): a hint for choosing which shard to evict from.
//   for_each(fn)               every entry the policy holds.
//   audit(cx)                  "" when the policy's own structure is consistent.
// `cx` gives cx.size(e), an entry's bytes, and cx.hash(e), its key's 64-bit hash; hooks are
// noexcept.
// A new policy is a new file with such a class, one alternative in the pool's ShardPolicy
// variant and one case where the pool builds it from EvictionPolicy::Kind.

#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "pagekeeper/detail/link_list.hpp"

namespace pagekeeper::pool_detail {

// Entry derives from Link and has pins() and last_access().
template <class Entry>
class LruPolicy {
 public:
  static constexpr bool kOrdersAcrossShards = false;
  static constexpr bool kReplaysByHash = false;

  void set_capacity(std::uint64_t /*bytes*/) noexcept {}

  template <class Cx>
  void on_insert(Entry* e, const Cx& /*cx*/) noexcept {
    list_.push_front(e);
  }
  void prefetch_insert(std::uint64_t /*h*/) const noexcept {}

  void prefetch_access(std::uint64_t /*h*/) const noexcept {}
  void prefetch_relink(const Entry* e) const noexcept {
    __builtin_prefetch(e->prev, 1);
    __builtin_prefetch(e->next, 1);
  }
  template <class Cx>
  void on_access(Entry* e, std::uint64_t /*h*/, const Cx& /*cx*/) noexcept {
    if (!list_.is_front(e)) list_.move_to_front(e);
  }
  template <class Cx>
  void on_pin(Entry* e, const Cx& /*cx*/) noexcept {
    list_.move_to_front(e);
  }
  template <class Cx>
  void on_remove(Entry* e, const Cx& /*cx*/) noexcept {
    LinkList::unlink(e);
  }

  template <class Cx>
  Entry* victim(std::size_t limit, const Cx& /*cx*/) noexcept {
    return lowest_of_tail<Entry>(list_, 1, limit, [](const Entry*) { return std::int64_t{0}; });
  }

  template <class Prefetch>
  void prefetch_victim(Prefetch&& pf) const noexcept {
    const Link* next = list_.back();
    if (next == list_.end()) return;
    pf(static_cast<const Entry*>(next), next->prev);
  }

  std::int64_t coldest_access() const noexcept {
    if (list_.empty()) return INT64_MAX;
    return static_cast<const Entry*>(list_.back())->last_access();
  }

  template <class Fn>
  void for_each(Fn&& fn) const {
    for (Link* l = list_.front(); l != list_.end(); l = l->next) fn(static_cast<Entry*>(l));
  }

  template <class Cx>
  std::string audit(const Cx& /*cx*/) const {
    return "";
  }

 protected:
  LinkList list_;  // front: most recent
};

}  // namespace pagekeeper::pool_detail
