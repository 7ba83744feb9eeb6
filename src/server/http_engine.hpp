// HttpEngine: the HTTP/1.1 transport of pagekeeperd, event-driven (Boost.Beast on Boost.Asio,
// in http_engine.cpp only). It accepts connections on one address, reads requests within the
// configured limits, hands each complete request to the handler on a bounded pool of worker
// threads and writes the handler's HttpResponse; keep-alive and pipelined requests are
// answered in order. A connection waiting for a worker, or idle, or slow, holds no thread.
// Requests the engine refuses itself (malformed framing 400, a body over the limit 413, a
// long target 414, a Content-Encoding 415, a large header 431, too many connections 503)
// get the answer the `refuse` callback builds, so every refusal has the daemon's JSON error
// shape; the connection is closed after such a refusal. `Range` is not implemented (every
// answer is whole), HEAD answers carry the GET answer's headers without its body.
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
  std::string host = "127.0.0.1";  // an address or a name that resolves to one
  int port = 0;                    // 0: any free port
  std::size_t io_threads = 1;      // accept, read, parse and write; never a handler
  std::size_t worker_threads = 8;  // run the handlers
  std::size_t max_connections = 10000;  // past it: 503 with Retry-After, then close
  std::size_t max_body_bytes = 8u << 20;   // decoded body, whatever the framing (413)
  std::size_t max_header_bytes = 16u << 10;  // request line and header fields (431)
  std::size_t max_header_fields = 100;       // (431)
  std::size_t max_target_bytes = 8u << 10;   // request target (414)
  // From the first byte of a request to the end of its header, and then to the end of its
  // body: a client slower than this is disconnected (slowloris).
  std::chrono::milliseconds header_timeout{5000};
  std::chrono::milliseconds body_timeout{5000};
  // A keep-alive connection waiting for its next request is closed after this.
  std::chrono::milliseconds idle_timeout{60000};
  std::chrono::milliseconds write_timeout{5000};
  // stop() waits this long for requests in flight before closing their connections.
  std::chrono::milliseconds drain_timeout{10000};
};

class HttpEngine {
 public:
  // Called with a request whose path and query are split from its target (split_target()).
  using Handler = std::function<void(HttpRequest&, HttpResponse&)>;
  // Fills `res` for a request the engine refused with `status`; `code` is a stable word
  // ("bad_request", "limit_exceeded", ...) and `message` names the problem.
  using Refusal = std::function<void(int status, std::string_view code, const std::string& message, HttpResponse& res)>;

  // Called on an I/O thread before a request is queued for a worker: answers it there and
  // returns true when it can do so at once without blocking (a cache hit), returns false
  // (leaving `res` unused) to have `handler` run it on a worker. An exception counts as false.
  using InlineHandler = std::function<bool(HttpRequest&, HttpResponse&)>;

  HttpEngine(HttpEngineOptions options, Handler handler, Refusal refuse, InlineHandler answer_inline = {});
  ~HttpEngine();
  HttpEngine(const HttpEngine&) = delete;
  HttpEngine& operator=(const HttpEngine&) = delete;

  // Binds and serves on background threads; returns the bound port. Throws ServerError when
  // the address cannot be bound. Called at most once.
  int start();
  // Stops accepting, closes idle connections at once, lets requests in flight finish and
  // answer within drain_timeout (then closes their connections too) and joins the engine's
  // threads. Idempotent.
  void stop();
  // Connections open now.
  std::size_t connections() const;

  struct State;  // http_engine.cpp

 private:
  std::unique_ptr<State> state_;
};

}  // namespace pagekeeper::server
