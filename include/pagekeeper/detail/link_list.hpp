// pagekeeper/detail/link_list.hpp
//
// The intrusive doubly linked list that list-based eviction policies keep their entries in
// (an entry header derives from Link), and the tail scan they pick victims with.
//
// Internal to PagedResourcePool (pagekeeper/pool.hpp): not part of the public API.
// Not thread-safe: a shard's lists change only under its exclusive lock.

#pragma once

#include <cstddef>
#include <cstdint>

namespace pagekeeper::pool_detail {

struct Link {
  Link* prev = nullptr;
  Link* next = nullptr;
};

// A circular list with a sentinel: front() is the most recently placed, back() the least.
class LinkList {
 public:
  LinkList() noexcept { head_.prev = head_.next = &head_; }
  LinkList(const LinkList&) = delete;
  LinkList& operator=(const LinkList&) = delete;

  bool empty() const noexcept { return head_.next == &head_; }
  Link* front() const noexcept { return head_.next; }
  Link* back() const noexcept { return head_.prev; }
  const Link* end() const noexcept { return &head_; }
  bool is_front(const Link* l) const noexcept { return head_.next == l; }

  static void unlink(Link* l) noexcept {
    l->prev->next = l->next;
    l->next->prev = l->prev;
  }
  void push_front(Link* l) noexcept {
    l->next = head_.next;
    l->prev = &head_;
    head_.next->prev = l;
    head_.next = l;
  }
  void move_to_front(Link* l) noexcept {
    unlink(l);
    push_front(l);
  }

 private:
  Link head_;
};

// Scans `list` from its back for up to `sample` unpinned entries (at most `limit` steps) and
// returns the one with the lowest priority(e) (the first such, on ties), or nullptr when
// none was met. Pinned entries met on the way move to the front: they are in use, and
// skipping them on every eviction would make eviction O(pinned). Entry derives from Link
// and has pins().
template <class Entry, class Priority>
Entry* lowest_of_tail(LinkList& list, std::uint32_t sample, std::size_t limit, Priority&& priority) noexcept {
  Entry* best = nullptr;
  std::int64_t best_priority = 0;
  std::uint32_t seen = 0;
  std::size_t steps = 0;
  Link* l = list.back();
  while (l != list.end() && seen < sample && steps < limit) {
    Entry* e = static_cast<Entry*>(l);
    Link* prev = l->prev;
    ++steps;
    if (e->pins() > 0) {
      list.move_to_front(e);
    } else {
      const std::int64_t p = priority(e);
      if (best == nullptr || p < best_priority) {
        best = e;
        best_priority = p;
      }
      ++seen;
    }
    l = prev;
  }
  return best;
}

}  // namespace pagekeeper::pool_detail
