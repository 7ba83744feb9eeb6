#include "pagekeeper/errors.hpp"

#include <limits>

#include <nlohmann/json.hpp>

namespace pagekeeper {
namespace {

std::uint64_t saturating_add(std::uint64_t a, std::uint64_t b) {
  const std::uint64_t sum = a + b;
  return sum < a ? std::numeric_limits<std::uint64_t>::max() : sum;
}

std::uint64_t saturating_mul(std::uint64_t a, std::uint64_t b) {
  std::uint64_t product = 0;
  if (__builtin_mul_overflow(a, b, &product)) return std::numeric_limits<std::uint64_t>::max();
  return product;
}

}  // namespace

TierExhausted::TierExhausted(std::string tier_, std::uint64_t requested, std::uint64_t available,
                             std::uint64_t evicted)
    : PagingError("tier '" + tier_ + "' exhausted: requested " + std::to_string(requested) +
                  " bytes, " + std::to_string(available) + " available after evicting " +
                  std::to_string(evicted)),
      tier(std::move(tier_)),
      requested_bytes(requested),
      available_bytes(available),
      evicted_bytes(evicted) {}

nlohmann::json TierExhausted::to_json() const {
  return {{"kind", "tierExhausted"},
          {"tier", tier},
          {"requestedBytes", requested_bytes},
          {"availableBytes", available_bytes},
          {"evictedBytes", evicted_bytes}};
}

DiskCapacity::DiskCapacity(std::string tier_, std::uint64_t used, std::uint64_t capacity,
                           std::uint64_t projected, std::uint32_t bps)
    : PagingError("disk tier '" + tier_ + "' would exceed " + std::to_string(bps) +
                  " basis points of capacity: used " + std::to_string(used) + " + projected " +
                  std::to_string(projected) + " of " + std::to_string(capacity) + " bytes"),
      tier(std::move(tier_)),
      used_bytes(used),
      capacity_bytes(capacity),
      projected_bytes(projected),
      max_pressure_basis_points(bps) {}

nlohmann::json DiskCapacity::to_json() const {
  return {{"kind", "diskCapacity"},       {"tier", tier},
          {"usedBytes", used_bytes},      {"capacityBytes", capacity_bytes},
          {"projectedBytes", projected_bytes},
          {"maxPressureBasisPoints", max_pressure_basis_points}};
}

TierUnavailable::TierUnavailable(std::string tier_, std::string reason_)
    : PagingError("tier '" + tier_ + "' unavailable: " + reason_),
      tier(std::move(tier_)),
      reason(std::move(reason_)) {}

nlohmann::json TierUnavailable::to_json() const {
  return {{"kind", "tierUnavailable"}, {"tier", tier}, {"reason", reason}};
}

void ensure_projected_disk_capacity(const std::string& tier, std::uint64_t used_bytes,
                                    std::uint64_t capacity_bytes, std::uint64_t projected_bytes,
                                    std::uint32_t basis_points) {
  if (capacity_bytes == 0) throw TierUnavailable(tier, "disk tier capacity is unknown");
  if (basis_points == 0 || basis_points > 10000) {
    throw TierUnavailable(tier, "invalid disk capacity threshold: " +
                                    std::to_string(basis_points) + " basis points");
  }
  const std::uint64_t projected_total = saturating_add(used_bytes, projected_bytes);
  const std::uint64_t limit = saturating_mul(capacity_bytes, basis_points) / 10000;
  if (projected_total > limit) {
    throw DiskCapacity(tier, used_bytes, capacity_bytes, projected_bytes, basis_points);
  }
}

}  // namespace pagekeeper
