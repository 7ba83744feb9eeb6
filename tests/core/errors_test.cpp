#include <limits>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "pagekeeper/errors.hpp"
#include "pagekeeper/core_json.hpp"

namespace pagekeeper {
namespace {

TEST(DiskGuard, AllowsUpToTheThreshold) {
  EXPECT_NO_THROW(ensure_projected_disk_capacity("disk", 900, 1000, 50));
  // Exactly 95% is allowed: the comparison is strict.
  EXPECT_NO_THROW(ensure_projected_disk_capacity("disk", 900, 1000, 50, 9500));
}

TEST(DiskGuard, RefusesPastTheThresholdAndEchoesFields) {
  try {
    ensure_projected_disk_capacity("disk", 900, 1000, 51);
    FAIL() << "expected DiskCapacity";
  } catch (const DiskCapacity& e) {
    EXPECT_EQ(e.tier, "disk");
    EXPECT_EQ(e.used_bytes, 900u);
    EXPECT_EQ(e.capacity_bytes, 1000u);
    EXPECT_EQ(e.projected_bytes, 51u);
    EXPECT_EQ(e.max_pressure_basis_points, 9500u);
    const nlohmann::json j = e;
    EXPECT_EQ(j.at("kind"), "diskCapacity");
    EXPECT_EQ(j.at("usedBytes"), 900);
    EXPECT_EQ(j.at("capacityBytes"), 1000);
    EXPECT_EQ(j.at("projectedBytes"), 51);
    EXPECT_EQ(j.at("maxPressureBasisPoints"), 9500);
  }
}

TEST(DiskGuard, SaturatingOverflowIsRefused) {
  constexpr auto kMax = std::numeric_limits<std::uint64_t>::max();
  EXPECT_THROW(ensure_projected_disk_capacity("disk", kMax - 1, kMax, 10), DiskCapacity);
  EXPECT_THROW(ensure_projected_disk_capacity("disk", 10, kMax, kMax), DiskCapacity);
}

TEST(DiskGuard, ZeroCapacityIsUnavailable) {
  try {
    ensure_projected_disk_capacity("disk", 0, 0, 1);
    FAIL();
  } catch (const TierUnavailable& e) {
    EXPECT_EQ(e.reason, "disk tier capacity is unknown");
    EXPECT_EQ(nlohmann::json(e).at("kind"), "tierUnavailable");
  }
}

TEST(DiskGuard, OutOfRangeThresholdIsUnavailable) {
  try {
    ensure_projected_disk_capacity("disk", 0, 1000, 1, 10001);
    FAIL();
  } catch (const TierUnavailable& e) {
    EXPECT_EQ(e.reason, "invalid disk capacity threshold: 10001 basis points");
  }
  EXPECT_THROW(ensure_projected_disk_capacity("disk", 0, 1000, 1, 0), TierUnavailable);
}

TEST(TypedErrors, TierExhaustedSerializesCamelCase) {
  const TierExhausted e("adapters", 100, 40, 60);
  const nlohmann::json j = e;
  EXPECT_EQ(j.at("kind"), "tierExhausted");
  EXPECT_EQ(j.at("tier"), "adapters");
  EXPECT_EQ(j.at("requestedBytes"), 100);
  EXPECT_EQ(j.at("availableBytes"), 40);
  EXPECT_EQ(j.at("evictedBytes"), 60);
  EXPECT_NE(std::string(e.what()).find("adapters"), std::string::npos);
}

}  // namespace
}  // namespace pagekeeper
