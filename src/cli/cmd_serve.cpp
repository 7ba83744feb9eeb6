// `pagekeeper serve`: runs the daemon in the foreground (the same as `pagekeeperd`).

#include <CLI/CLI.hpp>

#include "cli/commands.hpp"
#include "server/server_flags.hpp"

namespace pagekeeper::cli {

void add_serve_command(CLI::App& app) {
  CLI::App* serve = app.add_subcommand("serve", "Run pagekeeperd in the foreground until SIGINT/SIGTERM");
  auto flags = server::add_server_flags(*serve);
  serve->callback([flags] { server::run_until_signal(server::resolve_server_config(*flags)); });
}

}  // namespace pagekeeper::cli
