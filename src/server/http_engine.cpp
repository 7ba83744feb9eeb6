// HttpEngine over cpp-httplib: a worker thread serves one connection at a time (the engine's
// known limit; the event-driven engine replaces it). Every method and path goes to the one
// handler, which routes.

#include "server/http_engine.hpp"

#include <thread>

#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "pagekeeper/server.hpp"

namespace pagekeeper::server {

struct HttpEngine::State {
  HttpEngineOptions options;
  Handler handler;
  Refusal refuse;
  httplib::Server http;
  std::thread listener;
  bool started = false;
};

namespace {

HttpRequest from_httplib(const httplib::Request& in) {
  HttpRequest req;
  req.method = in.method;
  req.target = in.target.empty() ? in.path : in.target;
  for (const auto& [name, value] : in.headers) req.headers.add(name, value);
  req.body = in.body;
  return req;
}

void to_httplib(const HttpResponse& in, httplib::Response& out) {
  out.status = in.status;
  for (const auto& [name, value] : in.headers) {
    if (equal_ignoring_case(name, "Content-Length") || equal_ignoring_case(name, "Transfer-Encoding") ||
        equal_ignoring_case(name, "Connection") || equal_ignoring_case(name, "Content-Type") ||
        equal_ignoring_case(name, "Date"))
      continue;
    out.set_header(name.c_str(), value);
  }
  if (!in.content_type.empty() || !in.body.empty())
    out.set_content(in.body, in.content_type.empty() ? "application/octet-stream" : in.content_type.c_str());
}

}  // namespace

HttpEngine::HttpEngine(HttpEngineOptions options, Handler handler, Refusal refuse) : state_(std::make_unique<State>()) {
  state_->options = std::move(options);
  state_->handler = std::move(handler);
  state_->refuse = std::move(refuse);
  State& s = *state_;
  const std::size_t threads = s.options.worker_threads;
  s.http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  s.http.set_payload_max_length(s.options.max_body_bytes);
  const auto rt = s.options.read_timeout.count();
  s.http.set_read_timeout(rt / 1000, (rt % 1000) * 1000);
  const auto wt = s.options.write_timeout.count();
  s.http.set_write_timeout(wt / 1000, (wt % 1000) * 1000);
  s.http.set_keep_alive_max_count(10000);
  // httplib's default also sets SO_REUSEPORT, which would let a second daemon bind the same
  // port and silently share its traffic; a taken port must be an error. TCP_NODELAY (inherited
  // by accepted sockets on Linux): httplib writes headers and body separately, and Nagle's
  // algorithm would hold the body until the client's delayed ACK, ~40 ms per response.
  s.http.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, reinterpret_cast<const void*>(&yes), sizeof(yes));
    ::setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, reinterpret_cast<const void*>(&yes), sizeof(yes));
  });
  s.http.set_keep_alive_timeout(5);

  auto serve = [this](const httplib::Request& in, httplib::Response& out) {
    HttpResponse res;
    HttpRequest req = from_httplib(in);
    if (req.split_target())
      state_->handler(req, res);
    else
      state_->refuse(400, "bad_request", "the request target is not a path, or holds a malformed %-escape", res);
    to_httplib(res, out);
  };
  for (auto add : {&httplib::Server::Get, &httplib::Server::Post, &httplib::Server::Put, &httplib::Server::Delete,
                   &httplib::Server::Patch, &httplib::Server::Options})
    (s.http.*add)(".*", serve);

  // Answers httplib produces itself (a malformed request line, a body over the limit, ...)
  // arrive here with an empty body; the handler's answers already have one.
  s.http.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req, httplib::Response& out) {
    if (!out.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string code = "http_error";
    std::string message;
    switch (out.status) {
      case 413:
        code = "limit_exceeded";
        message = "request body exceeds limits.max_body_bytes (" + std::to_string(state_->options.max_body_bytes) +
                  " bytes)";
        break;
      case 414:
        code = "uri_too_long";
        message = "request URI too long";
        break;
      case 400:
        code = "bad_request";
        if ((req.method == "POST" || req.method == "PUT") && !req.has_header("Content-Length") &&
            !req.has_header("Transfer-Encoding"))
          message = req.method + " needs a Content-Length header (or Transfer-Encoding: chunked)";
        else
          message = "malformed HTTP request: the request line, a header or the body framing could not be read";
        break;
      default:
        message = "HTTP " + std::to_string(out.status);
    }
    HttpResponse res;
    state_->refuse(out.status, code, message, res);
    to_httplib(res, out);
    return httplib::Server::HandlerResponse::Handled;
  }));
}

HttpEngine::~HttpEngine() { stop(); }

int HttpEngine::start() {
  State& s = *state_;
  int port = s.options.port;
  if (port == 0) {
    port = s.http.bind_to_any_port(s.options.host);
    if (port <= 0) throw ServerError("cannot bind " + s.options.host + " on any port");
  } else if (!s.http.bind_to_port(s.options.host, port)) {
    throw ServerError("cannot bind " + s.options.host + ":" + std::to_string(port) +
                      " (address in use, or the host does not resolve)");
  }
  s.started = true;
  s.listener = std::thread([&s] { s.http.listen_after_bind(); });
  // stop() only works on a server that has entered its accept loop.
  while (!s.http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return port;
}

void HttpEngine::stop() {
  State& s = *state_;
  if (!s.started) return;
  // Closes the listening socket; listen_after_bind() returns once the worker pool has
  // finished the requests in flight (httplib joins its workers).
  s.http.stop();
  if (s.listener.joinable()) s.listener.join();
  s.started = false;
}

}  // namespace pagekeeper::server
