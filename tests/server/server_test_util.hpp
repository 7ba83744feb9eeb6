// Helpers of the pagekeeperd tests: a Daemon on a loopback port with small limits, raw-socket
// requests (for bytes no HTTP client would send), and real HTTP embedding backends (a
// cpp-httplib server speaking OpenAI's API, slow or failing on purpose) for the failure and
// shutdown tests.
//
// Thread safety: raw_exchange may run concurrently; each TestServer/Backend is owned by one
// test.

#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "pagekeeper/lexical_embedder.hpp"
#include "pagekeeper/openai_embedder.hpp"
#include "pagekeeper/server.hpp"
#include "support/loopback_http_server.hpp"
#include "support/patience.hpp"

namespace pagekeeper::test {

inline ServerConfig small_config() {
  ServerConfig c;
  c.port = 0;
  c.host_memory = false;
  c.threads = 8;
  c.read_timeout = std::chrono::milliseconds(1000);
  c.embedding_budget_bytes = 4u << 20;
  c.limits.max_body_bytes = 256u << 10;
  c.limits.max_texts_per_request = 2048;
  c.limits.max_text_bytes = 4096;
  c.broker.tick_interval = std::chrono::milliseconds(100);
  return c;
}

// A started Daemon; stopped on destruction.
struct TestServer {
  explicit TestServer(ServerConfig config = small_config(), DaemonServices services = {})
      : daemon(std::make_unique<Daemon>(std::move(config), std::move(services))) {
    daemon->start();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", daemon->port());
    c.set_read_timeout(10, 0);
    return c;
  }
  int port() const { return daemon->port(); }
  std::unique_ptr<Daemon> daemon;
};

// A socket connected to `port` on loopback, or -1.
inline int connect_loopback(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Sends all of `bytes`; false when the peer closed or reset the connection first.
inline bool send_all(int fd, std::string_view bytes) {
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

// Whether `received` starts with one complete response: its head and its Content-Length body.
inline bool has_complete_response(const std::string& received) {
  const auto end = received.find("\r\n\r\n");
  const auto cl = received.find("Content-Length: ");
  return end != std::string::npos && cl != std::string::npos && cl < end &&
         received.size() >= end + 4 + std::strtoull(received.c_str() + cl + 16, nullptr, 10);
}

// Reads from `fd` until one complete response, the server closing the connection, or
// `timeout`. Returns everything read ("" when nothing came back).
inline std::string read_answer(int fd, std::chrono::milliseconds timeout) {
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[65536];
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    // Stop at the end of one complete response (the server may keep the connection open).
    if (has_complete_response(out)) break;
  }
  return out;
}

// Sends `bytes` on a fresh connection, optionally half-closes (the server still answers what
// it received), then reads until one complete response, the server closing, or `timeout_ms`.
// Returns everything read ("" when nothing came back). The default limit is generous: a
// loaded machine may answer slowly, and a read ends as soon as the answer is complete.
inline std::string raw_exchange(int port, const std::string& bytes, int timeout_ms = 30000, bool half_close = false,
                                int pause_after_ms = 0) {
  const int fd = connect_loopback(port);
  if (fd < 0) return "";
  send_all(fd, bytes);
  // A client that pauses before half-closing (a slow client, simulated); orders nothing.
  if (pause_after_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(pause_after_ms));
  if (half_close) ::shutdown(fd, SHUT_WR);
  std::string out = read_answer(fd, std::chrono::milliseconds(timeout_ms));
  ::close(fd);
  return out;
}

inline int status_of(const std::string& response) {
  if (response.rfind("HTTP/1.1 ", 0) != 0 || response.size() < 12) return 0;
  return std::atoi(response.substr(9, 3).c_str());
}

inline std::string body_of(const std::string& response) {
  const auto pos = response.find("\r\n\r\n");
  return pos == std::string::npos ? "" : response.substr(pos + 4);
}

// An HTTP request for raw_exchange.
inline std::string http_request(const std::string& method, const std::string& path, const std::string& body,
                                const std::string& content_type = "application/json",
                                const std::string& extra_headers = "") {
  std::string r = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  if (!content_type.empty()) r += "Content-Type: " + content_type + "\r\n";
  r += "Content-Length: " + std::to_string(body.size()) + "\r\n" + extra_headers + "\r\n" + body;
  return r;
}

// A real OpenAI-compatible embeddings server on loopback that answers after `delay`, or with
// HTTP 500 when `fail` is set. Its vectors are the lexical embedder's (dimensions 384).
using test_support::LoopbackHttpServer;

class Backend {
 public:
  Backend(std::chrono::milliseconds delay, bool fail)
      : http_([this, delay, fail](httplib::Server& server) {
          server.Post("/v1/embeddings", [this, delay, fail](const httplib::Request& req, httplib::Response& res) {
            ++calls_;
            std::this_thread::sleep_for(delay);  // a slow backend, simulated
            ++past_delay_;
            if (fail) {
              res.status = 500;
              res.set_content(R"({"error":{"message":"backend exploded on purpose"}})", "application/json");
              return;
            }
            const auto body = nlohmann::json::parse(req.body);
            nlohmann::json data = nlohmann::json::array();
            int i = 0;
            for (const auto& text : body["input"]) {
              data.push_back({{"object", "embedding"}, {"index", i++}, {"embedding", lexical_.embed_one(text.get<std::string>())}});
            }
            res.set_content(nlohmann::json{{"object", "list"}, {"data", data}, {"model", body["model"]}}.dump(),
                            "application/json");
          });
        }) {}
  // An embedder calling this backend, registered under `name`.
  std::shared_ptr<Embedder> embedder(const std::string& name) const {
    OpenAIEmbedderConfig c;
    c.base_url = "http://127.0.0.1:" + std::to_string(http_.port());
    c.model = "test-model";
    c.dimensions = 384;
    c.name = name;
    c.max_retries = 0;
    return std::make_shared<OpenAIEmbedder>(c);
  }
  int calls() const { return calls_.load(); }
  // Calls whose delay is over (their answer is on its way).
  int past_delay() const { return past_delay_.load(); }

 private:
  LexicalEmbedder lexical_;
  std::atomic<int> calls_{0};
  std::atomic<int> past_delay_{0};
  LoopbackHttpServer http_;  // last: stops serving before the members its handler uses go
};

// Embedding service with the lexical model (default) plus `extra` embedders.
inline std::shared_ptr<EmbeddingService> service_with(std::vector<std::shared_ptr<Embedder>> extra,
                                                      std::uint64_t budget = 4u << 20) {
  auto models = std::make_shared<ModelRegistry>("lexical");
  models->add(std::make_shared<LexicalEmbedder>());
  for (auto& e : extra) models->add(std::move(e));
  EmbeddingServiceConfig c;
  c.max_bytes = budget;
  c.models = std::move(models);
  return std::make_shared<EmbeddingService>(std::move(c));
}

}  // namespace pagekeeper::test
