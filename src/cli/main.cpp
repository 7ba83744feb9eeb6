// `pagekeeper`: the command-line tool. Subcommands register themselves through the functions
// in commands.hpp; this file only assembles them and maps failures to exit codes.

#include <CLI/CLI.hpp>

#include <exception>
#include <iostream>

#include "cli/commands.hpp"
#include "cli/usage.hpp"

namespace {

using AddCommand = void (*)(CLI::App&);

// Every subcommand of the tool, in the order `--help` lists them.
constexpr AddCommand kCommands[] = {
    pagekeeper::cli::add_sim_command,
    pagekeeper::cli::add_serve_command,
    pagekeeper::cli::add_embed_command,
    pagekeeper::cli::add_index_command,
    pagekeeper::cli::add_stats_command,
    pagekeeper::cli::add_bench_command,
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"pagekeeper: byte-budgeted paging for an AI inference host", "pagekeeper"};
  app.set_version_flag("--version", std::string("pagekeeper ") + PAGEKEEPER_BUILD_VERSION);
  app.require_subcommand(1);
  for (AddCommand add : kCommands) add(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return pagekeeper::cli::report_parse_error(app, e, argc, argv);
  } catch (const std::exception& e) {
    std::string command = "pagekeeper";
    for (const CLI::App* sub : app.get_subcommands()) command += " " + sub->get_name();
    std::cerr << command << ": error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
