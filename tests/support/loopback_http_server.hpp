// An httplib server on a free 127.0.0.1 port, serving on its own thread, for tests that need a
// real HTTP peer (an OpenAI-compatible backend, a model host).
//
// Construction throws std::runtime_error, naming the cause, when no port can be bound or the
// server is not serving within kPatience, instead of waiting for ctest's timeout. Destruction
// stops the server and joins its thread, so handlers never run after it.
//
// Thread safety: port() may be called from any thread; the routes that `install` adds run on
// httplib's worker threads.

#pragma once

#include <atomic>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>

#include <httplib.h>

#include "support/patience.hpp"

namespace pagekeeper::test_support {

class LoopbackHttpServer {
 public:
  explicit LoopbackHttpServer(const std::function<void(httplib::Server&)>& install) {
    install(server_);
    port_ = server_.bind_to_any_port("127.0.0.1");
    if (port_ < 0) throw std::runtime_error("test HTTP server: no free port on 127.0.0.1");
    thread_ = std::thread([this] {
      if (!server_.listen_after_bind()) listen_failed_.store(true);
    });
    const bool serving =
        eventually([this] { return server_.is_running() || listen_failed_.load(); }) && !listen_failed_.load();
    if (!serving) {
      server_.stop();
      thread_.join();
      throw std::runtime_error("test HTTP server on port " + std::to_string(port_) +
                               " did not start serving");
    }
  }
  LoopbackHttpServer(const LoopbackHttpServer&) = delete;
  LoopbackHttpServer& operator=(const LoopbackHttpServer&) = delete;
  ~LoopbackHttpServer() {
    server_.stop();
    thread_.join();
  }

  int port() const { return port_; }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::atomic<bool> listen_failed_{false};
  std::thread thread_;
};

}  // namespace pagekeeper::test_support
