// What a configuration file is refused with: tests of the TOML reader check that each bad
// value is named in the message.
//
// Thread safety: a pure function.

#pragma once

#include <string>
#include <string_view>

#include "pagekeeper/server_config.hpp"

namespace pagekeeper::test_support {

// The message of the ServerConfigError that parsing `toml` (named `source` in messages)
// throws, or "no error" when the text is accepted.
inline std::string config_error(std::string_view toml, std::string_view source = "bad.toml") {
  try {
    parse_server_config(toml, source);
  } catch (const ServerConfigError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace pagekeeper::test_support
