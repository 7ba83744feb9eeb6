// pagekeeper/embedding_key.hpp
//
// EmbeddingKey: the cache key of one embedding, (canonical model name, SHA-256 of the exact
// UTF-8 bytes of the text). The model is part of the key, so two models never share a slot;
// it must be the CANONICAL name (ModelRegistry::resolve), so aliases such as `default` share
// the slots of the model they name.
//
// Thread safety: a plain value type; distinct objects may be used from different threads.

#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <utility>

#include "pagekeeper/content_hash.hpp"

namespace pagekeeper {

struct EmbeddingKey {
  std::string model;
  ContentHash content_hash{};

  // The key of `text` under the canonical model name `model`.
  static EmbeddingKey of(std::string model, std::string_view text) {
    return EmbeddingKey{std::move(model), sha256(text)};
  }

  bool operator==(const EmbeddingKey&) const = default;

  // "model:hex-of-hash", for snapshots and logs.
  std::string to_string() const { return model + ':' + to_hex(content_hash); }
};

// Hash of a key: the first 8 bytes of the SHA-256 (already uniformly distributed, so no
// further mixing is needed) combined with the model name's hash, so equal texts under
// different models land in different buckets.
struct EmbeddingKeyHash {
  std::size_t operator()(const EmbeddingKey& key) const noexcept {
    std::uint64_t prefix = 0;
    std::memcpy(&prefix, key.content_hash.data(), sizeof(prefix));
    const std::uint64_t model_hash = std::hash<std::string_view>{}(key.model);
    return static_cast<std::size_t>(prefix ^ (model_hash * 0x9e3779b97f4a7c15ULL));
  }
};

}  // namespace pagekeeper

template <>
struct std::hash<pagekeeper::EmbeddingKey> : pagekeeper::EmbeddingKeyHash {};
