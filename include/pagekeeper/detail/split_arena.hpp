// pagekeeper/detail/split_arena.hpp
//
// SplitArena: the per-shard allocator that keeps entry records and headers apart.
//
// Internal to PagedResourcePool (pagekeeper/pool.hpp): not part of the public API.

#pragma once

#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

#include "pagekeeper/detail/aligned_mapping.hpp"

namespace pagekeeper::pool_detail {

// Fixed-size allocator for pool entries stored as two parts: a record (what a lookup reads:
// key and value) and a header (what the LRU bookkeeping writes: links, pin state, recency).
// A block keeps the records of its entries in one array and their headers in another, so the
// bookkeeping that one core does after a hit never writes a line that a lookup on another
// core reads (when two cores do not share a cache, such a line costs every later reader a
// transfer), and a lookup's lines hold records only, several per line. Blocks are
// kBlockBytes and aligned to that size, so each part finds its partner by arithmetic. No
// per-entry allocator header; freed entries are reused through an intrusive free list
// through their headers. Blocks come from regions that double from one block up to 32 (2 MiB
// with the default block size), mapped directly: a block's untouched pages cost nothing, so
// a small pool holds a few pages, not whole blocks. Not thread-safe: each shard uses its own
// under its exclusive lock. Memory returns to the system on destruction.
template <std::size_t RecordSize, std::size_t RecordAlign, std::size_t HeaderSize, std::size_t HeaderAlign>
class SplitArena {
  static_assert(RecordSize % RecordAlign == 0 && HeaderSize % HeaderAlign == 0);
  static_assert(HeaderSize >= sizeof(void*), "the free list links through headers");

 public:
  static constexpr std::size_t kBlockBytes =
      std::bit_ceil(std::max<std::size_t>(std::size_t{64} << 10, 64 * (RecordSize + HeaderSize)));
  // Headers start on their own cache line after the records.
  static constexpr std::size_t kHeadersAlign = std::max<std::size_t>(64, HeaderAlign);
  static constexpr std::size_t kPerBlock = (kBlockBytes - kHeadersAlign) / (RecordSize + HeaderSize);
  static constexpr std::size_t kHeadersOffset =
      (kPerBlock * RecordSize + kHeadersAlign - 1) / kHeadersAlign * kHeadersAlign;
  static_assert(kHeadersOffset + kPerBlock * HeaderSize <= kBlockBytes);
  static_assert(RecordAlign <= kBlockBytes && HeaderAlign <= kBlockBytes);

  SplitArena() = default;
  SplitArena(const SplitArena&) = delete;
  SplitArena& operator=(const SplitArena&) = delete;
  ~SplitArena() {
    for (const Region& r : regions_) ::munmap(r.memory, r.blocks * kBlockBytes);
  }

  // The record of the entry whose header is at `header`, and the reverse.
  static void* record_of(const void* header) noexcept {
    const auto p = reinterpret_cast<std::uintptr_t>(header);
    const std::uintptr_t base = p & ~std::uintptr_t{kBlockBytes - 1};
    return reinterpret_cast<void*>(base + (p - base - kHeadersOffset) / HeaderSize * RecordSize);
  }
  static void* header_of(const void* record) noexcept {
    const auto p = reinterpret_cast<std::uintptr_t>(record);
    const std::uintptr_t base = p & ~std::uintptr_t{kBlockBytes - 1};
    return reinterpret_cast<void*>(base + kHeadersOffset + (p - base) / RecordSize * HeaderSize);
  }

  // Returns the header of a free entry (its record is record_of() it). Throws std::bad_alloc.
  void* allocate() {
    if (free_ != nullptr) {
      void* p = free_;
      free_ = *static_cast<void**>(free_);
      // The next allocation reads the new head's link: start loading it now (freed entries
      // of a large pool are cold by the time they are reused).
      if (free_ != nullptr) __builtin_prefetch(free_, 1);
      ++live_;
      return p;
    }
    // Regions fill in order: after reset_if_unused() the kept ones are carved again from the first.
    while (current_ < regions_.size() && regions_[current_].used == regions_[current_].blocks * kPerBlock) {
      ++current_;
    }
    if (current_ == regions_.size()) add_region();
    Region& r = regions_[current_];
    const std::size_t n = r.used++;
    ++live_;
    return r.memory + (n / kPerBlock) * kBlockBytes + kHeadersOffset + (n % kPerBlock) * HeaderSize;
  }

  void deallocate(void* header) noexcept {
    *static_cast<void**>(header) = free_;
    free_ = header;
    --live_;
  }

  // When no entry is in use, forgets the free list and carves the kept regions again from
  // the start: allocations that follow (a pool refilled after clear()) walk memory in order
  // instead of a free list scattered over it. Returns whether it did. The memory stays
  // mapped (a lock-free reader may still look at an old record).
  bool reset_if_unused() noexcept {
    if (live_ != 0) return false;
    for (Region& r : regions_) r.used = 0;
    free_ = nullptr;
    current_ = 0;
    return true;
  }

 private:
  struct Region {
    std::byte* memory;   // kBlockBytes-aligned
    std::size_t blocks;
    std::size_t used;    // entries carved, in block order
  };

  void add_region() {
    const std::size_t blocks = regions_.empty() ? 1 : std::min<std::size_t>(regions_.back().blocks * 2, 32);
    const std::size_t bytes = blocks * kBlockBytes;
    // On a block boundary, so each part finds its partner by arithmetic.
    void* memory = map_aligned(bytes, kBlockBytes, /*huge_pages=*/false);
    try {
      regions_.push_back({static_cast<std::byte*>(memory), blocks, 0});
    } catch (...) {
      ::munmap(memory, bytes);
      throw;
    }
  }

  std::vector<Region> regions_;
  std::size_t current_ = 0;  // the region being carved
  void* free_ = nullptr;
  std::size_t live_ = 0;  // entries allocated and not yet deallocated
};

}  // namespace pagekeeper::pool_detail
