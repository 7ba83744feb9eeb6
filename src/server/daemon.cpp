// Daemon: lifecycle, the HTTP framework between the engine (http_engine.hpp) and the handlers
// (routing, metrics, errors, the bearer-token rule) and the route table. The handlers of the
// routes are in handlers.cpp and cognition.cpp.
//
// Locking: lifecycle_mutex_ serializes start()/stop(); stopped_cv_ (with lifecycle_mutex_)
// wakes wait(). The alert history has its own mutex (alerts_mutex). HttpMetrics is lock-free
// once the route table is built, which happens in the constructor before any thread serves.

#include "server/daemon_impl.hpp"

#include "server/http_engine.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <span>
#include <system_error>
#include <thread>

#include <sys/resource.h>

#include <spdlog/spdlog.h>

#include "pagekeeper/host_memory.hpp"
#include "pagekeeper/lexical_embedder.hpp"
#include "pagekeeper/llama_embedder.hpp"
#include "llama/llama_model_pool.hpp"
#include "pagekeeper/openai_embedder.hpp"
#include "pagekeeper/rate_limited_embedder.hpp"
#include "server/pooled_lora_loader.hpp"
#include "server/requests.hpp"

namespace pagekeeper {

namespace server {

// The embedder of one configured GGUF model, created from the model pool on first use (so a
// missing or corrupt file fails that request, not the daemon). It is kept between requests,
// since creating llama.cpp contexts costs more than embedding a small batch, and dropped by
// release_idle() when the broker acts on the model pool: the model is then pinned only by
// requests in flight and becomes evictable once they end.
// Locking: mutex_ guards embedder_ and dimensions_, and is held while the model loads, so
// concurrent first requests create one embedder.
class LlamaModelProvider {
 public:
  LlamaModelProvider(std::shared_ptr<LlamaModelPool> pool, LlamaEmbedderConfig config,
                     double calls_per_second = 0.0)
      : pool_(std::move(pool)), config_(std::move(config)), calls_per_second_(calls_per_second) {}

  std::shared_ptr<Embedder> get() {
    MutexLock lock(mutex_);
    if (!embedder_) {
      embedder_ = LlamaEmbedder::create(*pool_, config_);  // EmbedderError when the load fails
      dimensions_ = embedder_->dimensions();
      if (calls_per_second_ > 0.0) embedder_ = std::make_shared<RateLimitedEmbedder>(embedder_, calls_per_second_);
    }
    return embedder_;
  }
  void release_idle() {
    std::shared_ptr<Embedder> dropped;  // destroyed outside the lock
    MutexLock lock(mutex_);
    dropped = std::move(embedder_);
  }
  // Known once the model has been loaded.
  std::optional<std::size_t> dimensions() const {
    MutexLock lock(mutex_);
    return dimensions_;
  }
  // Whether the model pool holds the model now.
  bool resident() const { return pool_->resident(config_.model_path); }
  // Drops the kept embedder and the model from the pool; requests running on it keep it
  // until they end. Returns whether it was resident.
  bool unload() {
    release_idle();
    return pool_->unload(config_.model_path);
  }

 private:
  const std::shared_ptr<LlamaModelPool> pool_;
  const LlamaEmbedderConfig config_;
  const double calls_per_second_;  // 0: unlimited
  mutable Mutex mutex_;
  std::shared_ptr<Embedder> embedder_ PAGEKEEPER_GUARDED_BY(mutex_);
  std::optional<std::size_t> dimensions_ PAGEKEEPER_GUARDED_BY(mutex_);
};

}  // namespace server

namespace {

// A configured lexical model under its own name (LexicalEmbedder names itself by its size,
// and the service requires the embedder's name to be the canonical one).
class NamedLexicalEmbedder final : public Embedder {
 public:
  NamedLexicalEmbedder(std::string name, const LexicalEmbedderOptions& options)
      : name_(std::move(name)), lexical_(options) {}
  std::string name() const override { return name_; }
  std::size_t dimensions() const override { return lexical_.dimensions(); }
  std::size_t max_batch() const override { return lexical_.max_batch(); }
  std::string identity() const override { return lexical_.identity(); }
  std::vector<std::vector<float>> embed(std::span<const std::string_view> texts) override { return lexical_.embed(texts); }
  std::vector<EmbeddingVector> embed_compact(std::span<const std::string_view> texts,
                                             VectorSlab& storage) override {
    return lexical_.embed_compact(texts, storage);
  }

 private:
  std::string name_;
  LexicalEmbedder lexical_;
};

using server::LlamaModelProvider;
using ModelDescription = Daemon::Impl::ModelDescription;

// `embedder`, behind a RateLimitedEmbedder when the model has a calls-per-second limit.
std::shared_ptr<Embedder> limited(std::shared_ptr<Embedder> embedder, double calls_per_second) {
  if (calls_per_second <= 0.0) return embedder;
  return std::make_shared<RateLimitedEmbedder>(std::move(embedder), calls_per_second);
}

// Registers one configured model. Throws ServerConfigError naming the model.
void add_configured_model(ModelRegistry& models, const EmbeddingModelConfig& m, const std::shared_ptr<LlamaModelPool>& llama_pool,
                          std::vector<std::shared_ptr<LlamaModelProvider>>& llama_providers,
                          std::map<std::string, ModelDescription>& descriptions) {
  const std::string what = "embedding model '" + m.name + "' (" + backend_name(m.backend) + ")";
  ModelDescription description{backend_name(m.backend), {}, {}, {}, {}};
  try {
    switch (m.backend) {
      case EmbeddingModelConfig::Backend::kLlama: {
        LlamaEmbedderConfig c = m.llama;
        c.name = m.name;
        if (!llama_backend_available())
          spdlog::warn("pagekeeperd: {}: llama.cpp backend not available in this build; requests for it will fail", what);
        else if (std::error_code ec; !std::filesystem::is_regular_file(c.model_path, ec))
          spdlog::warn("pagekeeperd: {}: no file at {} (requests for it will fail until there is)", what, c.model_path.string());
        auto provider = std::make_shared<LlamaModelProvider>(llama_pool, c, m.calls_per_second);
        models.add(m.name, [provider] { return provider->get(); }, m.aliases);
        description.location = c.model_path.string();
        description.dimensions = [provider] { return provider->dimensions(); };
        description.resident = [provider] { return provider->resident(); };
        description.unload = [provider] { return provider->unload(); };
        llama_providers.push_back(std::move(provider));
        break;
      }
      case EmbeddingModelConfig::Backend::kOpenAI: {
        OpenAIEmbedderConfig c = m.openai;
        c.name = m.name;
        if (c.model.empty()) c.model = m.name;  // remote_model defaults to the name
        if (!m.api_key_env.empty()) {
          // Read once at configuration time; the process never calls setenv.
          const char* key = std::getenv(m.api_key_env.c_str());  // NOLINT(concurrency-mt-unsafe)
          if (key == nullptr || *key == '\0')
            throw ServerConfigError(what + ": api_key_env names the environment variable " + m.api_key_env +
                                    ", which is not set");
          c.api_key = key;
        }
        auto remote = std::make_shared<OpenAIEmbedder>(c);
        models.add(limited(remote, m.calls_per_second), m.aliases);
        description.location = remote->endpoint();
        description.dimensions = [dims = c.dimensions] { return std::optional<std::size_t>(dims); };
        break;
      }
      case EmbeddingModelConfig::Backend::kLexical: {
        LexicalEmbedderOptions options;
        options.dimensions = m.lexical_dimensions;
        options.max_batch = m.lexical_max_batch;
        models.add(limited(std::make_shared<NamedLexicalEmbedder>(m.name, options), m.calls_per_second), m.aliases);
        description.dimensions = [dims = options.dimensions] { return std::optional<std::size_t>(dims); };
        break;
      }
    }
  } catch (const std::invalid_argument& e) {
    throw ServerConfigError(what + ": " + e.what());
  }
  descriptions.emplace(m.name, std::move(description));
}

std::shared_ptr<EmbeddingService> make_embeddings(const ServerConfig& config, Daemon::Impl& impl) {
  EmbeddingServiceConfig ec;
  ec.max_bytes = config.embedding_budget_bytes;
  ec.policy = config.cache_policy;
  // A global budget is divided by the pools' curves: the cache must estimate its own (fixed
  // size SHARDS: rate 1 until curve_max_samples keys, then lower).
  if (config.broker.memory_budget_bytes > 0) ec.curve_sampling_rate = 1.0;
  auto models = std::make_shared<ModelRegistry>("lexical");
  LexicalEmbedderOptions lex;
  lex.dimensions = config.lexical_dimensions;
  auto lexical = std::make_shared<LexicalEmbedder>(lex);
  impl.model_descriptions.emplace(lexical->name(), ModelDescription{"lexical", {}, [dims = lex.dimensions] {
                                                                     return std::optional<std::size_t>(dims);
                                                                   }, {}, {}});
  models->add(std::move(lexical), lex.dimensions == LexicalEmbedder::kDefaultDimensions
                                      ? std::vector<std::string>{}
                                      : std::vector<std::string>{"lexical"});
  for (const EmbeddingModelConfig& m : config.models) {
    if (m.backend == EmbeddingModelConfig::Backend::kLlama && !impl.llama_models) {
      LlamaModelPool::Config pool;
      pool.max_bytes = config.model_budget_bytes;
      pool.policy = config.cache_policy;
      if (config.broker.memory_budget_bytes > 0) pool.curve_sampling_rate = 1.0;
      impl.llama_models = std::make_shared<LlamaModelPool>(pool);
    }
    add_configured_model(*models, m, impl.llama_models, impl.llama_providers, impl.model_descriptions);
  }
  // The built-in registry also knows `openai` when OPENAI_BASE_URL is set; mirror it unless a
  // configured model took its name.
  auto builtin = ModelRegistry::with_builtin_models();
  for (const auto& name : builtin->models()) {
    if (name.rfind("lexical", 0) == 0) continue;
    try {
      models->add(name, [builtin, name] { return builtin->embedder(name); });
      impl.model_descriptions.emplace(name, ModelDescription{"openai", {}, [dims = builtin->embedder(name)->dimensions()] {
                                                               return std::optional<std::size_t>(dims);
                                                             }, {}, {}});
    } catch (const std::invalid_argument&) {
    }
  }
  models->set_default_model(config.default_model);
  try {
    models->resolve(config.default_model);
  } catch (const UnknownModelError& e) {
    throw ServerConfigError("embedding.default_model: " + std::string(e.what()));
  }
  ec.models = std::move(models);
  try {
    impl.tiers = open_tiers(config.tiers);
  } catch (const TierUnavailable& e) {
    throw ServerConfigError(std::string("tiers: ") + e.what());
  }
  ec.tiers = impl.tiers.chain;
  return std::make_shared<EmbeddingService>(std::move(ec));
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Constant-time comparison: the time a wrong token takes does not tell how much was right.
bool same_secret(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= a[i] ^ b[i % std::max<std::size_t>(b.size(), 1)];
  return diff == 0;
}

}  // namespace

Daemon::Impl::Impl(ServerConfig c, DaemonServices services) : config(std::move(c)) {
  config.validate();
  embeddings = services.embeddings ? std::move(services.embeddings) : make_embeddings(config, *this);
  if (services.broker) {
    broker = std::move(services.broker);
  } else {
    std::shared_ptr<const HostMemorySource> host;
    BrokerConfig broker_config = config.broker;
    if (config.host_memory) {
      auto memory = std::make_shared<HostMemory>();
      // Without [broker] memory_budget_mb, the pools together may have what the host allows.
      if (broker_config.memory_budget_bytes == 0) broker_config.memory_budget_bytes = memory->limit_bytes();
      host = std::move(memory);
    }
    broker = std::make_shared<PressureBroker>(broker_config, std::move(host));
  }
  broker->register_pool(embeddings->resource_pool());
  if (tiers.disk) broker->register_pool(tiers.disk);
  if (llama_models) {
    broker->register_pool(llama_models->resource_pool());
    // Kept embedders pin their models; whenever the broker acts on the model pool, let go of
    // them so the next pass can evict the idle ones.
    broker->add_action_listener([tier = llama_models->resource_pool()->tier_name(), providers = llama_providers](
                                    const PoolAction& action) {
      if (action.name != tier) return;
      for (const auto& provider : providers) provider->release_idle();
    });
  }
  if (services.adapters) {
    adapters = std::move(services.adapters);
  } else {
    try {
      memory_budget = std::make_shared<MemoryBudget>();
      // The adapters' guards are freed through their pagers, which the broker relieves; the
      // budget itself is worth watching only when it can free bytes.
      if (memory_budget->can_free()) broker->register_pool(memory_budget);
    } catch (const std::exception& e) {
      spdlog::warn("pagekeeperd: no memory budget for adapters ({}); personas need memory_budget_mb", e.what());
    }
    AdapterPagerDefaults defaults;
    defaults.budget_bytes = config.adapter_budget_bytes;
    defaults.max_personas = config.max_personas;
    // Under a global budget the broker divides it by the pagers' curves too.
    if (config.broker.memory_budget_bytes > 0) defaults.curve_sampling_rate = 1.0;
    std::shared_ptr<AdapterLoader> loader;
    if (!config.adapter_base_model.empty()) {
      if (!llama_models) {
        LlamaModelPool::Config pool;
        pool.max_bytes = config.model_budget_bytes;
        if (config.broker.memory_budget_bytes > 0) pool.curve_sampling_rate = 1.0;
        llama_models = std::make_shared<LlamaModelPool>(pool);
        broker->register_pool(llama_models->resource_pool());
      }
      loader = std::make_shared<server::PooledBaseLoraLoader>(llama_models, config.adapter_base_model, config.adapter_dir);
    }
    adapters = std::make_shared<AdapterPagerRegistry>(defaults, memory_budget, std::move(loader), broker);
  }
  broker->add_alert_sink([this](const PressureAlert& alert) {
    MutexLock lock(alerts_mutex);
    alerts.push_back(alert);
    while (alerts.size() > config.alert_history) alerts.pop_front();
    ++alerts_total;
  });
  install_routes();
  server::HttpEngineOptions options;
  options.host = config.host;
  options.port = config.port;
  options.worker_threads = config.threads;
  options.io_threads = config.io_threads;
  options.max_connections = config.max_connections;
  options.max_body_bytes = config.limits.max_body_bytes;
  options.max_header_bytes = config.limits.max_header_bytes;
  options.max_header_fields = config.limits.max_header_fields;
  options.header_timeout = config.read_timeout;
  options.body_timeout = config.read_timeout;
  options.idle_timeout = config.idle_timeout;
  options.write_timeout = config.write_timeout;
  options.drain_timeout = config.drain_timeout;
  engine = std::make_unique<server::HttpEngine>(
      std::move(options), [this](HttpRequest& req, HttpResponse& res) { dispatch(req, res); },
      [this](int status, std::string_view code, const std::string& message, HttpResponse& res) {
        set_error(res, status, code, message);
        metrics.observe(HttpMetrics::kOtherRoute, status, 0.0);
      },
      [this](HttpRequest& req, HttpResponse& res) { return answer_inline(req, res); });
}

Daemon::Impl::~Impl() = default;

void Daemon::Impl::set_error(HttpResponse& res, int status, std::string_view code, std::string_view message,
                             std::string_view param) {
  res.status = status;
  res.set_content(error_body(status, code, message, param).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                  "application/json");
}

std::size_t Daemon::Impl::add_route(std::string name) { return metrics.add_route(std::move(name)); }

Daemon::Impl::Handler Daemon::Impl::wrap(std::size_t route, Handler handler) {
  return [this, route, handler = std::move(handler)](const HttpRequest& req, HttpResponse& res) {
    const auto t0 = std::chrono::steady_clock::now();
    in_flight.fetch_add(1, std::memory_order_relaxed);
    try {
      handler(req, res);
    } catch (const RequestError& e) {
      set_error(res, e.status, e.code, e.what(), e.param);
    } catch (const UnknownModelError& e) {
      set_error(res, 404, "model_not_found", e.what(), "model");
    } catch (const EmbedderInputError& e) {
      set_error(res, 400, "input_refused", e.what(), "input");
    } catch (const EmbedderError& e) {
      // Nothing of a failed call is cached (EmbeddingService guarantees it).
      spdlog::warn("pagekeeperd: embedder failure: {}", e.what());
      set_error(res, 502, "embedder_failed", std::string("embedding failed, nothing was cached: ") + e.what());
    } catch (const std::bad_alloc&) {
      set_error(res, 503, "out_of_memory", "out of memory while serving the request");
    } catch (const std::exception& e) {
      spdlog::error("pagekeeperd: {} {}: {}", req.method, req.path, e.what());
      set_error(res, 500, "internal_error", std::string("internal error: ") + e.what());
    }
    in_flight.fetch_sub(1, std::memory_order_relaxed);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    metrics.observe(route, res.status, seconds);
  };
}

void Daemon::Impl::require_json(const HttpRequest& req) const {
  // An empty body is no parameters whatever its type (curl -X POST, or -d '' with curl's form
  // type), and a body without a type is read as JSON (clients that do not set one).
  if (req.body.empty() || !req.has_header("Content-Type")) return;
  std::string type = lower(req.header("Content-Type"));
  if (auto semi = type.find(';'); semi != std::string::npos) type.resize(semi);
  while (!type.empty() && type.back() == ' ') type.pop_back();
  if (type == "application/json" || type == "text/json" ||
      (type.size() > 5 && type.compare(type.size() - 5, 5, "+json") == 0))
    return;
  throw RequestError(415, "unsupported_media_type",
                     "Content-Type must be application/json, got '" +
                         (type.empty() ? std::string("(none)") : type.substr(0, 100)) + "'");
}

void Daemon::Impl::require_token(const HttpRequest& req) const {
  if (config.token.empty()) return;
  const std::string auth(req.header("Authorization"));
  static constexpr std::string_view kBearer = "Bearer ";
  if (auth.empty())
    throw RequestError(401, "unauthorized", "this command changes state and requires 'Authorization: Bearer <token>'");
  if (auth.size() <= kBearer.size() || lower(auth.substr(0, kBearer.size())) != "bearer " ||
      !same_secret(std::string_view(auth).substr(kBearer.size()), config.token))
    throw RequestError(403, "forbidden", "the bearer token is not valid for this server");
}

namespace {

// `host` of a Host header or an Origin's authority, without its port, lower case; brackets
// of an IPv6 literal removed.
std::string host_without_port(std::string_view authority) {
  std::string host;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    host = std::string(authority.substr(1, close == std::string_view::npos ? std::string_view::npos : close - 1));
  } else if (std::count(authority.begin(), authority.end(), ':') == 1) {
    host = std::string(authority.substr(0, authority.find(':')));
  } else {
    host = std::string(authority);
  }
  return lower(host);
}

bool is_ipv4_literal(std::string_view s) {
  int dots = 0;
  for (char c : s) {
    if (c == '.') ++dots;
    else if (c < '0' || c > '9') return false;
  }
  return dots == 3;
}

bool is_ip_literal(std::string_view s) { return is_ipv4_literal(s) || s.find(':') != std::string_view::npos; }

bool is_loopback_name(std::string_view host) {
  return host == "localhost" || host == "::1" || (is_ipv4_literal(host) && host.substr(0, 4) == "127.");
}

bool is_wildcard_address(std::string_view host) { return host == "0.0.0.0" || host == "::" || host.empty(); }

}  // namespace

bool Daemon::Impl::host_allowed(std::string_view authority) const {
  const std::string host = host_without_port(authority);
  if (host.empty()) return false;
  if (is_loopback_name(host)) return true;
  if (host == lower(config.host)) return true;
  // Bound to every address: any address of this machine is its own; names still need listing
  // (DNS rebinding points a name the attacker owns at us, never an address literal).
  if (is_wildcard_address(config.host) && is_ip_literal(host)) return true;
  return std::any_of(config.allowed_hosts.begin(), config.allowed_hosts.end(),
                     [&host](const std::string& name) { return lower(name) == host; });
}

std::optional<RequestError> Daemon::Impl::admission_error(const HttpRequest& req) const {
  // HTTP/1.0 clients may omit Host; a browser never does.
  if (const std::string* host = req.headers.find("Host"); host != nullptr && !host_allowed(*host))
    return RequestError(403, "host_not_allowed",
                        "Host '" + host->substr(0, 200) +
                            "' is not this server's address, localhost or a name in server.allowed_hosts "
                            "(--allowed-host)");
  if (req.method != "GET" && req.method != "HEAD") {
    // A browser sends Origin with every cross-origin POST; "null" comes from sandboxed and
    // file: pages. Same-origin requests (the dashboard) carry our own host.
    if (const std::string* origin = req.headers.find("Origin"); origin != nullptr) {
      const auto scheme_end = origin->find("://");
      const bool ok = scheme_end != std::string::npos && host_allowed(std::string_view(*origin).substr(scheme_end + 3));
      if (!ok)
        return RequestError(403, "cross_origin",
                            "requests from the web origin '" + origin->substr(0, 200) +
                                "' are refused: only pages served by this host may call its API");
    }
    if (const std::string* site = req.headers.find("Sec-Fetch-Site"); site != nullptr && lower(*site) == "cross-site")
      return RequestError(403, "cross_origin", "cross-site requests are refused");
  }
  if (!config.api_key.empty() && req.path.compare(0, 4, "/v1/") == 0) {
    const std::string_view auth = req.header("Authorization");
    static constexpr std::string_view kBearer = "bearer ";
    if (auth.empty())
      return RequestError(401, "invalid_api_key",
                          "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.");
    if (auth.size() <= kBearer.size() || lower(auth.substr(0, kBearer.size())) != kBearer ||
        !same_secret(auth.substr(kBearer.size()), config.api_key))
      return RequestError(401, "invalid_api_key", "Incorrect API key provided.");
  }
  return std::nullopt;
}

void Daemon::Impl::add_command(std::string name, bool changes_state, CommandHandler handler) {
  Command cmd;
  cmd.route = add_route("/api/" + name);
  cmd.changes_state = changes_state;
  cmd.handler = wrap(cmd.route, [this, changes_state, handler = std::move(handler)](const HttpRequest& req,
                                                                                   HttpResponse& res) {
    if (changes_state) require_token(req);
    require_json(req);
    handler(req, res);
  });
  commands.emplace(std::move(name), std::move(cmd));
}

std::size_t Daemon::Impl::add_endpoint(std::string method, const std::string& path, Handler handler) {
  std::vector<Endpoint>& at_path = endpoints[path];
  const std::size_t route = at_path.empty() ? add_route(path) : at_path.front().route;
  at_path.push_back(Endpoint{std::move(method), route, wrap(route, std::move(handler))});
  return route;
}

bool Daemon::Impl::answer_inline(HttpRequest& req, HttpResponse& res) {
  if (req.path == "/healthz" && (req.method == "GET" || req.method == "HEAD")) {  // refusals included
    dispatch(req, res);
    return true;
  }
  if (req.path != "/v1/embeddings" || req.method != "POST" || admission_error(req)) return false;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    require_json(req);
    if (!answer_embeddings_if_cached(req, res)) return false;
  } catch (const std::exception&) {
    return false;  // a worker runs it again and answers the error
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  metrics.observe(embeddings_route, res.status, seconds);
  return true;
}

void Daemon::Impl::add_prefix_endpoint(std::string method, const std::string& prefix, const std::string& route_name,
                                       Handler handler) {
  std::vector<Endpoint>& at_prefix = prefix_endpoints[prefix];
  const std::size_t route = at_prefix.empty() ? add_route(route_name) : at_prefix.front().route;
  at_prefix.push_back(Endpoint{std::move(method), route, wrap(route, std::move(handler))});
}

void Daemon::Impl::install_routes() {
  install_command_handlers();  // handlers.cpp

  embeddings_route = add_endpoint("POST", "/v1/embeddings", [this](const HttpRequest& req, HttpResponse& res) {
    require_json(req);
    handle_openai_embeddings(req, res);
  });

  install_openai_model_routes();  // models_routes.cpp
  add_endpoint("GET", "/metrics", [this](const HttpRequest&, HttpResponse& res) {
    res.set_content(prometheus_text(), "text/plain; version=0.0.4; charset=utf-8");
  });
  add_endpoint("GET", "/healthz", [this](const HttpRequest&, HttpResponse& res) {
    nlohmann::json body = {
        {"status", "ok"}, {"inFlight", in_flight.load(std::memory_order_relaxed)}, {"version", PAGEKEEPER_BUILD_VERSION}};
    res.set_content(body.dump(), "application/json");
  });
  dashboard_route = add_route("/ (dashboard)");
}

namespace {

constexpr std::string_view kRouteList =
    " (routes: POST /v1/embeddings, GET /v1/models, POST /api/<command>, GET /metrics, GET /healthz, GET /)";

}  // namespace

void Daemon::Impl::dispatch(HttpRequest& req, HttpResponse& res) {
  // Known paths with the wrong method get 405 and the Allow header rather than a bare 404.
  auto wrong_method = [this, &req, &res](const std::string& allow) {
    wrap(HttpMetrics::kOtherRoute, [&allow](const HttpRequest& r, HttpResponse& out) {
      out.set_header("Allow", allow);
      set_error(out, 405, "method_not_allowed",
                r.method.substr(0, 20) + " is not allowed on " + r.path.substr(0, 200) + "; use " + allow);
    })(req, res);
  };
  const bool get = req.method == "GET" || req.method == "HEAD";
  if (std::optional<RequestError> refusal = admission_error(req)) {
    return wrap(HttpMetrics::kOtherRoute, [&refusal](const HttpRequest&, HttpResponse&) { throw *refusal; })(req, res);
  }

  // One route for the whole command API, so an unknown command gets a 404 with the list of
  // known commands; metrics are recorded per command (or under "other").
  static constexpr std::string_view kApi = "/api/";
  if (req.path.size() > kApi.size() && req.path.compare(0, kApi.size(), kApi) == 0) {
    if (req.method != "POST") return wrong_method("POST");
    req.route_tail = req.path.substr(kApi.size());
    const auto it = commands.find(req.route_tail);
    if (it != commands.end()) return it->second.handler(req, res);
    return wrap(HttpMetrics::kOtherRoute, [this](const HttpRequest& r, HttpResponse& out) {
      nlohmann::json body = error_body(404, "unknown_command", "unknown command '" + r.route_tail.substr(0, 200) + "'");
      nlohmann::json known = nlohmann::json::array();
      for (const auto& [n, _] : commands) known.push_back(n);
      body["knownCommands"] = known;
      out.status = 404;
      out.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json");
    })(req, res);
  }

  // The endpoint of req's method among `at_path`, or 405 naming the methods there are.
  auto serve = [&](const std::vector<Endpoint>& at_path) {
    std::string allow;
    for (const Endpoint& e : at_path) {
      if (e.method == req.method || (req.method == "HEAD" && e.method == "GET")) return e.handler(req, res);
      allow += (allow.empty() ? "" : ", ") + e.method;
    }
    return wrong_method(allow);
  };
  if (const auto it = endpoints.find(req.path); it != endpoints.end()) return serve(it->second);
  for (const auto& [prefix, at_prefix] : prefix_endpoints) {
    if (req.path.size() <= prefix.size() || req.path.compare(0, prefix.size(), prefix) != 0) continue;
    req.route_tail = req.path.substr(prefix.size());
    return serve(at_prefix);
  }

  if (!get) {
    return wrap(HttpMetrics::kOtherRoute, [](const HttpRequest& r, HttpResponse&) {
      throw RequestError(404, "not_found",
                         "no route for " + r.method.substr(0, 20) + " " + r.path.substr(0, 200) + std::string(kRouteList));
    })(req, res);
  }
  wrap(dashboard_route, [](const HttpRequest& r, HttpResponse& out) {
    const server::DashboardAsset* asset = server::find_dashboard_asset(r.path);
    if (asset == nullptr)
      throw RequestError(404, "not_found", "no route for GET " + r.path.substr(0, 200) + std::string(kRouteList));
    out.set_header("Cache-Control", "no-cache");
    out.set_content(std::string(asset->body), asset->content_type);
  })(req, res);
}

namespace {

// Each connection is a descriptor: raise the soft open-file limit toward the hard one so
// server.max_connections can be reached (the models, the tiers and the logs need some too).
void fit_open_file_limit(std::size_t max_connections) {
  constexpr rlim_t kReserve = 256;
  const rlim_t wanted = static_cast<rlim_t>(max_connections) + kReserve;
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= wanted) return;
  const rlim_t soft = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max == RLIM_INFINITY ? wanted : std::min(wanted, limit.rlim_max);
  if (limit.rlim_cur > soft) ::setrlimit(RLIMIT_NOFILE, &limit);
  ::getrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_cur < wanted)
    spdlog::warn("pagekeeperd: the open-file limit is {} (hard limit {}), below server.max_connections {} + {}: "
                 "connections past it are refused by the kernel, not answered 503",
                 limit.rlim_cur, limit.rlim_max, max_connections, kReserve);
}

}  // namespace

void Daemon::Impl::start() {
  MutexLock lock(lifecycle_mutex);
  if (started) throw std::logic_error("Daemon::start: already started");
  started = true;
  fit_open_file_limit(config.max_connections);
  bound_port = engine->start();
  if (!is_loopback_name(lower(config.host)) && config.api_key.empty() && config.token.empty())
    spdlog::warn("pagekeeperd: serving on {}, reachable from other hosts, with neither an API key (--api-key) nor "
                 "a token (--token): anyone who can reach it can embed (and spend a remote model's key) and "
                 "change its state",
                 config.host);
  // A thread that cannot be created is a clear startup error, not std::terminate.
  try {
    if (!broker->running()) {
      broker->start();
      started_broker = true;
    }
  } catch (const std::system_error& e) {
    throw ServerError(std::string("cannot start the pressure broker's thread: ") + e.what());
  }
  try {
    history->start();
  } catch (const std::system_error& e) {
    throw ServerError(std::string("cannot start the metrics history thread: ") + e.what());
  }
  spdlog::info("pagekeeperd: serving on http://{}:{} (model {}, embedding budget {} bytes)", config.host, bound_port,
               embeddings->models().default_model(), config.embedding_budget_bytes);
}

void Daemon::Impl::stop() {
  MutexLock lock(lifecycle_mutex);
  if (stopped) return;
  if (started) {
    // Stops accepting; requests in flight finish and get their answers first.
    engine->stop();
    if (started_broker) broker->stop();
    history->stop();
    spdlog::info("pagekeeperd: stopped");
  }
  stopped = true;
  stopped_cv.notify_all();
}

// ---- Daemon ----

Daemon::Daemon(ServerConfig config, DaemonServices services)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(services))) {}

Daemon::~Daemon() { impl_->stop(); }

void Daemon::start() { impl_->start(); }
int Daemon::port() const { return impl_->bound_port; }
std::string Daemon::url() const {
  const std::string& h = impl_->config.host;
  const bool v6 = h.find(':') != std::string::npos;
  return "http://" + (v6 ? "[" + h + "]" : h) + ":" + std::to_string(impl_->bound_port);
}
void Daemon::stop() { impl_->stop(); }
void Daemon::wait() {
  MutexLock lock(impl_->lifecycle_mutex);
  impl_->stopped_cv.wait(lock, [this] {
    impl_->lifecycle_mutex.assert_held();
    return impl_->stopped;
  });
}
bool Daemon::running() const {
  MutexLock lock(impl_->lifecycle_mutex);
  return impl_->started && !impl_->stopped;
}
const ServerConfig& Daemon::config() const { return impl_->config; }
EmbeddingService& Daemon::embeddings() const { return *impl_->embeddings; }
PressureBroker& Daemon::broker() const { return *impl_->broker; }
AdapterPagerRegistry& Daemon::adapters() const { return *impl_->adapters; }
std::vector<PressureAlert> Daemon::recent_alerts() const {
  MutexLock lock(impl_->alerts_mutex);
  return {impl_->alerts.begin(), impl_->alerts.end()};
}

}  // namespace pagekeeper
