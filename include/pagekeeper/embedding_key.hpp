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

#include "pagekeeper/detail/content_hash.hpp"

namespace pagekeeper {

struct EmbeddingKey {
  std::string model;
  ContentHash content_hash{};

  // The key of `text` under the canonical model name `model`.
  static EmbeddingKey of(std::string model, std::string_view text) {
    return EmbeddingKey{std::move(model), sha256(text)};
  }

  // The hash first: it differs between almost all unequal keys, the model rarely does.
  bool operator==(const EmbeddingKey& other) const {
    return content_hash == other.content_hash && model == other.model;
  }

  // "model:hex-of-hash", for snapshots and logs.
  std::string to_string() const { return model + ':' + to_hex(content_hash); }
};

// Hash of a key: the first 8 bytes of the SHA-256, which are already uniformly distributed.
// The model is left out on purpose (hashing a string on every lookup costs more than it
// buys): the same text under two models lands in one bucket and equality tells them apart,
// and a process serves few models.
struct EmbeddingKeyHash {
  std::size_t operator()(const EmbeddingKey& key) const noexcept {
    std::uint64_t prefix = 0;
    std::memcpy(&prefix, key.content_hash.data(), sizeof(prefix));
    return static_cast<std::size_t>(prefix);
  }
};

}  // namespace pagekeeper

template <>
struct std::hash<pagekeeper::EmbeddingKey> : pagekeeper::EmbeddingKeyHash {};
