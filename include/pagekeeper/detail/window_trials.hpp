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
#include <utility>

#include "pagekeeper/detail/link_list.hpp"

namespace pagekeeper::pool_detail {

template <class Entry>
class TinyLfuPolicy;

// A key of a window trial: its place in the miniature policy's lists.
struct TrialNode : Link {
  std::uint64_t hash = 0;
  std::uint64_t size = 0;
  std::uint32_t policy_tag : 2 = 0;  // NOLINT(readability-magic-numbers)
  std::uint32_t used : 1 = 0;        // a slot of TrialNodeTable that holds a node
  std::uint32_t pins() const noexcept { return 0; }
  std::int64_t last_access() const noexcept { return 0; }
};

// A window trial's nodes by hash (a collision merges two keys), stored in the table itself:
// open addressing with linear probing and backward-shift deletion, so that a sampled request
// reads a line or two of one array rather than a bucket, a heap node and the allocator's
// state. Nodes move when the table grows or a deletion shifts them; each move re-points the
// moved node's list neighbours at its new slot (so linked nodes may move one at a time, in
// any order). Pointers from find() and emplace() last until the next emplace() or erase().
// Not thread-safe: part of one WindowTrials.
class TrialNodeTable {
 public:
  std::size_t size() const noexcept { return size_; }

  TrialNode* find(std::uint64_t h) noexcept {
    if (slots_ == 0) return nullptr;
    for (std::size_t i = home(h);; i = (i + 1) & mask()) {
      TrialNode& n = nodes_[i];
      if (n.used == 0) return nullptr;
      if (n.hash == h) return &n;
    }
  }

  // A new unlinked node for h, which must not be in the table. Throws std::bad_alloc
  // (the table is then unchanged).
  TrialNode& emplace(std::uint64_t h) {
    if (2 * (size_ + 1) > slots_) grow();
    std::size_t i = home(h);
    while (nodes_[i].used != 0) i = (i + 1) & mask();
    TrialNode& n = nodes_[i];
    n = TrialNode{};
    n.hash = h;
    n.used = 1;
    ++size_;
    return n;
  }

  // Removes n (a node of this table, already unlinked).
  void erase(TrialNode* n) noexcept {
    auto hole = static_cast<std::size_t>(n - nodes_.get());
    nodes_[hole].used = 0;
    --size_;
    // Backward shift: a later node of the probe run moves into the hole unless its home
    // lies cyclically in (hole, j].
    for (std::size_t j = (hole + 1) & mask(); nodes_[j].used != 0; j = (j + 1) & mask()) {
      const std::size_t k = home(nodes_[j].hash);
      const bool stays = hole <= j ? (hole < k && k <= j) : (hole < k || k <= j);
      if (stays) continue;
      relocate(nodes_[j], nodes_[hole]);
      hole = j;
    }
  }

 private:
  std::size_t mask() const noexcept { return slots_ - 1; }
  // The sampled hashes share bits (see sampled()): remix before taking the slot.
  std::size_t home(std::uint64_t h) const noexcept {
    h = (h ^ (h >> 33)) * 0xff51afd7ed558ccdULL;
    return static_cast<std::size_t>(h ^ (h >> 32)) & mask();
  }

  // Moves node `from` into the free slot `to`, re-pointing its list neighbours.
  static void relocate(TrialNode& from, TrialNode& to) noexcept {
    to = from;
    from.used = 0;
    if (to.prev != nullptr) {
      to.prev->next = &to;
      to.next->prev = &to;
    }
  }

  void grow() {
    const std::size_t slots = slots_ == 0 ? 64 : 2 * slots_;
    auto fresh = std::make_unique<TrialNode[]>(slots);  // may throw: nothing changed yet
    std::unique_ptr<TrialNode[]> old = std::exchange(nodes_, std::move(fresh));
    const std::size_t old_slots = std::exchange(slots_, slots);
    for (std::size_t i = 0; i < old_slots; ++i) {
      if (old[i].used == 0) continue;
      std::size_t j = home(old[i].hash);
      while (nodes_[j].used != 0) j = (j + 1) & mask();
      relocate(old[i], nodes_[j]);
    }
  }

  std::unique_ptr<TrialNode[]> nodes_;
  std::size_t slots_ = 0;  // a power of two, at most half full
  std::size_t size_ = 0;
};

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
  using Node = TrialNode;
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
