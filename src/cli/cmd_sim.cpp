// `pagekeeper sim`: replays a trace through a PagedResourcePool and prints one JSON object.

#include <CLI/CLI.hpp>

#include <iostream>
#include <memory>

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
  sim->add_option("--policy", options->policy, "Eviction policy")
      ->check(CLI::IsMember({"lru", "size-lru"}))
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
    const SimResult result = run_simulation(*options);
    std::cout << sim_report(*options, result).dump(2) << std::endl;
  });
}

}  // namespace pagekeeper::cli
