// Command-line flags of the daemon, shared by `pagekeeperd` and `pagekeeper serve`, and the
// loop that runs a Daemon until SIGINT or SIGTERM.
//
// Precedence: defaults < the TOML file given with --config < flags given on the command line.
//
// Thread safety: single-threaded setup code (run from main()).

#pragma once

#include <memory>
#include <string>

#include "pagekeeper/server_config.hpp"

namespace CLI {
class App;
}

namespace pagekeeper::server {

struct ServerFlags;

// Adds the daemon's options to `app`; returns the holder the parsed values land in (owned by
// the caller, alive until run_until_signal returns).
std::shared_ptr<ServerFlags> add_server_flags(CLI::App& app);

// The configuration: defaults, then the --config file, then the flags that were given.
// Throws ServerConfigError.
ServerConfig resolve_server_config(const ServerFlags& flags);

// Blocks SIGINT and SIGTERM (in this thread and every thread started afterwards), starts a
// Daemon with `config`, prints "pagekeeperd: listening on <url>" to stdout, waits for one of
// the signals, then stops the daemon gracefully (requests in flight finish, the broker
// thread stops). Returns the process exit status (0). Throws ServerError when it cannot bind.
int run_until_signal(const ServerConfig& config);

}  // namespace pagekeeper::server
