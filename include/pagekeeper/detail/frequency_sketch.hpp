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
#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <utility>

#include <sys/mman.h>

#include "pagekeeper/detail/aligned_mapping.hpp"

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
    settle();  // counted, then dropped with the rest: as if it had been counted at once
    BlockArray fresh(want / 8);  // zero
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
  unsigned frequency(std::uint64_t h) noexcept {
    if (words_ == 0) return 0;
    if (deferred_count_ != 0) settle();
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
    if (deferred_count_ != 0) [[unlikely]] settle();
    add(h);
  }

  // increment(h), carried out later: when kMaxDeferred are pending, or at the next call that
  // reads the counters or changes them otherwise (or settle()), in the order they came. Every
  // read sees the counts it would have seen had increment(h) been called here. Meanwhile the
  // load of h's block, which prefetch(h) started, arrives instead of stalling the caller: the
  // shard's next insert, drain or duel comes a whole operation later, and in a large pool the
  // block is a memory access.
  void increment_later(std::uint64_t h) noexcept {
    if (words_ == 0) return;
    if (deferred_count_ == kMaxDeferred) settle();
    deferred_[deferred_count_++] = h;
  }

  // Carries out the pending increment_later() calls. Out of line: the drain's increments
  // (every replayed hit) come here only for the insert before them, and inlined into them it
  // slowed every hit.
  [[gnu::noinline]] void settle() noexcept {
    for (std::size_t i = 0; i < deferred_count_; ++i) add(deferred_[i]);
    deferred_count_ = 0;
  }

  // At most this many increments wait: inserts into a shard below its budget run no duel, so
  // nothing reads the counts between them, and the queue is what bounds the wait.
  static constexpr std::size_t kMaxDeferred = 64;

 private:
  // The increment itself (no pending one may be left).
  [[gnu::always_inline]] void add(std::uint64_t h) noexcept {
    std::uint64_t added = 0;
    for_each_counter(*this, h, [&added](std::uint64_t& word, unsigned shift) {
      const std::uint64_t room = ((word >> shift) & 0xf) != 0xf ? 1 : 0;
      word += room << shift;
      added |= room;
    });
    if (added != 0 && ++additions_ >= sample_size_) halve();
  }

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
    // The odd counters are counted in SWAR lanes rather than with std::popcount, which the
    // baseline x86-64 target (no POPCNT) turns into a libgcc call per word.
    std::uint64_t odd = 0;
    for (std::size_t b = 0; b < words_ / 8; ++b) {
      std::uint64_t lanes = 0;  // per nibble: odd counters at that nibble in the block, <= 8
      for (std::uint64_t& w : blocks_[b].word) {
        lanes += w & 0x1111111111111111ULL;
        w = (w >> 1) & 0x7777777777777777ULL;
      }
      const std::uint64_t bytes = (lanes & 0x0F0F0F0F0F0F0F0FULL) + ((lanes >> 4) & 0x0F0F0F0F0F0F0F0FULL);
      odd += (bytes * 0x0101010101010101ULL) >> 56;  // sum of the eight bytes, <= 128
    }
    additions_ = (additions_ - odd / 4) / 2;
  }

  // One cache line: a key's four counters all lie in one block.
  struct alignas(64) Block {
    std::uint64_t word[8];
  };

  // The counters: zeroed memory for `count` blocks. From kHugePageBytes on it is mapped on
  // huge-page boundaries and marked for huge pages (transparent huge pages, where the kernel
  // has them), because every increment and estimate touches one random block: at 4 KiB pages
  // a sketch of several MiB costs a TLB miss (a page walk) on most of them, which the
  // prefetch of the block does not hide. Smaller arrays come from the heap. Throws
  // std::bad_alloc.
  class BlockArray {
   public:
    BlockArray() = default;
    explicit BlockArray(std::size_t count) : count_(count) {
      const std::size_t bytes = count * sizeof(Block);
      if (bytes < kHugePageBytes) {
        heap_ = std::make_unique<Block[]>(count);  // value-initialized: zero
        data_ = heap_.get();
        return;
      }
      data_ = static_cast<Block*>(map_aligned(bytes, kHugePageBytes, /*huge_pages=*/true));
      mapped_ = true;
    }
    BlockArray(BlockArray&& other) noexcept { swap(other); }
    BlockArray& operator=(BlockArray&& other) noexcept {
      BlockArray gone(std::move(*this));
      swap(other);
      return *this;
    }
    BlockArray(const BlockArray&) = delete;
    BlockArray& operator=(const BlockArray&) = delete;
    ~BlockArray() {
      if (mapped_) ::munmap(data_, count_ * sizeof(Block));
    }
    Block* data() const noexcept { return data_; }
    Block& operator[](std::size_t i) const noexcept { return data_[i]; }

   private:
    void swap(BlockArray& other) noexcept {
      std::swap(heap_, other.heap_);
      std::swap(data_, other.data_);
      std::swap(count_, other.count_);
      std::swap(mapped_, other.mapped_);
    }
    std::unique_ptr<Block[]> heap_;
    Block* data_ = nullptr;
    std::size_t count_ = 0;
    bool mapped_ = false;
  };

  BlockArray blocks_;
  std::size_t words_ = 0;
  std::size_t block_mask_ = 0;
  std::atomic<const Block*> prefetch_blocks_{nullptr};
  std::atomic<std::size_t> prefetch_mask_{0};
  std::uint64_t sized_for_ = 0;
  std::uint64_t sample_size_ = 0;
  std::uint64_t additions_ = 0;
  std::array<std::uint64_t, kMaxDeferred> deferred_{};  // hashes of pending increment_later()s
  std::size_t deferred_count_ = 0;
};

}  // namespace pagekeeper::pool_detail
