// pagekeeper/embedding_vector.hpp
//
// EmbeddingVector: an immutable float32 vector shared between the embedding cache and its
// readers. The floats and the reference count live in ONE heap allocation
// (std::make_shared<float[]>) with no spare capacity, so a cached 384-d vector costs
// 16 + 4*384 bytes of heap plus this 24-byte handle; copying a handle is one atomic
// increment, never a copy of the floats.
//
// Thread safety: immutable; handles may be copied and read from any threads (the reference
// count is atomic, as for std::shared_ptr).

#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <utility>
#include <vector>

namespace pagekeeper {

class EmbeddingVector {
 public:
  // Bytes of the shared allocation's header (std::make_shared's control block: a vtable
  // pointer and two 32-bit counts in libstdc++ and libc++).
  static constexpr std::size_t kControlBlockBytes = 16;

  // The empty vector (size 0, no allocation).
  EmbeddingVector() = default;

  // A copy of `values` in a fresh allocation of exactly values.size() floats.
  // Throws std::length_error beyond 2^32-1 floats.
  explicit EmbeddingVector(std::span<const float> values) {
    if (values.size() > UINT32_MAX) throw std::length_error("EmbeddingVector: too many floats");
    if (values.empty()) return;
    auto data = std::make_shared_for_overwrite<float[]>(values.size());
    std::copy(values.begin(), values.end(), data.get());
    data_ = std::move(data);
    size_ = static_cast<std::uint32_t>(values.size());
  }

  // A vector of `size` floats written in place by `fill(std::span<float>)` before the
  // handle exists (so it is still immutable once anyone can see it): an embedder's output
  // lands in the final allocation with no second copy. `fill` must write every float; an
  // exception from it propagates and frees the allocation. Throws std::length_error beyond
  // 2^32-1 floats.
  template <class Fill>
  static EmbeddingVector filled(std::size_t size, Fill&& fill) {
    if (size > UINT32_MAX) throw std::length_error("EmbeddingVector: too many floats");
    EmbeddingVector out;
    if (size == 0) return out;
    auto data = std::make_shared_for_overwrite<float[]>(size);
    std::forward<Fill>(fill)(std::span<float>(data.get(), size));
    out.data_ = std::move(data);
    out.size_ = static_cast<std::uint32_t>(size);
    return out;
  }

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  const float* data() const noexcept { return data_.get(); }
  const float* begin() const noexcept { return data_.get(); }
  const float* end() const noexcept { return data_.get() + size_; }
  float operator[](std::size_t i) const noexcept { return data_[i]; }
  std::span<const float> values() const noexcept { return {data_.get(), size_}; }
  std::vector<float> to_vector() const { return {begin(), end()}; }

  // True when both handles share one allocation (a cache hit returns the cached one).
  bool same_storage(const EmbeddingVector& other) const noexcept {
    return data_ == other.data_;
  }

  // Bytes this value occupies: the handle itself plus its allocation (control block and
  // floats), without the allocator's own rounding. 0 heap bytes for the empty vector.
  std::size_t memory_bytes() const noexcept {
    return sizeof(EmbeddingVector) + (size_ == 0 ? 0 : kControlBlockBytes + size_ * sizeof(float));
  }

  friend bool operator==(const EmbeddingVector& a, const EmbeddingVector& b) noexcept {
    if (a.size_ != b.size_) return false;
    for (std::uint32_t i = 0; i < a.size_; ++i) {
      if (a.data_[i] != b.data_[i]) return false;
    }
    return true;
  }

 private:
  std::shared_ptr<const float[]> data_;
  std::uint32_t size_ = 0;
};

}  // namespace pagekeeper
