// pagekeeper/detail/atomic_word.hpp
//
// Which keys and values the pool reads without a lock.
//
// Internal to PagedResourcePool (pagekeeper/pool.hpp): not part of the public API.

#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <type_traits>

namespace pagekeeper::pool_detail {

// True when T can be read and written as one lock-free atomic word (std::atomic_ref) and
// needs no constructor or destructor: keys and values of this kind are read without any lock.
template <class T>
constexpr bool is_atomic_word() {
  if constexpr (std::is_trivially_copyable_v<T> && std::is_trivially_default_constructible_v<T> &&
                std::is_trivially_destructible_v<T>) {
    return std::atomic_ref<T>::is_always_lock_free;
  } else {
    return false;
  }
}

template <class T>
constexpr std::size_t atomic_word_alignment() {
  if constexpr (is_atomic_word<T>()) {
    return std::max(alignof(T), std::atomic_ref<T>::required_alignment);
  } else {
    return alignof(T);
  }
}

}  // namespace pagekeeper::pool_detail
