// pagekeeper/pressure.hpp
//
// Pressure tiers: the one classification of a pressure figure (bytes held / bytes allowed)
// that every component uses, so a pool, the host-memory source, the broker and the server
// all agree on what "high" means. The default thresholds are the original system's (and its
// GPU manager's): normal < 0.60 <= warning < 0.80 <= high < 0.95 <= critical.
//
// Tiers serialize as lowercase labels: "normal", "warning", "high", "critical".
//
// Thread safety: free functions and immutable values; safe from any thread.

#pragma once

#include <optional>
#include <stdexcept>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "pagekeeper/errors.hpp"

namespace pagekeeper {

// Ordered: a later tier is always the more urgent one, so tiers compare with < and >=.
enum class PressureTier { normal = 0, warning = 1, high = 2, critical = 3 };

// A pressure configuration (thresholds, broker fractions) was refused. `what()` names the
// offending field and value.
class PressureConfigError : public InvalidArgument {
 public:
  using InvalidArgument::InvalidArgument;
};

// Lower bounds of the warning, high and critical tiers. Pressure is uncapped (a pool may sit
// above 1.0), so a critical threshold above 1.0 is allowed.
struct PressureThresholds {
  double warning = 0.60;
  double high = 0.80;
  double critical = 0.95;

  // Throws PressureConfigError unless every threshold is finite and
  // 0 < warning < high < critical.
  void validate() const;
};

// The tier of `pressure`: critical when pressure >= critical, else high when >= high, else
// warning when >= warning, else normal. A NaN or negative pressure is normal (it can never
// justify evicting anything). Requires `thresholds` to be valid (see validate()); the
// defaults are.
PressureTier classify(double pressure, const PressureThresholds& thresholds = {}) noexcept;

// "normal", "warning", "high" or "critical".
std::string_view tier_label(PressureTier tier) noexcept;

// The tier whose label is `label` (exact, lowercase); nullopt for anything else.
std::optional<PressureTier> parse_tier(std::string_view label) noexcept;

// JSON: the lowercase label.
void to_json(nlohmann::json& j, PressureTier tier);

}  // namespace pagekeeper
