// pagekeeper/server.hpp
//
// Daemon: pagekeeperd as a library object. It owns (or is given) the process's services, the
// EmbeddingService, the PressureBroker and the adapter pagers, and serves them over HTTP/1.1
// with an event-driven engine (Boost.Beast on Boost.Asio: a few I/O threads own every
// connection, a bounded pool of worker threads runs the handlers, so idle, slow or hostile
// clients hold no thread; limits and refusals in src/server/http_engine.hpp):
//
//   POST /v1/embeddings            OpenAI-compatible embeddings (float or base64)
//   POST /api/<command>            the original's command API, JSON bodies
//   GET  /metrics                  Prometheus text exposition
//   GET  /healthz                  liveness ("ok" JSON)
//   GET  /                         the dashboard (files built into the binary)
//
// Every refusal is a JSON body {"error": {message, type, code, param, status}} with a 4xx
// status for the caller's mistakes and 5xx for ours; no input crashes the process.
//
// Lifecycle: construct, start() (binds, starts the I/O and worker threads and the broker's
// background relief), then stop() from any thread (or a signal handler thread): the listening
// socket closes at once, idle keep-alive and half-sent requests are closed at once, requests
// in flight finish and get their answers within config.drain_timeout (then their connections
// are closed too), the broker thread stops, and stop() returns. wait() blocks until
// the daemon has stopped. start() may be called once per object.
//
// Thread safety: start(), stop() and wait() may be called from different threads; stop() is
// idempotent. Accessors of the services are safe from any thread (the services state their
// own rules).

#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "pagekeeper/adapter_pager.hpp"
#include "pagekeeper/broker.hpp"
#include "pagekeeper/embedding_service.hpp"
#include "pagekeeper/errors.hpp"
#include "pagekeeper/server_config.hpp"

namespace pagekeeper {

// The daemon could not start (the address is taken, the host cannot be resolved, ...).
class ServerError : public Error {
 public:
  using Error::Error;
};

// Services the daemon serves. A null member is created from the ServerConfig: an
// EmbeddingService with the built-in models (lexical at config.lexical_dimensions) and the
// configured budget, a PressureBroker with config.broker (and the host memory source when
// config.host_memory), an AdapterPagerRegistry in decision-only mode (no loader) whose pagers
// share a MemoryBudget (NVML or 25% of host RAM; none when neither can be read) and register
// with the broker, with config.adapter_budget_bytes as the per-persona default budget. Given
// services are used as they are; the daemon registers the embedding pool (and the memory
// budget it creates) with the broker either way.
struct DaemonServices {
  std::shared_ptr<EmbeddingService> embeddings;
  std::shared_ptr<PressureBroker> broker;
  std::shared_ptr<AdapterPagerRegistry> adapters;
};

class Daemon {
 public:
  // Validates `config` (ServerConfigError) and builds the services; binds nothing yet.
  explicit Daemon(ServerConfig config, DaemonServices services = {});
  // Stops the daemon if it is running.
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Binds config.host:config.port (port 0: any free port), starts serving on background
  // threads and starts the broker's relief thread. Throws ServerError when the address
  // cannot be bound or a thread cannot be created, std::logic_error when called twice.
  void start();
  // The bound port (valid after start()).
  int port() const;
  // "http://host:port".
  std::string url() const;
  // Graceful stop as described above. Idempotent; safe to call before start().
  void stop();
  // Blocks until stop() has completed.
  void wait();
  bool running() const;

  const ServerConfig& config() const;
  EmbeddingService& embeddings() const;
  PressureBroker& broker() const;
  AdapterPagerRegistry& adapters() const;
  // The most recent alerts (oldest first), at most config.alert_history of them.
  std::vector<PressureAlert> recent_alerts() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace pagekeeper
