// pagekeeper/errors.hpp
//
// Typed errors of the paging layer. Each is an exception (derived from PagingError, itself a
// std::runtime_error) carrying structured fields, and serializes to JSON tagged with `kind`
// and camelCase fields, as in the original system:
//   {"kind":"tierExhausted","tier":..,"requestedBytes":..,"availableBytes":..,"evictedBytes":..}
//   {"kind":"diskCapacity","tier":..,"usedBytes":..,"capacityBytes":..,"projectedBytes":..,
//    "maxPressureBasisPoints":..}
//   {"kind":"tierUnavailable","tier":..,"reason":..}
//
// Thread safety: immutable values; safe to share.

#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace pagekeeper {

class PagingError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  // The JSON form, with a `kind` tag.
  virtual nlohmann::json to_json() const = 0;
};

// A tier could not make room: what was asked, what was available, what eviction freed.
class TierExhausted : public PagingError {
 public:
  TierExhausted(std::string tier, std::uint64_t requested_bytes, std::uint64_t available_bytes,
                std::uint64_t evicted_bytes);
  nlohmann::json to_json() const override;
  std::string tier;
  std::uint64_t requested_bytes;
  std::uint64_t available_bytes;
  std::uint64_t evicted_bytes;
};

// A write would push a disk tier past its allowed fraction of capacity.
class DiskCapacity : public PagingError {
 public:
  DiskCapacity(std::string tier, std::uint64_t used_bytes, std::uint64_t capacity_bytes,
               std::uint64_t projected_bytes, std::uint32_t max_pressure_basis_points);
  nlohmann::json to_json() const override;
  std::string tier;
  std::uint64_t used_bytes;
  std::uint64_t capacity_bytes;
  std::uint64_t projected_bytes;
  std::uint32_t max_pressure_basis_points;
};

// A tier cannot be used at all (unknown capacity, invalid configuration, missing backend).
class TierUnavailable : public PagingError {
 public:
  TierUnavailable(std::string tier, std::string reason);
  nlohmann::json to_json() const override;
  std::string tier;
  std::string reason;
};

inline constexpr std::uint32_t kDefaultDiskPressureBasisPoints = 9500;

// Refuses a write of `projected_bytes` onto a disk tier holding `used_bytes` of
// `capacity_bytes` when used + projected would exceed basis_points/10000 of capacity.
// Rules (original's, kept): capacity 0 -> TierUnavailable("disk tier capacity is unknown");
// basis_points 0 or > 10000 -> TierUnavailable("invalid disk capacity threshold: N basis
// points"); the comparison is strict (exactly at the limit is allowed) and all arithmetic
// saturates, so an overflowing projection is refused rather than wrapped.
// Throws DiskCapacity when refused.
void ensure_projected_disk_capacity(const std::string& tier, std::uint64_t used_bytes,
                                    std::uint64_t capacity_bytes, std::uint64_t projected_bytes,
                                    std::uint32_t basis_points = kDefaultDiskPressureBasisPoints);

}  // namespace pagekeeper
