// ServerConfig validation and its TOML reader (toml++).

#include "pagekeeper/server_config.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <toml++/toml.h>

namespace pagekeeper {

namespace {
void validate_models(const std::vector<EmbeddingModelConfig>& models, std::size_t lexical_dimensions);
}  // namespace

const char* backend_name(EmbeddingModelConfig::Backend backend) noexcept {
  switch (backend) {
    case EmbeddingModelConfig::Backend::kLlama: return "llama";
    case EmbeddingModelConfig::Backend::kOpenAI: return "openai";
    case EmbeddingModelConfig::Backend::kLexical: break;
  }
  return "lexical";
}

std::string read_secret_file(const std::string& key, const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ServerConfigError(key + ": cannot read '" + path + "'");
  std::string secret;
  std::getline(in, secret);
  while (!secret.empty() && (secret.back() == '\r' || secret.back() == ' ')) secret.pop_back();
  if (secret.empty()) throw ServerConfigError(key + ": '" + path + "' is empty");
  return secret;
}

void ServerConfig::validate() const {
  auto fail = [](const std::string& msg) { throw ServerConfigError(msg); };
  if (host.empty()) fail("server.host: must not be empty");
  if (port < 0 || port > 65535) fail("server.port: " + std::to_string(port) + " is not in [0, 65535]");
  if (threads == 0 || threads > 1024) fail("server.threads: " + std::to_string(threads) + " is not in [1, 1024]");
  if (read_timeout.count() <= 0) fail("server.read_timeout_ms: must be > 0");
  if (write_timeout.count() <= 0) fail("server.write_timeout_ms: must be > 0");
  if (idle_timeout.count() <= 0) fail("server.idle_timeout_ms: must be > 0");
  if (max_personas == 0) fail("adapters.max_personas: must be at least 1");
  for (const std::string& name : allowed_hosts)
    if (name.empty() || name.find_first_of(" /\t") != std::string::npos)
      fail("server.allowed_hosts: '" + name + "' is not a host name");
  if (drain_timeout.count() < 0) fail("server.drain_timeout_ms: must be >= 0");
  if (io_threads == 0 || io_threads > 64) fail("server.io_threads: " + std::to_string(io_threads) + " is not in [1, 64]");
  if (max_connections == 0 || max_connections > 1000000)
    fail("server.max_connections: " + std::to_string(max_connections) + " is not in [1, 1000000]");
  if (limits.max_header_bytes < 1024 || limits.max_header_bytes > (1u << 20))
    fail("limits.max_header_bytes: " + std::to_string(limits.max_header_bytes) + " is not in [1024, 1048576]");
  if (limits.max_header_fields == 0 || limits.max_header_fields > 10000)
    fail("limits.max_header_fields: " + std::to_string(limits.max_header_fields) + " is not in [1, 10000]");
  if (alert_history == 0 || alert_history > 100000) fail("server.alert_history: must be in [1, 100000]");
  if (history_interval.count() < 10) fail("server.history_interval_ms: must be at least 10");
  if (history_samples == 0 || history_samples > 1000000) fail("server.history_samples: must be in [1, 1000000]");
  if (limits.max_body_bytes < 64) fail("limits.max_body_bytes: must be at least 64");
  if (limits.max_texts_per_request == 0) fail("limits.max_texts_per_request: must be at least 1");
  if (limits.max_text_bytes == 0) fail("limits.max_text_bytes: must be at least 1");
  if (default_model.empty()) fail("embedding.default_model: must not be empty");
  if (embedding_budget_bytes == 0) fail("embedding.budget_bytes: must be > 0");
  if (lexical_dimensions < 16 || lexical_dimensions > 65536)
    fail("embedding.lexical_dimensions: " + std::to_string(lexical_dimensions) + " is not in [16, 65536]");
  if (model_budget_bytes == 0) fail("embedding.model_budget_mb: must be > 0");
  validate_models(models, lexical_dimensions);
  try {
    tiers.validate();
  } catch (const std::invalid_argument& e) {
    fail(e.what());
  }
  try {
    broker.validate();
  } catch (const std::exception& e) {
    fail(std::string("broker: ") + e.what());
  }
}

namespace {

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return out;
}

void validate_models(const std::vector<EmbeddingModelConfig>& models, std::size_t lexical_dimensions) {
  // Names and aliases share one case-insensitive namespace with the built-in lexical model
  // (registered as "lexical", or "lexical-<N>" with the alias "lexical") and `default`.
  std::set<std::string> taken = {"default", "lexical", "lexical-" + std::to_string(lexical_dimensions)};
  for (std::size_t i = 0; i < models.size(); ++i) {
    const EmbeddingModelConfig& m = models[i];
    const std::string at = "embedding.models[" + std::to_string(i) + "]";
    if (m.name.empty()) throw ServerConfigError(at + ".name: required");
    const std::string named = at + " ('" + m.name + "')";
    auto claim = [&](const std::string& n, const char* key) {
      if (n.empty()) throw ServerConfigError(named + "." + key + ": must not be empty");
      if (!taken.insert(lowercase(n)).second) {
        std::string message = named + "." + key;
        message += ": '" + n + "' is already the name or alias of another model (or reserved: default, lexical)";
        throw ServerConfigError(message);
      }
    };
    claim(m.name, "name");
    for (const std::string& alias : m.aliases) claim(alias, "aliases");
    auto require = [&](bool ok, const char* key) {
      if (!ok)
        throw ServerConfigError(named + "." + key + ": required for backend '" + backend_name(m.backend) + "'");
    };
    switch (m.backend) {
      case EmbeddingModelConfig::Backend::kLlama:
        require(!m.llama.model_path.empty(), "path");
        if (m.llama.contexts == 0) throw ServerConfigError(named + ".contexts: must be at least 1");
        break;
      case EmbeddingModelConfig::Backend::kOpenAI:
        require(!m.openai.base_url.empty(), "base_url");
        require(m.openai.dimensions > 0, "dimensions");
        break;
      case EmbeddingModelConfig::Backend::kLexical:
        if (m.lexical_dimensions < 16 || m.lexical_dimensions > 65536)
          throw ServerConfigError(named + ".dimensions: must be in [16, 65536]");
        break;
    }
  }
}

std::string where(const toml::node& node, std::string_view source) {
  const auto& src = node.source();
  if (src.begin.line == 0) return std::string(source);  // built from a flag, not a file
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
  void strings(const char* key, std::vector<std::string>& out) {
    if (const toml::node* n = take(key)) {
      const toml::array* items = n->as_array();
      if (items == nullptr) wrong(*n, key, "an array of strings");
      out.clear();
      for (const toml::node& item : *items) {
        if (!item.is_string()) wrong(item, key, "an array of strings");
        out.push_back(item.as_string()->get());
      }
    }
  }
  // A string that must be one of `choices` (name -> value).
  template <typename Enum>
  void choice(const char* key, Enum& out, std::initializer_list<std::pair<const char*, Enum>> choices) {
    std::string value;
    string(key, value);
    if (value.empty() && !has(key)) return;
    std::string known;
    for (const auto& [label, v] : choices) {
      if (value == label) {
        out = v;
        return;
      }
      known += (known.empty() ? "" : ", ") + std::string("'") + label + "'";
    }
    throw ServerConfigError(where(*table_.get(key), source_) + ": " + name(key) + " = '" + value +
                            "' is not one of " + known);
  }
  // A duration in whole milliseconds, in [min_ms, max_ms].
  template <typename Rep, typename Period>
  void millis(const char* key, std::chrono::duration<Rep, Period>& out, std::int64_t min_ms = 1,
              std::int64_t max_ms = 3600000) {
    std::int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(out).count();
    integer(key, ms, min_ms, max_ms);
    out = std::chrono::milliseconds(ms);
  }
  bool has(const char* key) const { return table_.contains(key); }
  // Marks `key` as read by the caller.
  void skip(const char* key) { seen_.insert(key); }

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

// One [[embedding.models]] table (or a --model flag turned into one). Required keys are
// checked by ServerConfig::validate(), which also sees models built in code.
EmbeddingModelConfig read_model(const toml::table& table, const std::string& prefix, std::string_view source) {
  using Backend = EmbeddingModelConfig::Backend;
  EmbeddingModelConfig m;
  TableReader r(table, prefix, source);
  r.string("name", m.name);
  if (!r.has("backend"))
    throw ServerConfigError(std::string(source) + ": " + prefix + ".backend: required (\"llama\", \"openai\" or \"lexical\")");
  r.choice("backend", m.backend, {{"llama", Backend::kLlama}, {"openai", Backend::kOpenAI}, {"lexical", Backend::kLexical}});
  r.strings("aliases", m.aliases);
  r.real("calls_per_second", m.calls_per_second);
  if (!(std::isfinite(m.calls_per_second) && m.calls_per_second >= 0.0))
    throw ServerConfigError(std::string(source) + ": " + prefix +
                            ".calls_per_second: must be 0 (unlimited) or positive");
  switch (m.backend) {
    case Backend::kLlama: {
      using Overflow = LlamaEmbedderConfig::Overflow;
      using Pooling = LlamaEmbedderConfig::Pooling;
      LlamaEmbedderConfig& c = m.llama;
      std::string path;
      r.string("path", path);
      c.model_path = path;
      c.name = m.name;
      r.integer("threads", c.threads, 0, 1024);
      r.integer("contexts", c.contexts, 1, 1024);
      r.choice("overflow", c.overflow, {{"truncate", Overflow::kTruncate}, {"refuse", Overflow::kRefuse}});
      r.choice("pooling", c.pooling,
               {{"model", Pooling::kModel}, {"mean", Pooling::kMean}, {"cls", Pooling::kCls}, {"last", Pooling::kLast}});
      r.integer("max_batch", c.max_batch, 1, 256);
      r.integer("batch_tokens", c.batch_tokens, 1, 1 << 16);
      r.integer("pack_tokens", c.pack_tokens, 1, 1 << 16);
      break;
    }
    case Backend::kOpenAI: {
      OpenAIEmbedderConfig& c = m.openai;
      c.name = m.name;
      c.model = m.name;
      r.string("base_url", c.base_url);
      r.string("remote_model", c.model);
      r.string("api_key_env", m.api_key_env);
      r.integer("dimensions", c.dimensions, 1, 65536);
      r.boolean("send_dimensions", c.send_dimensions);
      r.millis("timeout_ms", c.read_timeout);
      r.millis("connect_timeout_ms", c.connect_timeout);
      r.integer("max_retries", c.max_retries, 0, 100);
      r.millis("deadline_ms", c.deadline);
      r.integer("max_batch", c.max_batch, 1, 1 << 16);
      break;
    }
    case Backend::kLexical:
      r.integer("dimensions", m.lexical_dimensions, 16, 65536);
      r.integer("max_batch", m.lexical_max_batch, 1, 1 << 20);
      break;
  }
  return m;
}

}  // namespace

EmbeddingModelConfig parse_model_flag(std::string_view spec) {
  const std::string flag = "--model '" + std::string(spec) + "'";
  const auto eq = spec.find('=');
  if (eq == std::string_view::npos || eq == 0)
    throw ServerConfigError(flag + ": expected NAME=BACKEND[:LOCATION][?KEY=VALUE&...]");
  std::string_view rest = spec.substr(eq + 1);
  std::string_view options;
  if (const auto q = rest.rfind('?'); q != std::string_view::npos) {
    options = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  const auto colon = rest.find(':');
  const std::string backend(rest.substr(0, colon));
  const std::string location(colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1));
  toml::table table;
  table.insert("name", std::string(spec.substr(0, eq)));
  table.insert("backend", backend);
  if (!location.empty()) table.insert(backend == "openai" ? "base_url" : "path", location);
  while (!options.empty()) {
    const auto amp = options.find('&');
    const std::string_view pair = options.substr(0, amp);
    options = amp == std::string_view::npos ? std::string_view() : options.substr(amp + 1);
    const auto kv = pair.find('=');
    if (kv == std::string_view::npos || kv == 0) throw ServerConfigError(flag + ": option '" + std::string(pair) + "' is not KEY=VALUE");
    const std::string key(pair.substr(0, kv));
    const std::string value(pair.substr(kv + 1));
    const bool digits = !value.empty() && std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (key == "aliases") {
      toml::array aliases;
      for (std::size_t start = 0; start <= value.size();) {
        const auto comma = std::min(value.find(',', start), value.size());
        aliases.push_back(value.substr(start, comma - start));
        start = comma + 1;
      }
      table.insert(key, std::move(aliases));
    } else if (digits && value.size() < 16) {
      table.insert(key, static_cast<std::int64_t>(std::stoll(value)));
    } else if (value == "true" || value == "false") {
      table.insert(key, value == "true");
    } else {
      table.insert(key, value);
    }
  }
  return read_model(table, "embedding.models", flag);
}

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
  static const std::set<std::string> kTables = {"server", "limits", "embedding", "broker", "adapters", "tiers"};
  for (const auto& [key, node] : root) {
    if (!kTables.count(std::string(key.str())))
      throw ServerConfigError(where(node, source_name) + ": unknown table or key '" +
                              std::string(key.str()) + "' (known: server, limits, embedding, broker, adapters, tiers)");
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
    if (!token_file.empty()) config.token = read_secret_file("server.token_file", token_file);
    r.string("api_key", config.api_key);
    std::string api_key_file;
    r.string("api_key_file", api_key_file);
    if (!api_key_file.empty()) config.api_key = read_secret_file("server.api_key_file", api_key_file);
    r.strings("allowed_hosts", config.allowed_hosts);
    r.integer("threads", config.threads, 1, 1024);
    r.millis("read_timeout_ms", config.read_timeout);
    r.millis("write_timeout_ms", config.write_timeout);
    r.millis("idle_timeout_ms", config.idle_timeout, 1, 86400000);
    r.millis("drain_timeout_ms", config.drain_timeout, 0, 3600000);
    r.integer("io_threads", config.io_threads, 1, 64);
    r.integer("max_connections", config.max_connections, 1, 1000000);
    r.integer("alert_history", config.alert_history, 1, 100000);
    r.millis("history_interval_ms", config.history_interval, 10, 3600000);
    r.integer("history_samples", config.history_samples, 1, 1000000);
  }
  if (const auto* t = table("limits")) {
    TableReader r(*t, "limits", source_name);
    r.integer("max_body_bytes", config.limits.max_body_bytes, 64, kMaxInt);
    r.integer("max_header_bytes", config.limits.max_header_bytes, 1024, 1 << 20);
    r.integer("max_header_fields", config.limits.max_header_fields, 1, 10000);
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
    std::uint64_t model_mb = 0;
    r.integer("model_budget_mb", model_mb, 1, 1 << 24);
    if (model_mb != 0) config.model_budget_bytes = model_mb << 20;
    r.choice("policy", config.cache_policy, {{"tinylfu", CachePolicy::kTinyLfu}, {"lru", CachePolicy::kLru}});
    if (const toml::node* models = t->get("models")) {
      r.skip("models");
      const toml::array* tables = models->as_array();
      if (tables == nullptr || !tables->is_array_of_tables())
        throw ServerConfigError(where(*models, source_name) +
                                ": embedding.models must be an array of tables ([[embedding.models]])");
      for (const toml::node& model : *tables) {
        const std::string prefix = "embedding.models[" + std::to_string(config.models.size()) + "]";
        config.models.push_back(read_model(*model.as_table(), prefix, source_name));
      }
    }
  }
  if (const auto* t = table("broker")) {
    TableReader r(*t, "broker", source_name);
    r.millis("tick_ms", config.broker.tick_interval);
    r.real("act_above", config.broker.act_above);
    r.real("target_fraction", config.broker.target_fraction);
    std::int64_t budget_mb = static_cast<std::int64_t>(config.broker.memory_budget_bytes >> 20);
    r.integer("memory_budget_mb", budget_mb, 0, 1 << 24);
    config.broker.memory_budget_bytes = static_cast<std::uint64_t>(budget_mb) << 20;
    r.real("rebalance_hysteresis", config.broker.rebalance_hysteresis);
    r.real("thrash_ghost_share", config.broker.thrash_ghost_share);
    std::int64_t window = static_cast<std::int64_t>(config.broker.thrash_window_misses);
    r.integer("thrash_window_misses", window, 1, std::int64_t{1} << 40);
    config.broker.thrash_window_misses = static_cast<std::uint64_t>(window);
    r.boolean("host_memory", config.host_memory);
  }
  if (const auto* t = table("tiers")) {
    TableReader r(*t, "tiers", source_name);
    std::string dir = config.tiers.dir.string();
    r.string("dir", dir);
    config.tiers.dir = dir;
    std::uint64_t mb = config.tiers.disk_bytes >> 20;
    r.integer("disk_mb", mb, 1, 1 << 24);
    config.tiers.disk_bytes = mb << 20;
    r.strings("redis", config.tiers.redis);
    r.millis("redis_timeout_ms", config.tiers.redis_timeout);
    std::int64_t ttl_s = config.tiers.redis_ttl.count() / 1000;
    r.integer("redis_ttl_s", ttl_s, 0, std::int64_t{1} << 31);
    config.tiers.redis_ttl = std::chrono::seconds(ttl_s);
    r.string("redis_namespace", config.tiers.redis_namespace);
  }
  if (const auto* t = table("adapters")) {
    TableReader r(*t, "adapters", source_name);
    std::uint64_t mb = 0;
    r.integer("budget_mb", mb, 0, 1 << 24);
    config.adapter_budget_bytes = mb << 20;
    std::string path;
    r.string("base_model", path);
    if (!path.empty()) config.adapter_base_model = path;
    path.clear();
    r.string("adapter_dir", path);
    if (!path.empty()) config.adapter_dir = path;
    r.integer("max_personas", config.max_personas, 1, 1000000);
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
