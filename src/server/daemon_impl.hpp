// Daemon::Impl: the state behind pagekeeper::Daemon, shared by daemon.cpp (lifecycle, HTTP
// framework, route table) and handlers.cpp / cognition.cpp (what each route does). Handlers
// read a server::HttpRequest and fill a server::HttpResponse (http_types.hpp); they never see
// the HTTP engine (http_engine.hpp), which calls dispatch() for every request it reads.
//
// Locking rules:
//   * lifecycle_mutex guards started, stopped and started_broker; stopped_cv is waited on
//     with it. bound_port is written by start() (under it) before port() may be called.
//   * alerts_mutex guards alerts and alerts_total (written by the broker's alert sink, on the
//     broker's thread or a request thread running relieve()).
//   * commands, endpoints, prefix_endpoints, the metrics route table, model_descriptions,
//     llama_models and llama_providers are built in the constructor and read-only after.
//   * in_flight is a relaxed atomic (a gauge for /healthz and /metrics).

#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pagekeeper/detail/mutex.hpp"
#include "server/metrics.hpp"
#include "pagekeeper/tiers_config.hpp"
#include "pagekeeper/server.hpp"
#include "server/requests.hpp"
#include "pagekeeper/core_json.hpp"
#include "server/dashboard_assets.hpp"
#include "server/http_types.hpp"
#include "server/history.hpp"

namespace pagekeeper {

class LlamaModelPool;
namespace server {
class LlamaModelProvider;  // daemon.cpp
class HttpEngine;          // http_engine.hpp
}

struct Daemon::Impl {
  using HttpRequest = server::HttpRequest;
  using HttpResponse = server::HttpResponse;
  // Runs on an engine thread; may throw RequestError (its status, code and message become
  // the JSON error answer) or the library's typed errors (mapped in wrap()).
  using Handler = std::function<void(const HttpRequest&, HttpResponse&)>;
  using CommandHandler = Handler;

  struct Command {
    std::size_t route = 0;
    bool changes_state = false;  // requires the bearer token when one is configured
    CommandHandler handler;
  };

  // A handler for one method of an exact path (GET /metrics, POST /v1/embeddings, ...).
  struct Endpoint {
    std::string method;
    std::size_t route = 0;
    Handler handler;  // already wrapped
  };

  Impl(ServerConfig config, DaemonServices services);
  ~Impl();

  void start();
  void stop();

  // Framework (daemon.cpp).
  void install_routes();
  // Routes one request: /api/<command>, then the exact endpoints, then the dashboard's files.
  // Unknown paths get 404, known paths with another method 405 and Allow. Sets
  // req.route_tail (the command name) before a command's handler runs.
  void dispatch(HttpRequest& req, HttpResponse& res);
  // A metrics route named `name`.
  std::size_t add_route(std::string name);
  // `handler` with the framework around it: in-flight gauge, metrics, errors as JSON.
  Handler wrap(std::size_t route, Handler handler);
  // POST /api/<name>. The framework checks the bearer token first when `changes_state`,
  // then that the body is JSON: an empty body (whatever its Content-Type, or none, or no
  // Content-Length at all) and a body without Content-Type are accepted; handlers read an
  // empty body as no parameters (parse_command_params gives {}).
  void add_command(std::string name, bool changes_state, CommandHandler handler);
  // `method` on the exact path `path` (a metrics route of that name, returned).
  std::size_t add_endpoint(std::string method, const std::string& path, Handler handler);
  // The refusal every route applies before its own checks, or nullopt: a Host that is not
  // ours (403 host_not_allowed), a cross-site Origin or Sec-Fetch-Site on anything but
  // GET/HEAD (403 cross_origin), /v1/* without the API key when one is set (401
  // invalid_api_key).
  std::optional<RequestError> admission_error(const HttpRequest& req) const;
  // Whether `authority` (host[:port]) names this server: a loopback name or address, the
  // bound address, any address literal when bound to all, or a name in allowed_hosts.
  bool host_allowed(std::string_view authority) const;
  // A handler for one method of every path under `prefix` (which ends with '/'), after the
  // exact paths; the rest of the path is in req.route_tail. Metrics under `route_name`.
  void add_prefix_endpoint(std::string method, const std::string& prefix, const std::string& route_name,
                           Handler handler);
  // Throw RequestError (415 / 401 / 403).
  void require_json(const HttpRequest& req) const;
  void require_token(const HttpRequest& req) const;
  static void set_error(HttpResponse& res, int status, std::string_view code, std::string_view message,
                        std::string_view param = {});

  // Handlers (handlers.cpp).
  void install_command_handlers();
  void install_cognition_handlers();  // cognition.cpp
  void install_vector_commands();     // vector_routes.cpp
  void install_model_commands();      // model_commands.cpp
  void install_dashboard_commands();  // dashboard_routes.cpp
  void install_openai_model_routes(); // models_routes.cpp
  server::MetricsReading read_metrics() const;
  // One model as embedding/model/list and embedding/model/info show it (model_commands.cpp).
  nlohmann::json model_entry(const std::string& canonical_name) const;
  void handle_openai_embeddings(const HttpRequest& req, HttpResponse& res);
  // The same answer from an I/O thread when every input is cached (nothing can block);
  // false to leave the request to a worker. Throws what parsing throws.
  bool answer_embeddings_if_cached(const HttpRequest& req, HttpResponse& res);
  void check_dimensions(const EmbeddingsRequest& request, std::string_view model) const;
  void write_openai_embeddings(const EmbeddingsRequest& request, const EmbedBatchResult& result,
                               HttpResponse& res) const;
  // The engine's inline hook (see HttpEngine::InlineHandler): cached /v1/embeddings and
  // /healthz, with the same checks, metrics and errors as on a worker.
  bool answer_inline(HttpRequest& req, HttpResponse& res);
  std::string prometheus_text() const;

  ServerConfig config;
  std::shared_ptr<EmbeddingService> embeddings;
  Tiers tiers;  // below the embedding cache; built in the constructor, read-only after
  std::shared_ptr<PressureBroker> broker;
  std::shared_ptr<MemoryBudget> memory_budget;  // null when given adapters or none readable
  std::shared_ptr<AdapterPagerRegistry> adapters;

  // What embedding/model/list tells about a model besides its names; filled when the daemon
  // builds its own models (empty for models given in DaemonServices).
  struct ModelDescription {
    std::string backend;   // "lexical", "llama" or "openai"
    std::string location;  // the GGUF path or the endpoint URL ("" for lexical)
    std::function<std::optional<std::size_t>()> dimensions;  // nullopt until known
    // Models whose weights live in this process (llama.cpp): whether they are resident now,
    // and dropping them (returns whether they were). Empty for backends with nothing loaded.
    std::function<bool()> resident;
    std::function<bool()> unload;
  };
  std::map<std::string, ModelDescription> model_descriptions;  // by canonical name
  // Configured llama.cpp models: the pool of their loaded models (registered with the broker;
  // null when none is configured) and the providers that build their embedders.
  std::shared_ptr<LlamaModelPool> llama_models;
  std::vector<std::shared_ptr<server::LlamaModelProvider>> llama_providers;

  HttpMetrics metrics;
  std::map<std::string, Command> commands;
  std::map<std::string, std::vector<Endpoint>> endpoints;  // by path
  std::map<std::string, std::vector<Endpoint>> prefix_endpoints;  // by path prefix
  std::size_t dashboard_route = 0;
  std::size_t embeddings_route = 0;
  std::unique_ptr<server::HttpEngine> engine;
  std::atomic<std::int64_t> in_flight{0};
  // The dashboard's history; sampling runs between start() and stop().
  std::unique_ptr<server::MetricsHistory> history;

  mutable Mutex alerts_mutex;
  std::deque<PressureAlert> alerts PAGEKEEPER_GUARDED_BY(alerts_mutex);
  std::uint64_t alerts_total PAGEKEEPER_GUARDED_BY(alerts_mutex) = 0;

  mutable Mutex lifecycle_mutex;
  CondVar stopped_cv;
  bool started PAGEKEEPER_GUARDED_BY(lifecycle_mutex) = false;
  bool stopped PAGEKEEPER_GUARDED_BY(lifecycle_mutex) = false;
  bool started_broker PAGEKEEPER_GUARDED_BY(lifecycle_mutex) = false;
  int bound_port = 0;
};

}  // namespace pagekeeper
