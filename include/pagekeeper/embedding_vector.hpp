// pagekeeper/embedding_vector.hpp
//
// EmbeddingVector: an immutable float32 vector shared between the embedding cache and its
// readers. The floats and their reference count live in ONE chunk of memory, a 16-byte
// header followed by the floats with no spare capacity (rounded up to 8 bytes), so a cached
// 384-d vector costs 16 + 4*384 bytes of storage plus this 16-byte handle; copying a handle
// is one atomic increment, never a copy of the floats.
//
// Where a chunk comes from: a VectorSlab (pagekeeper/detail/vector_slab.hpp: the embedding cache's
// per-dimension storage, which recycles chunks instead of going through malloc and the
// kernel for every vector) or, for a vector built outside a slab (the constructor and
// filled() below), the heap. The handle does not care which: the header names the slab to
// return the chunk to, or none for the heap.
//
// Thread safety: immutable; handles may be copied, read and dropped from any threads (the
// reference count is atomic, as for std::shared_ptr). The last handle to go returns the
// chunk on whatever thread drops it.

#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <span>
#include <stdexcept>
#include <utility>
#include <vector>

namespace pagekeeper {

class VectorSlab;

class EmbeddingVector {
 public:
  // Bytes of the header in front of every vector's floats (reference count and owner).
  static constexpr std::size_t kHeaderBytes = 16;

  // Bytes of the chunk that holds a vector of `size` floats: the header and the floats,
  // rounded up to 8 bytes so consecutive chunks in a slab keep their headers aligned.
  // 0 for the empty vector (it has no chunk).
  static constexpr std::size_t chunk_bytes(std::size_t size) noexcept {
    return size == 0 ? 0 : kHeaderBytes + (size * sizeof(float) + 7) / 8 * 8;
  }

  // The empty vector (size 0, no chunk).
  EmbeddingVector() = default;

  // A copy of `values` in a fresh heap chunk of exactly values.size() floats.
  // Throws std::length_error beyond 2^32-1 floats.
  explicit EmbeddingVector(std::span<const float> values)
      : EmbeddingVector(filled(values.size(), [&](std::span<float> out) {
          std::copy(values.begin(), values.end(), out.begin());
        })) {}

  // A vector of `size` floats written in place by `fill(std::span<float>)` before the
  // handle exists (so it is still immutable once anyone can see it), in a heap chunk. `fill`
  // must write every float; an exception from it propagates and frees the chunk. Throws
  // std::length_error beyond 2^32-1 floats. VectorSlab::make is the same in a slab's chunk.
  template <class Fill>
  static EmbeddingVector filled(std::size_t size, Fill&& fill) {
    if (size > UINT32_MAX) throw std::length_error("EmbeddingVector: too many floats");
    if (size == 0) return {};
    Header* header = new (::operator new(chunk_bytes(size))) Header{};
    try {
      std::forward<Fill>(fill)(std::span<float>(floats_of(header), size));
    } catch (...) {
      ::operator delete(header);
      throw;
    }
    return EmbeddingVector(header, size);
  }

  EmbeddingVector(const EmbeddingVector& other) noexcept : data_(other.data_), size_(other.size_) {
    if (data_ != nullptr) header_of(data_)->refs.fetch_add(1, std::memory_order_relaxed);
  }
  EmbeddingVector(EmbeddingVector&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  EmbeddingVector& operator=(const EmbeddingVector& other) noexcept {
    EmbeddingVector copy(other);
    swap(copy);
    return *this;
  }
  EmbeddingVector& operator=(EmbeddingVector&& other) noexcept {
    EmbeddingVector taken(std::move(other));
    swap(taken);
    return *this;
  }
  ~EmbeddingVector() { release(); }

  void swap(EmbeddingVector& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
  }

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  const float* data() const noexcept { return data_; }
  const float* begin() const noexcept { return data_; }
  const float* end() const noexcept { return data_ + size_; }
  float operator[](std::size_t i) const noexcept { return data_[i]; }
  std::span<const float> values() const noexcept { return {data_, size_}; }
  std::vector<float> to_vector() const { return {begin(), end()}; }

  // True when both handles share one chunk (a cache hit returns the cached one).
  bool same_storage(const EmbeddingVector& other) const noexcept { return data_ == other.data_; }

  // Bytes this value occupies: the handle itself plus its chunk (header and floats), without
  // a heap allocator's own rounding (a slab has none). 0 chunk bytes for the empty vector.
  std::size_t memory_bytes() const noexcept { return sizeof(EmbeddingVector) + chunk_bytes(size_); }

  friend bool operator==(const EmbeddingVector& a, const EmbeddingVector& b) noexcept {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
  }

 private:
  friend class VectorSlab;

  // The chunk's first 16 bytes. `link` names the VectorSlab core the chunk returns to (null:
  // a heap chunk, freed with operator delete); while a slab chunk is free it holds the next
  // free chunk instead (see vector_slab.hpp).
  struct Header {
    std::atomic<std::uint32_t> refs{1};
    std::uint32_t unused = 0;
    void* link = nullptr;
  };
  static_assert(sizeof(Header) == kHeaderBytes);

  static float* floats_of(Header* header) noexcept {
    return reinterpret_cast<float*>(reinterpret_cast<std::byte*>(header) + kHeaderBytes);
  }
  static Header* header_of(const float* data) noexcept {
    return reinterpret_cast<Header*>(
        reinterpret_cast<std::byte*>(const_cast<float*>(data)) - kHeaderBytes);
  }

  // Takes the reference `header` was created with.
  EmbeddingVector(Header* header, std::size_t size) noexcept
      : data_(floats_of(header)), size_(static_cast<std::uint32_t>(size)) {}

  void release() noexcept {
    if (data_ == nullptr) return;
    Header* header = header_of(data_);
    // The sole owner skips the read-modify-write (nobody else can add a reference to a
    // chunk only this handle names); the cache's evictions are almost always that case.
    if (header->refs.load(std::memory_order_acquire) == 1 ||
        header->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      free_chunk(header);
    }
  }
  // Returns a chunk whose last reference is gone to its slab, or to the heap.
  // Defined in src/embedding/vector_slab.cpp.
  static void free_chunk(Header* header) noexcept;

  const float* data_ = nullptr;
  std::uint32_t size_ = 0;
};

}  // namespace pagekeeper
