// The byte form of vectors in lower tiers, and their keys.

#include "pagekeeper/tier_record.hpp"

#include <bit>
#include <cstring>

// The state on the stack rather than XXH3_createState()'s heap allocation.
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "pagekeeper/detail/vector_slab.hpp"

namespace pagekeeper {
namespace {

static_assert(std::endian::native == std::endian::little,
              "tier records are little-endian; a big-endian build needs byte swaps here");

template <class T>
void put(std::string& out, std::size_t offset, T value) {
  std::memcpy(out.data() + offset, &value, sizeof(T));
}

template <class T>
T get(std::string_view in, std::size_t offset) {
  T value;
  std::memcpy(&value, in.data() + offset, sizeof(T));
  return value;
}

// XXH3-64 of the key, the first 16 header bytes and the floats.
std::uint64_t record_checksum(std::string_view key, std::string_view header16,
                              std::string_view payload) {
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  XXH3_64bits_update(&state, key.data(), key.size());
  XXH3_64bits_update(&state, header16.data(), header16.size());
  XXH3_64bits_update(&state, payload.data(), payload.size());
  return XXH3_64bits_digest(&state);
}

bool is_finite_bits(float value) {
  constexpr std::uint32_t kExponent = 0x7f800000u;
  return (std::bit_cast<std::uint32_t>(value) & kExponent) != kExponent;
}

}  // namespace

std::string encode_vector_record(std::string_view key, std::span<const float> values) {
  std::string out(kTierRecordHeaderBytes + values.size() * sizeof(float), '\0');
  put<std::uint32_t>(out, 0, kTierRecordMagic);
  put<std::uint8_t>(out, 4, kTierRecordVersion);
  put<std::uint8_t>(out, 5, kTierElementFloat32);
  put<std::uint32_t>(out, 8, static_cast<std::uint32_t>(values.size()));
  if (!values.empty()) {
    std::memcpy(out.data() + kTierRecordHeaderBytes, values.data(), values.size() * sizeof(float));
  }
  const std::string_view view(out);
  put<std::uint64_t>(out, 16,
                     record_checksum(key, view.substr(0, 16), view.substr(kTierRecordHeaderBytes)));
  return out;
}

std::optional<EmbeddingVector> decode_vector_record(std::string_view key, std::string_view record,
                                                    std::size_t expected_dimensions,
                                                    VectorSlab* storage) {
  if (expected_dimensions == 0 || record.size() < kTierRecordHeaderBytes) return std::nullopt;
  if (get<std::uint32_t>(record, 0) != kTierRecordMagic ||
      get<std::uint8_t>(record, 4) != kTierRecordVersion ||
      get<std::uint8_t>(record, 5) != kTierElementFloat32 || get<std::uint16_t>(record, 6) != 0 ||
      get<std::uint32_t>(record, 12) != 0) {
    return std::nullopt;
  }
  const std::uint32_t dimensions = get<std::uint32_t>(record, 8);
  if (dimensions != expected_dimensions ||
      record.size() != kTierRecordHeaderBytes + std::size_t{dimensions} * sizeof(float)) {
    return std::nullopt;
  }
  const std::string_view payload = record.substr(kTierRecordHeaderBytes);
  if (get<std::uint64_t>(record, 16) != record_checksum(key, record.substr(0, 16), payload)) {
    return std::nullopt;
  }
  bool finite = true;
  auto fill = [&](std::span<float> out) {
    std::memcpy(out.data(), payload.data(), payload.size());
    for (const float value : out) finite &= is_finite_bits(value);
  };
  EmbeddingVector vector = storage != nullptr && storage->dimensions() == dimensions
                               ? storage->make(fill)
                               : EmbeddingVector::filled(dimensions, fill);
  if (!finite) return std::nullopt;
  return vector;
}

std::string identity_digest(std::string_view identity) {
  return to_hex(sha256(identity)).substr(0, 32);
}

std::optional<std::string> tier_key(std::string_view model, std::string_view identity_digest_hex,
                                    const ContentHash& text_hash) {
  const std::size_t size = model.size() + 1 + identity_digest_hex.size() + 1 + 64;
  if (size > kMaxTierKeyBytes) return std::nullopt;
  std::string key;
  key.reserve(size);
  key.append(model).append(1, '|').append(identity_digest_hex).append(1, '|').append(to_hex(text_hash));
  return key;
}

}  // namespace pagekeeper
