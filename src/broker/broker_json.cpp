// camelCase JSON forms of the broker's values (spec §3).

#include <nlohmann/json.hpp>

#include "pagekeeper/broker.hpp"

namespace pagekeeper {
namespace {

const char* cause_label(PressureAlert::Cause cause) {
  return cause == PressureAlert::Cause::host_pressure ? "hostPressure" : "poolPressure";
}

}  // namespace

void to_json(nlohmann::json& j, const PressureAlert& a) {
  j = nlohmann::json{{"tierName", a.tier_name},     {"pressure", a.pressure},
                     {"tier", a.tier},              {"bytesFreed", a.bytes_freed},
                     {"actionTaken", a.action_taken}, {"atMs", a.at_ms},
                     {"cause", cause_label(a.cause)}};
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
    if (cause == "hostPressure") {
      a.cause = PressureAlert::Cause::host_pressure;
    } else if (cause != "poolPressure") {
      throw nlohmann::json::other_error::create(501, "unknown alert cause '" + cause + "'", &j);
    }
  }
}

void to_json(nlohmann::json& j, const PoolAction& a) {
  j = nlohmann::json{{"name", a.name},
                     {"pressureBefore", a.pressure_before},
                     {"pressureAfter", a.pressure_after},
                     {"bytesRequested", a.bytes_requested},
                     {"bytesFreed", a.bytes_freed}};
  if (!a.error.empty()) j["error"] = a.error;
}

void to_json(nlohmann::json& j, const HostShedReport& r) {
  j = nlohmann::json{{"reading", r.reading},
                     {"tier", r.tier},
                     {"episodeActive", r.episode_active},
                     {"bytesWanted", r.bytes_wanted},
                     {"bytesRequested", r.bytes_requested},
                     {"bytesShed", r.bytes_shed},
                     {"episodeShedBytes", r.episode_shed_bytes},
                     {"episodeBudgetBytes", r.episode_budget_bytes},
                     {"poolsShed", r.pools_shed}};
}

void to_json(nlohmann::json& j, const ReliefReport& r) {
  j = nlohmann::json{{"triggered", r.triggered},
                     {"globalPressureBefore", r.global_pressure_before},
                     {"globalTierBefore", r.global_tier_before},
                     {"bytesFreed", r.bytes_freed},
                     {"poolsActed", r.pools_acted},
                     {"poolsStuck", r.pools_stuck},
                     {"host", nullptr}};
  if (r.host) j["host"] = *r.host;
}

void to_json(nlohmann::json& j, const BrokerSnapshot& s) {
  auto pools = nlohmann::json::array();
  for (const auto& p : s.pools) {
    pools.push_back({{"name", p.name},
                     {"pressure", p.pressure},
                     {"tier", p.tier},
                     {"stats", p.stats},
                     {"managed", p.managed},
                     {"reliefCount", p.counters.relief_count},
                     {"reliefBytesFreed", p.counters.relief_bytes_freed},
                     {"stuckCount", p.counters.stuck_count},
                     {"shedCount", p.counters.shed_count},
                     {"shedBytes", p.counters.shed_bytes}});
  }
  nlohmann::json host = nullptr;
  if (s.host_memory) {
    host = *s.host_memory;
    host["tier"] = s.host_tier;
  }
  j = nlohmann::json{{"globalPressure", s.global_pressure},
                     {"globalTier", s.global_tier},
                     {"pools", std::move(pools)},
                     {"evictionsFired", s.evictions_fired},
                     {"bytesFreedTotal", s.bytes_freed_total},
                     {"poolReliefsTotal", s.pool_reliefs_total},
                     {"hostMemory", std::move(host)},
                     {"hostShedding",
                      {{"episodeActive", s.host_shedding.episode_active},
                       {"episodeShedBytes", s.host_shedding.episode_shed_bytes},
                       {"episodeBudgetBytes", s.host_shedding.episode_budget_bytes},
                       {"shedBytesTotal", s.host_shedding.shed_bytes_total}}},
                     {"running", s.running}};
}

}  // namespace pagekeeper
