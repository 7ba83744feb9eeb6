// pagekeeper/detail/tiny_lfu_policy.hpp
//
// TinyLfuPolicy: W-TinyLFU (Einziger, Friedman, Manes, "TinyLFU: A Highly Efficient Cache
// Admission Policy", ACM TOS 2017, as Caffeine implements it) for one pool shard, in bytes:
//   - a small admission window in LRU order, where every new entry starts;
//   - a main region in segmented LRU: probation (entries admitted from the window, and
//     those demoted from protected) and protected (probation entries read again, up to 75%
//     of the main region; Caffeine has 80%, which measured lower on the frequency-biased ARC
//     traces here, docs/PERFORMANCE.md);
//   - a FrequencySketch of recent requests (reads and inserts). When room is needed the
//     window's least recent entry (the candidate) meets probation's least recent (the
//     victim): the candidate enters probation only if the sketch says it is asked for more
//     often, otherwise it is the one evicted. A candidate whose count is merely high enough
//     (6 or more) gets in one time in 128 regardless, so that an attacker who floods the
//     sketch with a victim's hash cannot keep every newcomer out (Caffeine's defence);
//   - the window's share of the capacity adapts, so that recency-biased traces are not lost
//     to a small window, in one of two ways (TinyLfuOptions::adapt):
//     trials (the default): miniature copies of the policy with fixed shares replay a sample
//       of the keys, and the window takes the share of the one with the most hits lately
//       (window_trials.hpp);
//     hill climbing (as current Caffeine does): every sample (ten times the entries the
//       capacity holds, in requests) the window moves a step the way that raised the hit ratio, reversing when
//       it fell; the step decays unless the hit ratio jumps, when it restarts. It wanders on
//       noisy traces: docs/PERFORMANCE.md has both side by side.
// Reads reach the policy through the shard's read buffers (the drain), never from the hit
// path. Pinned entries are never victims: met at a region's tail they move to its front.
// See lru_policy.hpp for the policy seam.
//
// Internal to PagedResourcePool (pagekeeper/pool.hpp): not part of the public API.
// Not thread-safe: used under the shard's exclusive lock.

#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <string>

#include "pagekeeper/detail/frequency_sketch.hpp"
#include "pagekeeper/detail/link_list.hpp"
#include "pagekeeper/detail/window_trials.hpp"
#include "pagekeeper/eviction_policy.hpp"

namespace pagekeeper::pool_detail {

// Entry derives from Link and has pins(), last_access() and a 2-bit policy_tag field.
template <class Entry>
class TinyLfuPolicy {
 public:
  static constexpr bool kOrdersAcrossShards = false;
  static constexpr bool kReplaysByHash = true;  // the sketch counts every hit's key

  // `shards`: how many shards share the pool (they split the trials' memory).
  explicit TinyLfuPolicy(const TinyLfuOptions& params, std::uint32_t shards = 1) noexcept
      : window_fraction_(params.window_fraction), adapt_(params.adapt), shards_(shards), random_(params.seed | 1) {}

  // The shard's share of the pool's budget. Keeps the window's share: the configured one
  // for a fixed window, the one hill climbing reached for an adaptive one.
  void set_capacity(std::uint64_t bytes) noexcept {
    if (adapt_ != Adapt::kFixed && capacity_ != 0) {
      window_fraction_ = static_cast<double>(window_max_) / static_cast<double>(capacity_);
    }
    capacity_ = bytes;
    // Rounded as Caffeine does: the main region's share down, the window's up.
    window_max_ = bytes - static_cast<std::uint64_t>((1.0 - window_fraction_) * static_cast<double>(bytes));
    protected_max_ = static_cast<std::uint64_t>(kProtectedShare * static_cast<double>(bytes - window_max_));
    step_ = -kStepShare * static_cast<double>(bytes);
    adjustment_ = 0;
  }

  template <class Cx>
  void on_insert(Entry* e, const Cx& cx) noexcept {
    const std::uint64_t size = cx.size(e);
    ++entries_;
    bytes_ += size;
    size_sketch();
    // Its block was prefetched before the shard's lock was taken: left to arrive by the next use.
    sketch_.increment_later(cx.hash(e));
    ++misses_in_sample_;
    if (trials_ && trials_->request(cx.hash(e), size)) adopt();
    e->policy_tag = kWindow;
    window_.push_front(e);
    window_bytes_ += size;
    // Filling up: what overflows the window enters probation without a contest (there is
    // room for it; contests happen in victim()).
    while (window_bytes_ > window_max_ && window_.back() != e) {
      Entry* oldest = static_cast<Entry*>(window_.back());
      LinkList::unlink(oldest);
      window_bytes_ -= cx.size(oldest);
      oldest->policy_tag = kProbation;
      probation_.push_front(oldest);
    }
    climb(cx);
  }

  void prefetch_insert(std::uint64_t h) const noexcept { sketch_.prefetch(h); }

  // The block of the sketch that on_access counts h in.
  void prefetch_access(std::uint64_t h) const noexcept { sketch_.prefetch(h); }
  void prefetch_relink(const Entry* e) const noexcept {
    __builtin_prefetch(e->prev, 1);
    __builtin_prefetch(e->next, 1);
  }

  template <class Cx>
  void on_access(Entry* e, std::uint64_t hash, const Cx& cx) noexcept {
    ++hits_in_sample_;
    sketch_.increment(hash);
    if (trials_ && trials_->request(hash, cx.size(e))) adopt();
    switch (e->policy_tag) {
      case kWindow:
        window_.move_to_front(e);
        return;
      case kProbation: {
        const std::uint64_t size = cx.size(e);
        if (size > protected_max_) {
          probation_.move_to_front(e);
          return;
        }
        LinkList::unlink(e);
        e->policy_tag = kProtected;
        protected_.push_front(e);
        protected_bytes_ += size;
        demote_protected_overflow(cx);
        return;
      }
      default:
        protected_.move_to_front(e);
        return;
    }
  }

  template <class Cx>
  void on_pin(Entry* e, const Cx&) noexcept {
    list_of(e).move_to_front(e);
  }

  template <class Cx>
  void on_remove(Entry* e, const Cx& cx) noexcept {
    LinkList::unlink(e);
    --entries_;
    bytes_ -= cx.size(e);
    if (e->policy_tag == kWindow) {
      window_bytes_ -= cx.size(e);
    } else if (e->policy_tag == kProtected) {
      protected_bytes_ -= cx.size(e);
    }
  }

  // The window's least recent entry meets the main region's (probation first, then
  // protected): the less frequent of the two is the victim; a winning candidate moves into
  // probation. Without a candidate the main region's entry goes, and the reverse.
  template <class Cx>
  Entry* victim(std::size_t limit, const Cx& cx) noexcept {
    Entry* candidate = unpinned_tail(window_, limit);
    Entry* main = unpinned_tail(probation_, limit);
    if (main == nullptr) main = unpinned_tail(protected_, limit);
    if (candidate == nullptr || main == nullptr) return candidate != nullptr ? candidate : main;
    if (!admit(cx.hash(candidate), cx.hash(main))) return candidate;
    LinkList::unlink(candidate);
    window_bytes_ -= cx.size(candidate);
    candidate->policy_tag = kProbation;
    probation_.push_front(candidate);
    return main;
  }

  template <class Prefetch>
  void prefetch_victim(Prefetch&& pf) const noexcept {
    for (const LinkList* list : {&window_, &probation_}) {
      const Link* next = list->back();
      if (next == list->end()) continue;
      // One duel further ahead: the contender after next, whose header and record the
      // previous call started loading, and the one after it. By the time next's duel
      // comes its lines have had a whole insert to arrive; the one after gets two.
      const Link* after = next->prev;
      if (after != list->end()) {
        next = after;
        after = after->prev;
      }
      // The duel reads the sketch's counters of both contenders.
      sketch_.prefetch(pf(static_cast<const Entry*>(next), after));
    }
  }

  std::int64_t coldest_access() const noexcept {
    std::int64_t oldest = INT64_MAX;
    for (const LinkList* list : {&window_, &probation_, &protected_}) {
      if (!list->empty()) oldest = std::min(oldest, static_cast<const Entry*>(list->back())->last_access());
    }
    return oldest;
  }

  template <class Fn>
  void for_each(Fn&& fn) const {
    for (const LinkList* list : {&window_, &probation_, &protected_}) {
      for (Link* l = list->front(); l != list->end(); l = l->next) fn(static_cast<Entry*>(l));
    }
  }

  template <class Cx>
  std::string audit(const Cx& cx) const {
    std::string err;
    std::uint64_t bytes[3] = {0, 0, 0};
    std::size_t count = 0;
    const LinkList* lists[3] = {&window_, &probation_, &protected_};
    for (unsigned r = 0; r < 3; ++r) {
      for (Link* l = lists[r]->front(); l != lists[r]->end(); l = l->next) {
        const Entry* e = static_cast<const Entry*>(l);
        if (e->policy_tag != r) err += "tiny_lfu: entry in the wrong region list; ";
        bytes[r] += cx.size(e);
        ++count;
      }
    }
    if (bytes[kWindow] != window_bytes_) err += "tiny_lfu: window bytes miscounted; ";
    if (bytes[kProtected] != protected_bytes_) err += "tiny_lfu: protected bytes miscounted; ";
    if (count != entries_) err += "tiny_lfu: entries miscounted; ";
    if (bytes[0] + bytes[1] + bytes[2] != bytes_) err += "tiny_lfu: bytes miscounted; ";
    if (window_max_ + protected_max_ > capacity_) err += "tiny_lfu: regions exceed the capacity; ";
    return err;
  }

  // For tests and the simulator: the window's current share of the capacity in bytes.
  std::uint64_t window_max_bytes() const noexcept { return window_max_; }

 private:
  static constexpr unsigned kWindow = 0;
  static constexpr unsigned kProbation = 1;
  static constexpr unsigned kProtected = 2;
  static constexpr double kProtectedShare = 0.75;   // of the main region
  static constexpr double kStepShare = 0.0625;      // a restarted step, of the capacity
  static constexpr double kStepDecay = 0.98;        // each sample that keeps the direction
  static constexpr double kRestartThreshold = 0.05; // a hit-ratio change that restarts the step
  static constexpr unsigned kJitterThreshold = 6;   // counts from which a loser may get in
  static constexpr int kTransferLimit = 1000;       // entries one climbing step moves at most
  static constexpr std::uint64_t kClimbSamplePerEntry = 10;  // requests per climbing step, per entry

  LinkList& list_of(const Entry* e) noexcept {
    return e->policy_tag == kWindow ? window_ : e->policy_tag == kProbation ? probation_ : protected_;
  }

  // The least recent unpinned entry of `list`, moving pinned ones met on the way to its front.
  static Entry* unpinned_tail(LinkList& list, std::size_t limit) noexcept {
    return lowest_of_tail<Entry>(list, 1, limit, [](const Entry*) { return std::int64_t{0}; });
  }

  // Sizes the sketch once the shard is half full (as Caffeine does): for the number of
  // entries the capacity holds at the current mean entry size. Until then nothing is
  // evicted, so nothing needs counts; a sketch sized earlier would be regrown, losing them.
  void size_sketch() noexcept {
    if (capacity_ == 0 || bytes_ == 0 || 2 * bytes_ < capacity_) return;
    // Cheap test first (every insert comes here): entries * capacity / bytes > sketch size.
    using Wide = unsigned __int128;
    if (Wide{entries_} * capacity_ <= Wide{sketch_.capacity()} * bytes_) return;
    const long double full = static_cast<long double>(entries_) * static_cast<long double>(capacity_) /
                             static_cast<long double>(bytes_);
    const auto want = static_cast<std::size_t>(std::min<long double>(full, std::size_t{1} << 40));
    if (want <= sketch_.capacity()) return;
    try {
      sketch_.ensure_capacity(want);
      if (adapt_ == Adapt::kTrials && !trials_) {
        // About 2,048 sampled entries per trial for the whole pool, at least 128 per shard.
        const std::size_t per_trial = std::max<std::size_t>(128, 2048 / shards_);
        trials_ = std::make_unique<WindowTrials>(capacity_, want, per_trial, random_);
      }
    } catch (const std::bad_alloc&) {
      // Keep counting in the smaller sketch (less precise, never wrong about the budget).
    }
  }

  bool admit(std::uint64_t candidate_hash, std::uint64_t victim_hash) noexcept {
    const unsigned candidate = sketch_.frequency(candidate_hash);
    if (candidate > sketch_.frequency(victim_hash)) return true;
    if (candidate < kJitterThreshold) return false;
    return (next_random() & 127) == 0;
  }

  std::uint64_t next_random() noexcept {  // xorshift64
    random_ ^= random_ << 13;
    random_ ^= random_ >> 7;
    random_ ^= random_ << 17;
    return random_;
  }

  template <class Cx>
  void demote_protected_overflow(const Cx& cx) noexcept {
    while (protected_bytes_ > protected_max_ && !protected_.empty()) {
      Entry* e = static_cast<Entry*>(protected_.back());
      LinkList::unlink(e);
      protected_bytes_ -= cx.size(e);
      e->policy_tag = kProbation;
      probation_.push_front(e);
    }
  }

  // Once per sample: decide the window's next move from the change in hit ratio; then carry
  // out what remains of the move (a bounded number of entries at a time).
  // Sets the window moving towards the share the trials found best (climb() carries it out).
  void adopt() noexcept {
    const auto target = capacity_ - static_cast<std::uint64_t>((1.0 - trials_->best_share()) *
                                                               static_cast<double>(capacity_));
    adjustment_ = static_cast<std::int64_t>(target) - static_cast<std::int64_t>(window_max_);
  }

  template <class Cx>
  void climb(const Cx& cx) noexcept {
    if (adapt_ == Adapt::kFixed || capacity_ == 0) return;
    if (adapt_ == Adapt::kTrials) {
      if (adjustment_ > 0) {
        grow_window(cx);
      } else if (adjustment_ < 0) {
        shrink_window(cx);
      }
      return;
    }
    if (sketch_.capacity() == 0) {  // not full enough to measure anything yet
      hits_in_sample_ = 0;
      misses_in_sample_ = 0;
      return;
    }
    const std::uint64_t requests = hits_in_sample_ + misses_in_sample_;
    if (requests >= kClimbSamplePerEntry * sketch_.sized_for()) {
      const double hit_ratio = static_cast<double>(hits_in_sample_) / static_cast<double>(requests);
      const double change = hit_ratio - previous_hit_ratio_;
      const double amount = change >= 0 ? step_ : -step_;
      step_ = std::abs(change) >= kRestartThreshold
                  ? kStepShare * static_cast<double>(capacity_) * (amount >= 0 ? 1 : -1)
                  : kStepDecay * amount;
      previous_hit_ratio_ = hit_ratio;
      adjustment_ = static_cast<std::int64_t>(amount);
      hits_in_sample_ = 0;
      misses_in_sample_ = 0;
    }
    if (adjustment_ > 0) {
      grow_window(cx);
    } else if (adjustment_ < 0) {
      shrink_window(cx);
    }
  }

  // Moves up to adjustment_ bytes of capacity from protected to the window, and the least
  // recent main entries with it.
  template <class Cx>
  void grow_window(const Cx& cx) noexcept {
    std::uint64_t quota = std::min(static_cast<std::uint64_t>(adjustment_), protected_max_);
    protected_max_ -= quota;
    window_max_ += quota;
    demote_protected_overflow(cx);
    for (int i = 0; i < kTransferLimit; ++i) {
      LinkList* from = &probation_;
      Entry* e = probation_.empty() ? nullptr : static_cast<Entry*>(probation_.back());
      if (e == nullptr || quota < cx.size(e)) {
        from = &protected_;
        e = protected_.empty() ? nullptr : static_cast<Entry*>(protected_.back());
      }
      if (e == nullptr || quota < cx.size(e)) break;
      const std::uint64_t size = cx.size(e);
      quota -= size;
      LinkList::unlink(e);
      if (from == &protected_) protected_bytes_ -= size;
      window_bytes_ += size;
      e->policy_tag = kWindow;
      window_.push_front(e);
    }
    // Capacity not matched by moved entries goes back to protected, to be moved later.
    protected_max_ += quota;
    window_max_ -= quota;
    adjustment_ = static_cast<std::int64_t>(quota);
  }

  // Moves up to -adjustment_ bytes of capacity from the window to protected, and the
  // window's least recent entries into probation.
  template <class Cx>
  void shrink_window(const Cx& cx) noexcept {
    if (window_max_ <= 1) {
      adjustment_ = 0;
      return;
    }
    std::uint64_t quota = std::min(static_cast<std::uint64_t>(-adjustment_), window_max_ - 1);
    protected_max_ += quota;
    window_max_ -= quota;
    for (int i = 0; i < kTransferLimit && !window_.empty(); ++i) {
      Entry* e = static_cast<Entry*>(window_.back());
      const std::uint64_t size = cx.size(e);
      if (quota < size) break;
      quota -= size;
      LinkList::unlink(e);
      window_bytes_ -= size;
      e->policy_tag = kProbation;
      probation_.push_front(e);
    }
    protected_max_ -= quota;
    window_max_ += quota;
    adjustment_ = -static_cast<std::int64_t>(quota);
  }

  LinkList window_;     // front: most recent
  LinkList probation_;  // front: most recent
  LinkList protected_;  // front: most recent
  FrequencySketch sketch_;
  std::uint64_t capacity_ = 0;
  std::uint64_t window_max_ = 0;
  std::uint64_t protected_max_ = 0;
  std::uint64_t window_bytes_ = 0;
  std::uint64_t protected_bytes_ = 0;
  std::size_t entries_ = 0;
  std::uint64_t bytes_ = 0;  // of every region
  using Adapt = TinyLfuOptions::Adapt;
  double window_fraction_;
  Adapt adapt_;
  std::uint32_t shards_;
  std::uint64_t random_;
  // Hill climbing.
  std::uint64_t hits_in_sample_ = 0;
  std::uint64_t misses_in_sample_ = 0;
  double previous_hit_ratio_ = 0.0;
  double step_ = 0.0;
  std::int64_t adjustment_ = 0;  // bytes the window still has to grow (or shrink, < 0)
  std::unique_ptr<WindowTrials> trials_;  // Adapt::kTrials, once the shard is half full
};

// One trial: a miniature W-TinyLFU with a fixed window share over the sampled keys.
struct WindowTrials::Trial {
  Trial(double share, std::uint64_t seed)
      : policy(TinyLfuOptions{share, TinyLfuOptions::Adapt::kFixed, seed}) {}
  TinyLfuPolicy<Node> policy;
  TrialNodeTable nodes;
  std::uint64_t capacity = 0;
  std::uint64_t bytes = 0;
  std::uint64_t hits = 0;  // this period
  double score = 0;        // hits, exponentially decayed over periods
  bool failed = false;     // an allocation failed: no longer counted
};

inline WindowTrials::WindowTrials(std::uint64_t capacity, std::size_t entries, std::size_t trial_entries,
                                  std::uint64_t seed) {
  rate_ = std::max<std::uint64_t>(1, std::bit_floor(entries / std::max<std::size_t>(trial_entries, 1)));
  // A period of ten times the sampled entries, as the sketch's sample.
  period_ = 10 * std::max<std::uint64_t>(1, entries / rate_);
  for (std::size_t i = 0; i < kShares.size(); ++i) {
    trials_[i] = std::make_unique<Trial>(kShares[i], seed);
    trials_[i]->capacity = std::max<std::uint64_t>(1, capacity / rate_);
    trials_[i]->policy.set_capacity(trials_[i]->capacity);
  }
}

inline WindowTrials::~WindowTrials() = default;

inline bool WindowTrials::replay(std::uint64_t h, std::uint64_t size) noexcept {
  const Context cx;
  for (auto& t : trials_) {
    if (t->failed || size > t->capacity) continue;
    if (Node* n = t->nodes.find(h)) {
      ++t->hits;
      t->policy.on_access(n, h, cx);
      continue;
    }
    while (t->bytes + size > t->capacity) {
      Node* victim = t->policy.victim(t->nodes.size(), cx);
      if (victim == nullptr) break;
      t->policy.on_remove(victim, cx);
      t->bytes -= victim->size;
      t->nodes.erase(victim);
    }
    try {
      Node& n = t->nodes.emplace(h);
      n.size = size;
      t->bytes += size;
      t->policy.on_insert(&n, cx);
    } catch (const std::bad_alloc&) {
      t->failed = true;
      t->score = -1;
    }
  }
  if (++requests_ < period_) return false;
  requests_ = 0;
  constexpr double kDecay = 0.5;  // a period's hits count half as much one period later
  // A challenger must beat the share in use by a margin: on traces where several shares
  // score alike (the frequency-biased P traces) the window would otherwise wander between
  // them, paying for every move in entries shifted between regions.
  constexpr double kSwitchMargin = 1.02;
  for (auto& t : trials_) {
    if (t->failed) continue;
    t->score = kDecay * t->score + static_cast<double>(t->hits);
    t->hits = 0;
  }
  std::size_t best = best_;
  for (std::size_t i = 0; i < trials_.size(); ++i) {
    const Trial& t = *trials_[i];
    if (t.failed) continue;
    const double bar = best == best_ ? kSwitchMargin * trials_[best]->score : trials_[best]->score;
    if (t.score > bar) best = i;
  }
  best_ = best;
  return true;
}

}  // namespace pagekeeper::pool_detail
