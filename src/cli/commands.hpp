// The subcommands of the `pagekeeper` command-line tool.
//
// Each subcommand lives in its own cmd_<name>.cpp and exposes one registration function that
// adds a CLI11 subcommand (its options and its callback) to the application. To add a
// subcommand: write cmd_<name>.cpp, declare its add_<name>_command here, append it to
// kCommands in main.cpp and to the sources in src/cli/CMakeLists.txt.
//
// Callbacks report failure by throwing: CLI::Error for usage errors (CLI11 prints help and
// chooses the exit code), any other std::exception for runtime errors (main prints
// "pagekeeper <subcommand>: error: <what>" and exits with status 1).

#pragma once

namespace CLI {
class App;
}

namespace pagekeeper::cli {

// `pagekeeper sim`: replays a trace through a PagedResourcePool (cmd_sim.cpp).
void add_sim_command(CLI::App& app);

// pagekeeperd's commands (cmd_serve/embed/index/stats/bench.cpp): run the daemon, embed a
// text, index a tree, show a server's state, load-test a server.
void add_serve_command(CLI::App& app);
void add_embed_command(CLI::App& app);
void add_index_command(CLI::App& app);
void add_stats_command(CLI::App& app);
void add_bench_command(CLI::App& app);

}  // namespace pagekeeper::cli
