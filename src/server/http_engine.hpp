// HttpEngine: the HTTP/1.1 transport of pagekeeperd. It accepts connections on one address,
// reads requests within the configured limits, hands each complete request to one handler
// and writes the handler's HttpResponse. Requests the engine refuses itself (malformed,
// too large, ...) get the answer the `refuse` callback builds, so every refusal has the
// daemon's JSON error shape.
//
// Thread safety: start() and stop() are called by one owner (Daemon serializes them); the
// handler and `refuse` are called concurrently from the engine's threads and must be
// thread-safe.

#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "server/http_types.hpp"

namespace pagekeeper::server {

struct HttpEngineOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: any free port
  std::size_t worker_threads = 8;
  std::size_t max_body_bytes = 8u << 20;
  std::chrono::milliseconds read_timeout{5000};
  std::chrono::milliseconds write_timeout{5000};
};

class HttpEngine {
 public:
  // Called with a request whose path and query are split from its target (split_target()).
  using Handler = std::function<void(HttpRequest&, HttpResponse&)>;
  // Fills `res` for a request the engine refused with `status`; `code` is a stable word
  // ("bad_request", "limit_exceeded", ...) and `message` names the problem.
  using Refusal = std::function<void(int status, std::string_view code, const std::string& message, HttpResponse& res)>;

  HttpEngine(HttpEngineOptions options, Handler handler, Refusal refuse);
  ~HttpEngine();
  HttpEngine(const HttpEngine&) = delete;
  HttpEngine& operator=(const HttpEngine&) = delete;

  // Binds and serves on background threads; returns the bound port. Throws ServerError when
  // the address cannot be bound. Called at most once.
  int start();
  // Stops accepting, lets requests in flight finish and answer, closes idle connections and
  // joins the engine's threads. Idempotent.
  void stop();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace pagekeeper::server
