// ServerConfig validation and its TOML reader (toml++).

#include "pagekeeper/server_config.hpp"

#include <cmath>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <toml++/toml.h>

namespace pagekeeper {

void ServerConfig::validate() const {
  auto fail = [](const std::string& msg) { throw ServerConfigError(msg); };
  if (host.empty()) fail("server.host: must not be empty");
  if (port < 0 || port > 65535) fail("server.port: " + std::to_string(port) + " is not in [0, 65535]");
  if (threads == 0 || threads > 1024) fail("server.threads: " + std::to_string(threads) + " is not in [1, 1024]");
  if (read_timeout.count() <= 0) fail("server.read_timeout_ms: must be > 0");
  if (write_timeout.count() <= 0) fail("server.write_timeout_ms: must be > 0");
  if (alert_history == 0 || alert_history > 100000) fail("server.alert_history: must be in [1, 100000]");
  if (limits.max_body_bytes < 64) fail("limits.max_body_bytes: must be at least 64");
  if (limits.max_texts_per_request == 0) fail("limits.max_texts_per_request: must be at least 1");
  if (limits.max_text_bytes == 0) fail("limits.max_text_bytes: must be at least 1");
  if (default_model.empty()) fail("embedding.default_model: must not be empty");
  if (embedding_budget_bytes == 0) fail("embedding.budget_bytes: must be > 0");
  if (lexical_dimensions < 16 || lexical_dimensions > 65536)
    fail("embedding.lexical_dimensions: " + std::to_string(lexical_dimensions) + " is not in [16, 65536]");
  try {
    broker.validate();
  } catch (const std::exception& e) {
    fail(std::string("broker: ") + e.what());
  }
}

namespace {

std::string where(const toml::node& node, std::string_view source) {
  const auto& src = node.source();
  std::ostringstream out;
  out << source << ":" << src.begin.line << ":" << src.begin.column;
  return out.str();
}

// Reads typed values out of one table, refusing unknown keys and wrong types.
class TableReader {
 public:
  TableReader(const toml::table& table, std::string prefix, std::string_view source)
      : table_(table), prefix_(std::move(prefix)), source_(source) {}

  ~TableReader() noexcept(false) {
    if (std::uncaught_exceptions() > 0) return;
    for (const auto& [key, node] : table_) {
      if (!seen_.count(std::string(key.str())))
        throw ServerConfigError(where(node, source_) + ": unknown key '" + prefix_ + "." +
                                std::string(key.str()) + "'");
    }
  }

  void string(const char* key, std::string& out) {
    if (const toml::node* n = take(key)) {
      if (!n->is_string()) wrong(*n, key, "a string");
      out = n->as_string()->get();
    }
  }
  void boolean(const char* key, bool& out) {
    if (const toml::node* n = take(key)) {
      if (!n->is_boolean()) wrong(*n, key, "a boolean");
      out = n->as_boolean()->get();
    }
  }
  template <typename Int>
  void integer(const char* key, Int& out, std::int64_t min, std::int64_t max) {
    if (const toml::node* n = take(key)) {
      if (!n->is_integer()) wrong(*n, key, "an integer");
      const std::int64_t v = n->as_integer()->get();
      if (v < min || v > max)
        throw ServerConfigError(where(*n, source_) + ": " + name(key) + " = " + std::to_string(v) +
                                " is not in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
      out = static_cast<Int>(v);
    }
  }
  void real(const char* key, double& out) {
    if (const toml::node* n = take(key)) {
      double v = 0;
      if (n->is_floating_point()) v = n->as_floating_point()->get();
      else if (n->is_integer()) v = static_cast<double>(n->as_integer()->get());
      else wrong(*n, key, "a number");
      if (!std::isfinite(v)) throw ServerConfigError(where(*n, source_) + ": " + name(key) + " must be finite");
      out = v;
    }
  }
  bool has(const char* key) const { return table_.contains(key); }

 private:
  const toml::node* take(const char* key) {
    seen_.insert(key);
    return table_.get(key);
  }
  std::string name(const char* key) const { return prefix_ + "." + key; }
  [[noreturn]] void wrong(const toml::node& n, const char* key, const char* expected) {
    throw ServerConfigError(where(n, source_) + ": " + name(key) + " must be " + expected);
  }

  const toml::table& table_;
  std::string prefix_;
  std::string_view source_;
  std::set<std::string> seen_;
};

constexpr std::int64_t kMaxInt = std::numeric_limits<std::int64_t>::max();

}  // namespace

ServerConfig parse_server_config(std::string_view toml_text, std::string_view source_name,
                                 ServerConfig config) {
  toml::table root;
  try {
    root = toml::parse(toml_text, source_name);
  } catch (const toml::parse_error& e) {
    std::ostringstream out;
    out << source_name << ":" << e.source().begin.line << ":" << e.source().begin.column
        << ": TOML syntax error: " << e.description();
    throw ServerConfigError(out.str());
  }
  static const std::set<std::string> kTables = {"server", "limits", "embedding", "broker", "adapters"};
  for (const auto& [key, node] : root) {
    if (!kTables.count(std::string(key.str())))
      throw ServerConfigError(where(node, source_name) + ": unknown table or key '" +
                              std::string(key.str()) + "' (known: server, limits, embedding, broker, adapters)");
    if (!node.is_table())
      throw ServerConfigError(where(node, source_name) + ": '" + std::string(key.str()) + "' must be a table");
  }
  auto table = [&](const char* name) -> const toml::table* { return root[name].as_table(); };

  if (const auto* t = table("server")) {
    TableReader r(*t, "server", source_name);
    r.string("host", config.host);
    r.integer("port", config.port, 0, 65535);
    r.string("token", config.token);
    std::string token_file;
    r.string("token_file", token_file);
    if (!token_file.empty()) {
      std::ifstream in(token_file);
      if (!in) throw ServerConfigError("server.token_file: cannot read '" + token_file + "'");
      std::getline(in, config.token);
      while (!config.token.empty() && (config.token.back() == '\r' || config.token.back() == ' '))
        config.token.pop_back();
      if (config.token.empty()) throw ServerConfigError("server.token_file: '" + token_file + "' is empty");
    }
    r.integer("threads", config.threads, 1, 1024);
    std::int64_t ms = config.read_timeout.count();
    r.integer("read_timeout_ms", ms, 1, 3600000);
    config.read_timeout = std::chrono::milliseconds(ms);
    ms = config.write_timeout.count();
    r.integer("write_timeout_ms", ms, 1, 3600000);
    config.write_timeout = std::chrono::milliseconds(ms);
    r.integer("alert_history", config.alert_history, 1, 100000);
  }
  if (const auto* t = table("limits")) {
    TableReader r(*t, "limits", source_name);
    r.integer("max_body_bytes", config.limits.max_body_bytes, 64, kMaxInt);
    r.integer("max_texts_per_request", config.limits.max_texts_per_request, 1, kMaxInt);
    r.integer("max_text_bytes", config.limits.max_text_bytes, 1, kMaxInt);
  }
  if (const auto* t = table("embedding")) {
    TableReader r(*t, "embedding", source_name);
    r.string("default_model", config.default_model);
    std::uint64_t mb = 0;
    if (r.has("budget_mb") && r.has("budget_bytes"))
      throw ServerConfigError(std::string(source_name) + ": set embedding.budget_mb or embedding.budget_bytes, not both");
    r.integer("budget_mb", mb, 1, 1 << 24);
    if (mb != 0) config.embedding_budget_bytes = mb << 20;
    r.integer("budget_bytes", config.embedding_budget_bytes, 1, kMaxInt);
    r.integer("lexical_dimensions", config.lexical_dimensions, 16, 65536);
  }
  if (const auto* t = table("broker")) {
    TableReader r(*t, "broker", source_name);
    std::int64_t ms = config.broker.tick_interval.count();
    r.integer("tick_ms", ms, 1, 3600000);
    config.broker.tick_interval = std::chrono::milliseconds(ms);
    r.real("act_above", config.broker.act_above);
    r.real("target_fraction", config.broker.target_fraction);
    r.boolean("host_memory", config.host_memory);
  }
  if (const auto* t = table("adapters")) {
    TableReader r(*t, "adapters", source_name);
    std::uint64_t mb = 0;
    r.integer("budget_mb", mb, 0, 1 << 24);
    config.adapter_budget_bytes = mb << 20;
  }
  config.validate();
  return config;
}

ServerConfig load_server_config(const std::filesystem::path& path, ServerConfig base) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ServerConfigError("cannot read config file '" + path.string() + "'");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_server_config(text.str(), path.string(), std::move(base));
}

}  // namespace pagekeeper
