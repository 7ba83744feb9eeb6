#include "pagekeeper/pressure.hpp"

#include <cmath>
#include <string>

#include <nlohmann/json.hpp>

namespace pagekeeper {

void PressureThresholds::validate() const {
  const auto describe = [this] {
    return "warning=" + std::to_string(warning) + ", high=" + std::to_string(high) +
           ", critical=" + std::to_string(critical);
  };
  if (!std::isfinite(warning) || !std::isfinite(high) || !std::isfinite(critical)) {
    throw PressureConfigError("pressure thresholds must be finite (" + describe() + ")");
  }
  if (!(warning > 0.0 && warning < high && high < critical)) {
    throw PressureConfigError(
        "pressure thresholds must satisfy 0 < warning < high < critical (" + describe() + ")");
  }
}

PressureTier classify(double pressure, const PressureThresholds& t) noexcept {
  // Comparisons with NaN are false, so NaN falls through to normal.
  if (pressure >= t.critical) return PressureTier::critical;
  if (pressure >= t.high) return PressureTier::high;
  if (pressure >= t.warning) return PressureTier::warning;
  return PressureTier::normal;
}

std::string_view tier_label(PressureTier tier) noexcept {
  switch (tier) {
    case PressureTier::normal: return "normal";
    case PressureTier::warning: return "warning";
    case PressureTier::high: return "high";
    case PressureTier::critical: return "critical";
  }
  return "normal";
}

std::optional<PressureTier> parse_tier(std::string_view label) noexcept {
  for (auto tier : {PressureTier::normal, PressureTier::warning, PressureTier::high,
                    PressureTier::critical}) {
    if (tier_label(tier) == label) return tier;
  }
  return std::nullopt;
}

void to_json(nlohmann::json& j, PressureTier tier) { j = std::string(tier_label(tier)); }

}  // namespace pagekeeper
