// pagekeeper/tier_record.hpp
//
// The byte form of an embedding vector in a lower tier (the local LMDB tier, Redis), and the
// keys it is stored under.
//
// Record layout, little-endian, 24 bytes of header then the floats:
//   offset 0  u32  magic 0x5254'4b50 ("PKTR")
//          4  u8   format version (kTierRecordVersion)
//          5  u8   element type (1 = float32)
//          6  u16  reserved, 0
//          8  u32  dimensions
//         12  u32  reserved, 0
//         16  u64  XXH3-64 of the tier key, bytes 0..16 of the header and the floats
//         24  dimensions * 4 bytes: IEEE-754 float32, little-endian
// The checksum covers the key the record is stored under, so a record read back under
// another key (a store that mixed up values) is refused like a damaged one. A record that
// fails any check decodes to nullopt: the caller counts it, removes it and treats it as a
// miss, never as a vector.
//
// Tier keys: "<canonical model>|<identity digest>|<text digest>", where the identity digest
// is the hex of the first 16 bytes of SHA-256 of the model's identity (Embedder::identity():
// the GGUF file's digest, a remote model's URL, name and dimensions, the lexical embedder's
// algorithm version) and the text digest the hex SHA-256 of the text. Two models that share
// a name but not an identity (another GGUF file under the same name) never read each other's
// records from a shared store.
//
// Thread safety: free functions over their arguments; safe from any thread.

#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "pagekeeper/detail/content_hash.hpp"
#include "pagekeeper/embedding_vector.hpp"

namespace pagekeeper {

class VectorSlab;

inline constexpr std::uint32_t kTierRecordMagic = 0x52544b50;  // "PKTR" little-endian
inline constexpr std::uint8_t kTierRecordVersion = 1;
inline constexpr std::uint8_t kTierElementFloat32 = 1;
inline constexpr std::size_t kTierRecordHeaderBytes = 24;
// Longest tier key (LMDB's default key limit is 511 bytes).
inline constexpr std::size_t kMaxTierKeyBytes = 480;

// The record of `values` stored under `key`.
std::string encode_vector_record(std::string_view key, std::span<const float> values);

// The vector of a record stored under `key`, or nullopt when the record is damaged or not a
// vector of `expected_dimensions` float32 (wrong magic, version, element type, length,
// dimensions, checksum, or a non-finite value). Built in `storage` when given and of the
// right dimensions, else on the heap. Never throws for any bytes (besides std::bad_alloc).
std::optional<EmbeddingVector> decode_vector_record(std::string_view key, std::string_view record,
                                                    std::size_t expected_dimensions,
                                                    VectorSlab* storage = nullptr);

// Hex of the first 16 bytes of SHA-256 of a model identity.
std::string identity_digest(std::string_view identity);

// The tier key of a text (by its SHA-256) under canonical model `model` with identity digest
// `identity_digest_hex` (identity_digest()). nullopt when the key would exceed
// kMaxTierKeyBytes (an absurdly long model name): such a model bypasses the tiers.
std::optional<std::string> tier_key(std::string_view model, std::string_view identity_digest_hex,
                                    const ContentHash& text_hash);

}  // namespace pagekeeper
