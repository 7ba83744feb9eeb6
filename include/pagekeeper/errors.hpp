// pagekeeper/errors.hpp
//
// The root of the library's typed errors, and the typed errors of the paging layer.
//
// Every exception type the library defines derives from pagekeeper::Error (itself a
// std::runtime_error), so a caller can tell "pagekeeper refused or failed" from anything else
// with one handler. Two families below it:
//   - InvalidArgument: an argument or configuration value was refused (a caller's mistake;
//     the server answers 4xx). Refusals of a precondition the type system could not express
//     (a null pointer, a zero size) stay plain std::invalid_argument.
//   - PagingError: a tier could not store or hold something. Each carries structured fields;
//     the server gives them a JSON form tagged with `kind` (pagekeeper/core_json.hpp).
// Other components' errors (EmbedderError, AdapterLoadError, ServerError, LoadError, ...)
// derive from Error directly or through one of these.
//
// Thread safety: immutable values; safe to share.

#pragma once

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

namespace pagekeeper {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An argument or configuration value was refused; what() names it and the reason.
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

class PagingError : public Error {
 public:
  using Error::Error;
};

// A tier could not make room: what was asked, what was available, what eviction freed.
class TierExhausted : public PagingError {
 public:
  TierExhausted(std::string tier_name, std::uint64_t requested, std::uint64_t available,
                std::uint64_t evicted)
      : PagingError("tier '" + tier_name + "' exhausted: requested " + std::to_string(requested) +
                    " bytes, " + std::to_string(available) + " available after evicting " +
                    std::to_string(evicted)),
        tier(std::move(tier_name)),
        requested_bytes(requested),
        available_bytes(available),
        evicted_bytes(evicted) {}
  std::string tier;
  std::uint64_t requested_bytes;
  std::uint64_t available_bytes;
  std::uint64_t evicted_bytes;
};

// A write would push a disk tier past its allowed fraction of capacity.
class DiskCapacity : public PagingError {
 public:
  DiskCapacity(std::string tier_name, std::uint64_t used, std::uint64_t capacity,
               std::uint64_t projected, std::uint32_t basis_points)
      : PagingError("disk tier '" + tier_name + "' would exceed " + std::to_string(basis_points) +
                    " basis points of capacity: used " + std::to_string(used) + " + projected " +
                    std::to_string(projected) + " of " + std::to_string(capacity) + " bytes"),
        tier(std::move(tier_name)),
        used_bytes(used),
        capacity_bytes(capacity),
        projected_bytes(projected),
        max_pressure_basis_points(basis_points) {}
  std::string tier;
  std::uint64_t used_bytes;
  std::uint64_t capacity_bytes;
  std::uint64_t projected_bytes;
  std::uint32_t max_pressure_basis_points;
};

// A tier cannot be used at all (unknown capacity, invalid configuration, missing backend).
class TierUnavailable : public PagingError {
 public:
  TierUnavailable(std::string tier_name, std::string why)
      : PagingError("tier '" + tier_name + "' unavailable: " + why),
        tier(std::move(tier_name)),
        reason(std::move(why)) {}
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
inline void ensure_projected_disk_capacity(
    const std::string& tier, std::uint64_t used_bytes, std::uint64_t capacity_bytes,
    std::uint64_t projected_bytes, std::uint32_t basis_points = kDefaultDiskPressureBasisPoints) {
  if (capacity_bytes == 0) throw TierUnavailable(tier, "disk tier capacity is unknown");
  if (basis_points == 0 || basis_points > 10000) {
    throw TierUnavailable(tier, "invalid disk capacity threshold: " +
                                    std::to_string(basis_points) + " basis points");
  }
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t projected_total = 0;
  if (__builtin_add_overflow(used_bytes, projected_bytes, &projected_total)) projected_total = kMax;
  std::uint64_t scaled_capacity = 0;
  if (__builtin_mul_overflow(capacity_bytes, std::uint64_t{basis_points}, &scaled_capacity)) {
    scaled_capacity = kMax;
  }
  if (projected_total > scaled_capacity / 10000) {
    throw DiskCapacity(tier, used_bytes, capacity_bytes, projected_bytes, basis_points);
  }
}

}  // namespace pagekeeper
