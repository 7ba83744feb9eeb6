// pagekeeper/server_config.hpp
//
// ServerConfig: everything pagekeeperd needs to start, from defaults, a TOML file and
// command-line flags (flags win over the file, the file over defaults). The file's keys are
// the documented ones below; an unknown key, a value of the wrong type or out of range is a
// ServerConfigError naming the key (and the file position when there is one), never a silent
// default.
//
//   [server]     host, port, token, token_file, threads, read_timeout_ms, write_timeout_ms,
//                alert_history
//   [limits]     max_body_bytes, max_texts_per_request, max_text_bytes
//   [embedding]  default_model, budget_mb (or budget_bytes), lexical_dimensions
//   [broker]     tick_ms, act_above, target_fraction, host_memory (bool)
//   [adapters]   budget_mb (per-persona budget; 0 = derived from the memory budget)
//
// Thread safety: a plain value type.

#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "pagekeeper/broker.hpp"

namespace pagekeeper {

// A configuration value was refused; what() names the key and the reason.
class ServerConfigError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// Request limits. Each refusal names the limit it hit (413 for the body, 400 otherwise).
struct ServerLimits {
  std::size_t max_body_bytes = 8u << 20;       // whole request body
  std::size_t max_texts_per_request = 2048;    // entries of `input` / `texts`
  std::size_t max_text_bytes = 64u << 10;      // one text, in UTF-8 bytes
};

struct ServerConfig {
  // Loopback by default: exposing the daemon is an explicit decision.
  std::string host = "127.0.0.1";
  // 0 asks the kernel for a free port (tests); Daemon::port() tells which.
  int port = 8077;
  // When not empty, state-changing commands require "Authorization: Bearer <token>".
  std::string token;
  // Worker threads serving requests (each holds one connection at a time).
  std::size_t threads = 8;
  // A client that sends nothing for this long is disconnected (slow clients).
  std::chrono::milliseconds read_timeout{5000};
  std::chrono::milliseconds write_timeout{5000};
  // Alerts kept for the dashboard and /api/system/pressure-alerts.
  std::size_t alert_history = 64;
  ServerLimits limits;

  // Model that `default` (and a request without `model`) resolves to.
  std::string default_model = "lexical";
  // Byte budget of the embedding cache pool.
  std::uint64_t embedding_budget_bytes = 256ull << 20;
  std::size_t lexical_dimensions = 384;

  // Broker: thresholds, act_above, target_fraction and tick_interval (default 1 s here).
  BrokerConfig broker = default_broker_config();
  // Whether the broker also watches the host's memory (cgroup v2 or /proc/meminfo).
  bool host_memory = true;

  // Per-persona adapter budget in bytes; 0 derives it from the MemoryBudget.
  std::uint64_t adapter_budget_bytes = 0;

  // Throws ServerConfigError naming the first field out of range.
  void validate() const;

  static BrokerConfig default_broker_config() {
    BrokerConfig b;
    b.tick_interval = std::chrono::milliseconds{1000};
    return b;
  }
};

// Applies the keys of the TOML file at `path` on top of `base` and returns the result
// (validated). Throws ServerConfigError for an unreadable file, a syntax error (with line and
// column), an unknown table or key, a wrong type or an out-of-range value.
ServerConfig load_server_config(const std::filesystem::path& path, ServerConfig base = {});

// The same, from TOML text (`source_name` is used in messages).
ServerConfig parse_server_config(std::string_view toml_text, std::string_view source_name,
                                 ServerConfig base = {});

}  // namespace pagekeeper
