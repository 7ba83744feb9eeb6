// pagekeeper/detail/aligned_mapping.hpp
//
// Anonymous memory mapped on a chosen boundary, optionally marked for transparent huge pages:
// what the pool's large arrays (entry arenas, hash tables, frequency sketches) are built on.
//
// Internal to PagedResourcePool (pagekeeper/pool.hpp): not part of the public API.
// Thread-safe (system calls only).

#pragma once

#include <cstddef>
#include <cstdint>
#include <new>

#include <sys/mman.h>

namespace pagekeeper::pool_detail {

// The x86-64 and AArch64 (4 KiB granule) transparent huge page.
inline constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;

// Maps `bytes` of zeroed memory starting on an `alignment` boundary (a power of two, at least
// the page size): maps `alignment` more than needed and unmaps what lies outside. With
// `huge_pages`, advises the kernel to back it with huge pages (an array touched at random
// lines misses the TLB on most of them at 4 KiB pages: a page walk, which a prefetch of the
// line waits on); without them from the kernel the memory works the same. Release it with
// ::munmap(p, bytes). Throws std::bad_alloc.
inline void* map_aligned(std::size_t bytes, std::size_t alignment, bool huge_pages) {
  void* raw = ::mmap(nullptr, bytes + alignment, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const auto start = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t aligned = (start + alignment - 1) & ~std::uintptr_t{alignment - 1};
  if (aligned > start) ::munmap(raw, aligned - start);
  if (const std::uintptr_t tail = start + alignment - aligned; tail > 0) {
    ::munmap(reinterpret_cast<void*>(aligned + bytes), tail);
  }
  // Advice only: it may fail (no huge pages configured) without harm.
  if (huge_pages) ::madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE);
  return reinterpret_cast<void*>(aligned);
}

}  // namespace pagekeeper::pool_detail
