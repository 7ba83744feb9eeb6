// pagekeeper/detail/vector_slab.hpp (embedding; the storage of EmbeddingVector)
//
// VectorSlab: storage for EmbeddingVectors of one dimension count. The embedding cache
// (EmbeddingService) keeps one per dimension count and builds every vector it caches in it,
// so that neither filling the cache nor evicting from it goes through malloc:
//
//   - Chunks: every vector occupies one fixed-size chunk, EmbeddingVector::chunk_bytes(
//     dimensions) (a 16-byte header and the floats, no over-allocation: 1,552 bytes for 384
//     dimensions), carved in order from large blocks.
//   - Blocks: anonymous mappings obtained with MAP_POPULATE, so the kernel supplies a whole
//     block's pages in one call instead of taking one page fault per 4 KiB as the cache's
//     first writes reach them. Blocks grow from Options::first_block_bytes, doubling, up to
//     Options::max_block_bytes, so a small cache maps little and a large one few blocks.
//   - Recycling: a chunk whose last reference is dropped goes on a free list and is the next
//     one handed out (last in, first out, so its header is still in cache). An evicting cache
//     therefore reuses its own chunks and never grows past the blocks its byte budget (plus
//     the vectors callers still hold) needed once.
//   - Mapping ahead (Options::map_ahead): populating a block is the kernel's work, about
//     1 us per 4 KiB page here, so the allocation that maps a 2 MiB block waits over half a
//     millisecond (one in every 1,350 vectors of 384 dimensions). With map_ahead, when the
//     block being carved is half used, a background thread of the slab maps and populates
//     the next one, which the allocation that needs it takes ready: no request waits on the
//     kernel while the cache fills. The kernel's work is the same, on another thread; the
//     slab holds at most one such spare block (counted in stats) beyond the blocks it
//     carves. The thread starts at the first request and ends with the slab object.
//   - Keeping and returning memory: blocks are kept while the slab exists, since a cache
//     refills the memory its budget allows (an eviction does not return memory to the kernel,
//     as freeing to malloc did not either). trim() returns to the kernel every block none of
//     whose chunks is in use, and the pages wholly covered by free chunks in the others
//     (EmbeddingService::clear() calls it, and so does every eviction a PressureBroker makes
//     through EmbeddingService::resource_pool(), on the slabs it evicted vectors from). Free chunks over such pages are listed
//     outside the chunks (their bytes are gone) and handed out after the resident ones. The
//     mappings are released when the slab and its last vector are gone: vectors may outlive
//     the slab object.
//
// Thread safety: every method may be called concurrently from any thread. Locking rule:
// chunks are handed out (make, copy) and blocks carved, mapped or trimmed under the slab's
// one mutex; a chunk is returned WITHOUT a lock, on whatever thread drops its last reference
// (a lock-free push onto an atomic list, which the next allocation that finds its own list
// empty takes whole, so no pop races a push: no ABA). Returning never blocks, so a vector may
// be dropped under any other lock (the pool destroys evicted values under a shard lock). The
// map-ahead thread maps outside the mutex and hands its block over under it.

#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

#include "pagekeeper/embedding_vector.hpp"

namespace pagekeeper {

class VectorSlab {
 public:
  struct Options {
    // Size of the first block; each further block doubles, up to max_block_bytes. Both are
    // rounded up to a whole number of pages and to at least one chunk.
    std::size_t first_block_bytes = std::size_t{64} << 10;
    std::size_t max_block_bytes = std::size_t{2} << 20;
    // Map the next block on a background thread before it is needed (see above).
    bool map_ahead = false;
  };

  struct Stats {
    std::size_t dimensions = 0;        // floats per vector
    std::size_t blocks = 0;            // blocks mapped now, a spare block included
    std::uint64_t mapped_bytes = 0;    // their bytes (populated when mapped)
    std::uint64_t released_bytes = 0;  // of which trim() gave back to the kernel and no vector
                                       // has used since: resident = mapped - released
    std::uint64_t spare_bytes = 0;     // of which mapped ahead and not carved from yet
    std::uint64_t blocks_mapped_ahead = 0;  // blocks ever taken ready from the map-ahead thread
    bool map_ahead_pending = false;    // the map-ahead thread has a request it has not finished
    std::size_t live_vectors = 0;      // chunks referenced by a vector now
    std::uint64_t chunk_bytes = 0;     // bytes of one chunk
  };

  // Throws std::invalid_argument for 0 dimensions or more than 2^32-1.
  explicit VectorSlab(std::size_t dimensions, Options options);
  explicit VectorSlab(std::size_t dimensions) : VectorSlab(dimensions, Options{}) {}
  ~VectorSlab();
  VectorSlab(const VectorSlab&) = delete;
  VectorSlab& operator=(const VectorSlab&) = delete;

  std::size_t dimensions() const noexcept { return dimensions_; }

  // A vector of dimensions() floats written in place by `fill(std::span<float>)` in one of
  // this slab's chunks, before the handle exists (as EmbeddingVector::filled). `fill` must
  // write every float; an exception from it propagates and the chunk goes back to the slab.
  // Throws std::bad_alloc when no block can be mapped.
  template <class Fill>
  EmbeddingVector make(Fill&& fill) {
    Header* header = allocate();
    // A recycled or freshly mapped chunk is cold: start loading its lines for writing, so
    // they arrive while `fill` computes instead of stalling its stores.
    float* floats = EmbeddingVector::floats_of(header);
    for (std::size_t offset = 0; offset < dimensions_; offset += 64 / sizeof(float)) {
      __builtin_prefetch(floats + offset, 1, 3);
    }
    try {
      std::forward<Fill>(fill)(std::span<float>(floats, dimensions_));
    } catch (...) {
      EmbeddingVector::free_chunk(header);
      throw;
    }
    return EmbeddingVector(header, dimensions_);
  }

  // A copy of `values`, which must hold exactly dimensions() floats (std::invalid_argument
  // otherwise).
  EmbeddingVector copy(std::span<const float> values);

  // Returns to the kernel every block with no chunk in use, a spare block, and in the other
  // blocks every page that lies wholly inside a run of free chunks (MADV_DONTNEED: the
  // mapping stays; a chunk handed out over such a page later gets it back zero-filled, one
  // page fault). Returns the resident bytes given back. A block the map-ahead thread is
  // mapping at the time is unmapped when it arrives, so nothing is kept that the slab's
  // state at trim() did not need. Costs a walk of the free chunks and of the blocks' chunk
  // bitmaps, under the slab's mutex.
  std::uint64_t trim();

  Stats stats() const;

 private:
  struct Core;
  friend class EmbeddingVector;
  using Header = EmbeddingVector::Header;

  // A chunk with one reference, owned by this slab. Throws std::bad_alloc.
  Header* allocate();

  std::size_t dimensions_;
  Core* core_;
};

}  // namespace pagekeeper
