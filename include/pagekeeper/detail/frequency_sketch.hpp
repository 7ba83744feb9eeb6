// pagekeeper/detail/frequency_sketch.hpp
//
// FrequencySketch: how often keys were asked for lately, approximately, in 4-bit counters
// (TinyLFU's count-min sketch, laid out as Caffeine's: a key's four counters lie in one
// 64-byte block, so an increment or an estimate touches one cache line). Every counter
// saturates at 15; once the sketch has counted `sample_size()` increments (twenty times its
// capacity) every counter is halved, so old popularity fades and recent counts weigh more.
//
// Internal to PagedResourcePool (pagekeeper/pool.hpp): not part of the public API.
// Not thread-safe: one sketch per shard, used under the shard's exclusive lock, except
// prefetch(), which any thread may call at any time (it only reads atomics, and a prefetch
// of memory a concurrent growth released is harmless: prefetches never fault).

#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace pagekeeper::pool_detail {

class FrequencySketch {
 public:
  // Counters for about `entries` keys: two words of 16 counters per key, rounded up to a
  // power of two (at least 8 words); the sample is twenty times `entries`. That is twice
  // Caffeine's sketch and sample: fewer collisions and a longer memory, which on the ARC
  // traces gains up to 1.5 points of hit ratio (docs/PERFORMANCE.md) for 16 bytes per entry.
  // Growing drops what was counted. Throws std::bad_alloc.
  void ensure_capacity(std::size_t entries) {
    const std::size_t want = kWordsPerEntry * std::bit_ceil(std::max<std::size_t>(entries, 4));
    if (words_ >= want) return;
    std::vector<Block> fresh(want / 8);  // value-initialized: zero
    // Published for prefetch() before the old array goes: a racing prefetch reads one or the
    // other (mask first, so that it never pairs a larger mask with the smaller array).
    prefetch_mask_.store(0, std::memory_order_relaxed);
    prefetch_blocks_.store(fresh.data(), std::memory_order_relaxed);
    prefetch_mask_.store(want / 8 - 1, std::memory_order_relaxed);
    blocks_ = std::move(fresh);
    words_ = want;
    block_mask_ = (want >> 3) - 1;
    sized_for_ = std::max<std::uint64_t>(entries, 1);
    sample_size_ = kSamplePerEntry * sized_for_;
    additions_ = 0;
  }

  // The entries the sketch is sized for (0 before ensure_capacity()).
  std::size_t capacity() const noexcept { return words_ / kWordsPerEntry; }
  std::uint64_t sample_size() const noexcept { return sample_size_; }
  // The `entries` of the last ensure_capacity() that grew the sketch (0 before).
  std::uint64_t sized_for() const noexcept { return sized_for_; }

  // The estimated count of hash h, 0..15 (0 before ensure_capacity()).
  unsigned frequency(std::uint64_t h) const noexcept {
    if (words_ == 0) return 0;
    std::uint64_t least = 15;
    for_each_counter(*this, h, [&least](const std::uint64_t& word, unsigned shift) {
      least = std::min<std::uint64_t>(least, (word >> shift) & 0xf);
    });
    return static_cast<unsigned>(least);
  }

  // Starts loading the block of hash h's counters. Any thread, no lock (see above).
  void prefetch(std::uint64_t h) const noexcept {
    const std::size_t mask = prefetch_mask_.load(std::memory_order_relaxed);
    const Block* blocks = prefetch_blocks_.load(std::memory_order_relaxed);
    if (blocks != nullptr) __builtin_prefetch(&blocks[block_of(mix(h)) & mask], 1);
  }

  // Counts one occurrence of hash h; halves every counter when the sample is complete.
  // Counts nothing before ensure_capacity().
  // Adds without a branch per counter: every drained read of a W-TinyLFU pool comes here.
  void increment(std::uint64_t h) noexcept {
    if (words_ == 0) return;
    std::uint64_t added = 0;
    for_each_counter(*this, h, [&added](std::uint64_t& word, unsigned shift) {
      const std::uint64_t room = ((word >> shift) & 0xf) != 0xf ? 1 : 0;
      word += room << shift;
      added |= room;
    });
    if (added != 0 && ++additions_ >= sample_size_) halve();
  }

 private:
  static constexpr std::size_t kWordsPerEntry = 2;
  static constexpr std::uint64_t kSamplePerEntry = 20;

  // The pool's hash picks shards and table slots from its bits: remix, so that the keys of
  // one shard spread over every block.
  static std::uint64_t mix(std::uint64_t h) noexcept {
    h = (h ^ (h >> 29)) * 0xbf58476d1ce4e5b9ULL;
    return h ^ (h >> 32);
  }
  static std::size_t block_of(std::uint64_t mixed) noexcept { return static_cast<std::size_t>(mixed); }

  // Calls fn(word, shift) for each of the four counters of hash h (a nibble at `shift` of
  // `word`): the block (8 words) from one half of the rehashed key, each counter's word (one
  // of the pair 2i, 2i+1) and nibble from a byte of the other half. Self: this sketch, const
  // or not.
  template <class Self, class Fn>
  static void for_each_counter(Self& self, std::uint64_t h, Fn&& fn) noexcept {
    h = mix(h);
    auto& block = self.blocks_[block_of(h) & self.block_mask_];
    auto counters = static_cast<std::uint32_t>(h >> 32) * 0x9e3779b9u;
    for (unsigned i = 0; i < 4; ++i, counters >>= 8) fn(block.word[(counters & 1) + 2 * i], ((counters >> 1) & 15) << 2);
  }

  // Halves every counter, and the count of additions by what the halving took (each odd
  // counter loses half an addition; four counters per addition).
  void halve() noexcept {
    std::uint64_t odd = 0;
    for (Block& block : blocks_) {
      for (std::uint64_t& w : block.word) {
        odd += static_cast<std::uint64_t>(std::popcount(w & 0x1111111111111111ULL));
        w = (w >> 1) & 0x7777777777777777ULL;
      }
    }
    additions_ = (additions_ - odd / 4) / 2;
  }

  // One cache line: a key's four counters all lie in one block.
  struct alignas(64) Block {
    std::uint64_t word[8];
  };

  std::vector<Block> blocks_;
  std::size_t words_ = 0;
  std::size_t block_mask_ = 0;
  std::atomic<const Block*> prefetch_blocks_{nullptr};
  std::atomic<std::size_t> prefetch_mask_{0};
  std::uint64_t sized_for_ = 0;
  std::uint64_t sample_size_ = 0;
  std::uint64_t additions_ = 0;
};

}  // namespace pagekeeper::pool_detail
