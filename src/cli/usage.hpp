// Usage errors of the command-line programs (`pagekeeper`, `pagekeeperd`): one line on stderr
// naming what was wrong (the unknown subcommand or option, the bad value) and exit status 2,
// as POSIX utilities do, instead of CLI11's own codes (105, 106, 109, ...). --help and
// --version print to stdout and exit 0.
//
// Thread safety: called from main() only.

#pragma once

#include <CLI/CLI.hpp>

#include <iostream>
#include <string>

namespace pagekeeper::cli {

inline constexpr int kUsageErrorExit = 2;

// Reports `error`, thrown by app.parse(argc, argv), and returns the exit status.
inline int report_parse_error(CLI::App& app, const CLI::ParseError& error, int argc, char** argv) {
  if (error.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(error);  // --help, --version
  const std::string program = app.get_name().empty() ? std::string(argv[0]) : app.get_name();
  std::string message = error.what();
  // A first word that is neither an option nor a subcommand: CLI11 would say "A subcommand
  // is required" or "arguments were not expected"; name it instead.
  const CLI::App& parent = app;
  const auto subcommands = parent.get_subcommands([](const CLI::App*) { return true; });
  bool known = false;
  for (const CLI::App* sub : subcommands) known = known || (argc > 1 && sub->check_name(argv[1]));
  if (!subcommands.empty() && argc > 1 && argv[1][0] != '-' && !known) {
    message = "unknown subcommand '" + std::string(argv[1]) + "' (subcommands:";
    for (const CLI::App* sub : subcommands) message += " " + sub->get_name();
    message += ")";
  }
  std::cerr << program << ": " << message << "\nRun '" << program << " --help' for usage.\n";
  return kUsageErrorExit;
}

}  // namespace pagekeeper::cli
