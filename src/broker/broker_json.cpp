// camelCase JSON forms of the broker's values (broker.hpp documents each shape).

#include <nlohmann/json.hpp>

#include "pagekeeper/broker.hpp"
#include "pagekeeper/core_json.hpp"

namespace pagekeeper {
namespace {

const char* cause_label(PressureAlert::Cause cause) {
  switch (cause) {
    case PressureAlert::Cause::pool_pressure: return "poolPressure";
    case PressureAlert::Cause::host_pressure: return "hostPressure";
    case PressureAlert::Cause::budget_pressure: return "budgetPressure";
    case PressureAlert::Cause::thrashing: return "thrashing";
  }
  return "poolPressure";
}

}  // namespace

void to_json(nlohmann::json& j, const PressureAlert& a) {
  j = nlohmann::json{{"tierName", a.tier_name},     {"pressure", a.pressure},
                     {"tier", a.tier},              {"bytesFreed", a.bytes_freed},
                     {"actionTaken", a.action_taken}, {"atMs", a.at_ms},
                     {"cause", cause_label(a.cause)}, {"occurrences", a.occurrences},
                     {"cleared", a.cleared},          {"sinceMs", a.since_ms},
                     {"message", a.message},          {"budgetWantedBytes", a.budget_wanted_bytes}};
}

void from_json(const nlohmann::json& j, PressureAlert& a) {
  j.at("tierName").get_to(a.tier_name);
  j.at("pressure").get_to(a.pressure);
  const auto label = j.at("tier").get<std::string>();
  const auto tier = parse_tier(label);
  if (!tier) {
    throw nlohmann::json::other_error::create(501, "unknown pressure tier '" + label + "'", &j);
  }
  a.tier = *tier;
  j.at("bytesFreed").get_to(a.bytes_freed);
  j.at("actionTaken").get_to(a.action_taken);
  j.at("atMs").get_to(a.at_ms);
  a.cause = PressureAlert::Cause::pool_pressure;
  if (const auto it = j.find("cause"); it != j.end()) {
    const auto cause = it->get<std::string>();
    bool known = false;
    for (auto c : {PressureAlert::Cause::pool_pressure, PressureAlert::Cause::host_pressure,
                   PressureAlert::Cause::budget_pressure, PressureAlert::Cause::thrashing}) {
      if (cause == cause_label(c)) {
        a.cause = c;
        known = true;
      }
    }
    if (!known) {
      throw nlohmann::json::other_error::create(501, "unknown alert cause '" + cause + "'", &j);
    }
  }
  a.occurrences = j.value("occurrences", std::uint64_t{1});
  a.cleared = j.value("cleared", false);
  a.since_ms = j.value("sinceMs", a.at_ms);
  a.message = j.value("message", std::string());
  a.budget_wanted_bytes = j.value("budgetWantedBytes", std::uint64_t{0});
}

void to_json(nlohmann::json& j, const PoolAction& a) {
  j = nlohmann::json{{"name", a.name},
                     {"pressureBefore", a.pressure_before},
                     {"pressureAfter", a.pressure_after},
                     {"bytesRequested", a.bytes_requested},
                     {"bytesFreed", a.bytes_freed}};
  if (!a.error.empty()) j["error"] = a.error;
}

void to_json(nlohmann::json& j, const GlobalBudgetReading& r) {
  j = nlohmann::json{{"limitBytes", r.limit_bytes}, {"usedBytes", r.used_bytes},
                     {"capacityBytes", r.capacity_bytes}, {"pressure", r.pressure},
                     {"binds", r.binds}, {"tier", r.tier}};
}

void to_json(nlohmann::json& j, const ShedReport& r) {
  j = nlohmann::json{{"reading", r.reading},
                     {"hostTier", r.host_tier},
                     {"budget", nullptr},
                     {"tier", r.tier},
                     {"episodeActive", r.episode_active},
                     {"bytesWanted", r.bytes_wanted},
                     {"bytesRequested", r.bytes_requested},
                     {"bytesShed", r.bytes_shed},
                     {"episodeShedBytes", r.episode_shed_bytes},
                     {"episodeBudgetBytes", r.episode_budget_bytes},
                     {"poolsShed", r.pools_shed}};
  if (r.budget) j["budget"] = *r.budget;
}

void to_json(nlohmann::json& j, const ReliefReport& r) {
  j = nlohmann::json{{"triggered", r.triggered},
                     {"globalPressureBefore", r.global_pressure_before},
                     {"globalTierBefore", r.global_tier_before},
                     {"bytesFreed", r.bytes_freed},
                     {"poolsActed", r.pools_acted},
                     {"poolsStuck", r.pools_stuck},
                     {"shed", nullptr},
                     {"alerts", r.alerts},
                     {"budgetChanges", nlohmann::json::array()}};
  if (r.shed) j["shed"] = *r.shed;
  for (const auto& [name, c] : r.budget_changes) {
    j["budgetChanges"].push_back(
        {{"name", name}, {"atMs", c.at_ms}, {"fromBytes", c.from_bytes}, {"toBytes", c.to_bytes}});
  }
}

void to_json(nlohmann::json& j, const BrokerSnapshot& s) {
  auto pools = nlohmann::json::array();
  for (const auto& p : s.pools) {
    pools.push_back({{"name", p.name},
                     {"pressure", p.pressure},
                     {"tier", p.tier},
                     {"binding", p.binding},
                     {"ownPressure", p.own_pressure},
                     {"stats", p.stats},
                     {"managed", p.managed},
                     {"reliefCount", p.counters.relief_count},
                     {"reliefBytesFreed", p.counters.relief_bytes_freed},
                     {"stuckCount", p.counters.stuck_count},
                     {"shedCount", p.counters.shed_count},
                     {"shedBytes", p.counters.shed_bytes},
                     {"utility", nullptr}});
    if (p.utility) {
      auto curve = nlohmann::json::array();
      for (const auto& c : p.utility->curve) {
        curve.push_back({{"bytes", c.bytes}, {"missRatio", c.miss_ratio}});
      }
      auto history = nlohmann::json::array();
      for (const auto& h : p.utility->budget_history) {
        history.push_back({{"atMs", h.at_ms}, {"fromBytes", h.from_bytes}, {"toBytes", h.to_bytes}});
      }
      pools.back()["utility"] = {{"missCostSeconds", p.utility->miss_cost_seconds},
                                 {"accessesLastPass", p.utility->accesses_last_pass},
                                 {"curve", std::move(curve)},
                                 {"budgetHistory", std::move(history)}};
    }
  }
  nlohmann::json host = nullptr;
  if (s.host_memory) {
    host = *s.host_memory;
    host["tier"] = s.host_tier;
  }
  nlohmann::json budget = nullptr;
  if (s.global_budget) budget = *s.global_budget;
  j = nlohmann::json{{"globalPressure", s.global_pressure},
                     {"globalTier", s.global_tier},
                     {"binding", s.binding},
                     {"pools", std::move(pools)},
                     {"evictionsFired", s.evictions_fired},
                     {"bytesFreedTotal", s.bytes_freed_total},
                     {"poolReliefsTotal", s.pool_reliefs_total},
                     {"passesTotal", s.passes_total},
                     {"alertsDeliveredTotal", s.alerts_delivered_total},
                     {"alertsSuppressedTotal", s.alerts_suppressed_total},
                     {"hostMemory", std::move(host)},
                     {"globalBudget", std::move(budget)},
                     {"hostShedding",
                      {{"episodeActive", s.host_shedding.episode_active},
                       {"episodeShedBytes", s.host_shedding.episode_shed_bytes},
                       {"episodeBudgetBytes", s.host_shedding.episode_budget_bytes},
                       {"shedBytesTotal", s.host_shedding.shed_bytes_total}}},
                     {"running", s.running}};
}

}  // namespace pagekeeper
