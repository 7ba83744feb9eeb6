// pagekeeperd: the pagekeeper daemon. See include/pagekeeper/server.hpp for the routes and
// src/server/server_flags.hpp for the configuration.

#include <iostream>
#include <new>

#include <CLI/CLI.hpp>

#include "cli/usage.hpp"
#include "pagekeeper/server.hpp"
#include "server/server_flags.hpp"

int main(int argc, char** argv) {
  CLI::App app{"pagekeeperd: embedding cache, pressure broker and adapter pager over HTTP", "pagekeeperd"};
  app.set_version_flag("--version", std::string("pagekeeperd ") + PAGEKEEPER_BUILD_VERSION);
  auto flags = pagekeeper::server::add_server_flags(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return pagekeeper::cli::report_parse_error(app, e, argc, argv);
  }
  try {
    return pagekeeper::server::run_until_signal(pagekeeper::server::resolve_server_config(*flags));
  } catch (const std::bad_alloc& e) {
    std::cerr << "pagekeeperd: error: out of memory (" << e.what() << ")\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "pagekeeperd: error: " << e.what() << "\n";
    return 1;
  }
}
