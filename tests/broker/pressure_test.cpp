#include <cmath>
#include <limits>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "pagekeeper/pressure.hpp"

namespace pagekeeper {
namespace {

TEST(PressureTiers, DefaultThresholdsMatchTheOriginal) {
  EXPECT_EQ(classify(0.0), PressureTier::normal);
  EXPECT_EQ(classify(0.59), PressureTier::normal);
  EXPECT_EQ(classify(0.60), PressureTier::warning);
  EXPECT_EQ(classify(0.79), PressureTier::warning);
  EXPECT_EQ(classify(0.80), PressureTier::high);
  EXPECT_EQ(classify(0.94), PressureTier::high);
  EXPECT_EQ(classify(0.95), PressureTier::critical);
  EXPECT_EQ(classify(1.5), PressureTier::critical);
}

TEST(PressureTiers, NanAndNegativeAreNormal) {
  EXPECT_EQ(classify(std::numeric_limits<double>::quiet_NaN()), PressureTier::normal);
  EXPECT_EQ(classify(-1.0), PressureTier::normal);
}

TEST(PressureTiers, TiersAreOrdered) {
  EXPECT_LT(PressureTier::normal, PressureTier::warning);
  EXPECT_LT(PressureTier::warning, PressureTier::high);
  EXPECT_LT(PressureTier::high, PressureTier::critical);
}

TEST(PressureTiers, LowercaseLabelsRoundTrip) {
  EXPECT_EQ(tier_label(PressureTier::normal), "normal");
  EXPECT_EQ(tier_label(PressureTier::warning), "warning");
  EXPECT_EQ(tier_label(PressureTier::high), "high");
  EXPECT_EQ(tier_label(PressureTier::critical), "critical");
  for (auto t : {PressureTier::normal, PressureTier::warning, PressureTier::high,
                 PressureTier::critical}) {
    EXPECT_EQ(parse_tier(tier_label(t)), t);
    EXPECT_EQ(nlohmann::json(t), std::string(tier_label(t)));
  }
  EXPECT_EQ(parse_tier("High"), std::nullopt);
  EXPECT_EQ(parse_tier(""), std::nullopt);
}

TEST(PressureTiers, CustomThresholdsAreHonoured) {
  const PressureThresholds t{0.5, 0.7, 0.9};
  EXPECT_NO_THROW(t.validate());
  EXPECT_EQ(classify(0.49, t), PressureTier::normal);
  EXPECT_EQ(classify(0.5, t), PressureTier::warning);
  EXPECT_EQ(classify(0.7, t), PressureTier::high);
  EXPECT_EQ(classify(0.9, t), PressureTier::critical);
}

TEST(PressureTiers, ThresholdsMustBeIncreasingAndFinite) {
  EXPECT_NO_THROW(PressureThresholds{}.validate());
  EXPECT_THROW((PressureThresholds{0.8, 0.6, 0.95}.validate()), PressureConfigError);
  EXPECT_THROW((PressureThresholds{0.6, 0.8, 0.8}.validate()), PressureConfigError);
  EXPECT_THROW((PressureThresholds{0.0, 0.8, 0.95}.validate()), PressureConfigError);
  EXPECT_THROW((PressureThresholds{0.6, 0.8, std::nan("")}.validate()), PressureConfigError);
  EXPECT_THROW(
      (PressureThresholds{0.6, 0.8, std::numeric_limits<double>::infinity()}.validate()),
      PressureConfigError);
  try {
    PressureThresholds{0.9, 0.8, 0.95}.validate();
    FAIL() << "expected PressureConfigError";
  } catch (const PressureConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("warning < high < critical"), std::string::npos);
  }
}

}  // namespace
}  // namespace pagekeeper
