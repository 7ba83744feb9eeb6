// `pagekeeper sim`: replays a trace through a PagedResourcePool and prints one JSON object,
// or, for a comma-separated list of policies, a JSON array of one object per policy.

#include <CLI/CLI.hpp>

#include <cmath>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cli/commands.hpp"
#include "cli/sim.hpp"

namespace pagekeeper::cli {

void add_sim_command(CLI::App& app) {
  // Owned by the callback, which CLI11 keeps alive as long as the app.
  auto options = std::make_shared<SimOptions>();
  auto format_text = std::make_shared<std::string>("auto");
  auto shards = std::make_shared<std::uint32_t>(0);

  CLI::App* sim = app.add_subcommand(
      "sim", "Replay a cache trace through a PagedResourcePool and print one JSON object");
  sim->add_option("--trace", options->trace_path,
                  "Trace file: ARC format (start_block n_blocks ignored request#) or key,size "
                  "lines; plain or zstd-compressed")
      ->required();
  sim->add_option("--capacity", options->capacity,
                  "Pool budget in trace size units (keys, for ARC traces)")
      ->required()
      ->check(CLI::PositiveNumber);
  sim->add_option("--policy", options->policy,
                  "Eviction policy: lru, size-lru, wtinylfu or opt (Belady's optimum), or a "
                  "comma-separated list of them, replayed in turn and printed as a JSON array")
      ->check([](const std::string& text) {
        try {
          parse_policy_list(text);
          return std::string();
        } catch (const std::invalid_argument& e) {
          return std::string(e.what());
        }
      })
      ->capture_default_str();
  sim->add_option("--watermark", options->watermark,
                  "Fraction of the budget an over-budget insert evicts down to, in (0, 1]")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  sim->add_option("--shards", *shards, "Pool shards (default: the pool's choice)")
      ->check(CLI::PositiveNumber);
  sim->add_option("--format", *format_text, "Trace format")
      ->check(CLI::IsMember({"auto", "arc", "kv"}))
      ->capture_default_str();

  sim->callback([options, format_text, shards] {
    options->format = parse_trace_format(*format_text);
    if (*shards != 0) options->shards = *shards;
    const std::vector<std::string> policies = parse_policy_list(options->policy);
    if (policies.size() == 1) {
      const SimResult result = run_simulation(*options);
      std::cout << sim_report(*options, result).dump(2) << std::endl;
      return;
    }
    // One replay per policy, one object each; with opt among them each object also says
    // what fraction of the optimum's hits it reached.
    std::vector<std::pair<SimOptions, SimResult>> runs;
    std::optional<std::uint64_t> optimum;
    for (const std::string& name : policies) {
      SimOptions one = *options;
      one.policy = name;
      runs.emplace_back(one, run_simulation(one));
      if (name == "opt") optimum = runs.back().second.hits;
    }
    nlohmann::ordered_json reports = nlohmann::ordered_json::array();
    for (const auto& [one, result] : runs) {
      nlohmann::ordered_json report = sim_report(one, result);
      if (optimum) {
        report["fraction_of_opt"] =
            *optimum == 0 ? 1.0
                          : std::round(10000.0 * static_cast<double>(result.hits) / static_cast<double>(*optimum)) /
                                10000.0;
      }
      reports.push_back(std::move(report));
    }
    std::cout << reports.dump(2) << std::endl;
  });
}

}  // namespace pagekeeper::cli
