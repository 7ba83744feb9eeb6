// The cognition/genome-* commands of pagekeeperd: the per-persona adapter pagers
// (AdapterPagerRegistry) over the original's wire shapes. Parameters are accepted in
// the legacy snake_case and the typed camelCase spellings.

#include <cstdint>

#include "pagekeeper/adapter_loader.hpp"
#include "pagekeeper/errors.hpp"
#include "server/requests.hpp"
#include "server/daemon_impl.hpp"

namespace pagekeeper {

namespace {

constexpr double kMaxBudgetMb = 16.0 * 1024 * 1024;  // 16 TiB: anything above is a typo

std::uint64_t budget_bytes(const nlohmann::json& params) {
  const auto mb = optional_number(params, "memory_budget_mb", "memoryBudgetMb", 0.0, kMaxBudgetMb);
  return mb ? static_cast<std::uint64_t>(*mb * 1024.0 * 1024.0) : 0;
}

// Runs `body`, turning the pager's typed failures into RequestErrors with the right status.
template <typename Body>
void with_pager_errors(Body&& body) {
  try {
    body();
  } catch (const PersonaLimitReached& e) {
    throw RequestError(429, "too_many_personas", e.what(), "persona_id");
  } catch (const TierExhausted& e) {
    throw RequestError(409, "tier_exhausted", std::string("cannot make room: ") + e.what());
  } catch (const AdapterInfoError& e) {
    throw RequestError(400, "invalid_adapter", e.what(), "adapters");
  } catch (const AdapterLoadError& e) {
    throw RequestError(500, "adapter_load_failed", e.what());
  } catch (const std::invalid_argument& e) {
    // get_or_create: no budget can be determined, or an invalid persona id.
    throw RequestError(400, "invalid_value", e.what());
  }
}

// The JSON of what `act` returns for the persona's pager, created with `budget` when missing
// (as the original did).
template <typename Act>
nlohmann::json from_pager(AdapterPagerRegistry& adapters, const std::string& persona, std::uint64_t budget,
                          Act&& act) {
  nlohmann::json out;
  with_pager_errors([&] { out = act(*adapters.get_or_create(persona, budget)); });
  return out;
}

}  // namespace

void Daemon::Impl::install_cognition_handlers() {
  add_command("cognition/genome-activate-skill", true, [this](const HttpRequest& req, HttpResponse& res) {
    const nlohmann::json params = parse_command_params(req.body);
    const std::string persona = required_string(params, "persona_id", "personaId");
    const std::string skill = required_string(params, "skill_name", "skillName");
    const nlohmann::json out = from_pager(*adapters, persona, budget_bytes(params),
                                          [&](AdapterPager& pager) { return pager.activate_skill(skill); });
    res.set_content(out.dump(), "application/json");
  });

  add_command("cognition/genome-evict-under-pressure", true,
              [this](const HttpRequest& req, HttpResponse& res) {
                const nlohmann::json params = parse_command_params(req.body);
                const std::string persona = required_string(params, "persona_id", "personaId");
                const double target =
                    optional_number(params, "target_pressure", "targetPressure", 0.0, 1000.0).value_or(0.75);
                const nlohmann::json out = from_pager(*adapters, persona, budget_bytes(params), [&](AdapterPager& pager) {
                  const double before = pager.pressure();
                  const std::uint64_t freed = pager.evict_under_pressure(target);
                  return nlohmann::json{{"personaId", persona},     {"targetPressure", target},
                                        {"pressureBefore", before}, {"pressureAfter", pager.pressure()},
                                        {"bytesFreed", freed}};
                });
                res.set_content(out.dump(), "application/json");
              });

  add_command("cognition/genome-sync", true, [this](const HttpRequest& req, HttpResponse& res) {
    const nlohmann::json params = parse_command_params(req.body);
    const std::string persona = required_string(params, "persona_id", "personaId");
    const auto it = params.find("adapters");
    if (it == params.end() || !it->is_array())
      throw RequestError(400, it == params.end() ? "missing_field" : "invalid_type",
                         "adapters must be an array of adapter objects", "adapters");
    // Unlike the original, which dropped unparsable adapters silently, an invalid
    // entry refuses the whole sync and names itself; nothing changes.
    std::vector<AdapterInfo> infos;
    infos.reserve(it->size());
    for (std::size_t i = 0; i < it->size(); ++i) {
      try {
        infos.push_back((*it)[i].get<AdapterInfo>());
      } catch (const std::exception& e) {
        throw RequestError(400, "invalid_adapter", "adapters[" + std::to_string(i) + "]: " + e.what(), "adapters");
      }
    }
    const nlohmann::json out =
        from_pager(*adapters, persona, budget_bytes(params), [&](AdapterPager& pager) { return pager.sync_state(infos); });
    res.set_content(out.dump(), "application/json");
  });

  add_command("cognition/genome-state", false, [this](const HttpRequest& req, HttpResponse& res) {
    const nlohmann::json params = parse_command_params(req.body);
    const std::string persona = required_string(params, "persona_id", "personaId");
    auto pager = adapters->find(persona);
    if (!pager) throw RequestError(404, "not_found", "No cognition for " + persona, "persona_id");
    res.set_content(pager->state().dump(), "application/json");
  });
}

}  // namespace pagekeeper
