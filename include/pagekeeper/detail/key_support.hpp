// pagekeeper/detail/key_support.hpp
//
// Hash mixing and key printing shared by the pool's parts.
//
// Internal to PagedResourcePool (pagekeeper/pool.hpp): not part of the public API.

#pragma once

#include <concepts>
#include <cstdint>
#include <string>
#include <type_traits>

namespace pagekeeper::pool_detail {

inline std::uint64_t mix64(std::uint64_t h) noexcept {
  // MurmurHash3's finalizer: every input bit affects every output bit, so shard, tag and
  // table index can come from disjoint bit ranges even for identity hashes.
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

template <class K>
std::string default_key_text(const K& key) {
  if constexpr (std::is_convertible_v<const K&, std::string>) {
    return std::string(key);
  } else if constexpr (std::is_arithmetic_v<K>) {
    return std::to_string(key);
  } else if constexpr (requires(const K& k) { { to_string(k) } -> std::convertible_to<std::string>; }) {
    return to_string(key);
  } else {
    return "<key>";
  }
}

}  // namespace pagekeeper::pool_detail
