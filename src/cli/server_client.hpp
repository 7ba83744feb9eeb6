// ServerClient: the `pagekeeper` tool's HTTP client of a running pagekeeperd (used by embed,
// index, stats and bench). It turns the server's JSON error bodies into exceptions that carry
// the server's own message.
//
// Thread safety: one ServerClient per thread (it holds one keep-alive connection).

#pragma once

#include <memory>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "pagekeeper/errors.hpp"

namespace httplib {
class Client;
}

namespace pagekeeper::cli {

inline constexpr const char* kDefaultServerUrl = "http://127.0.0.1:8077";

// The server answered with an error status or could not be reached; what() says which.
class ServerClientError : public Error {
 public:
  ServerClientError(int status, const std::string& message) : Error(message), status(status) {}
  int status;  // 0 when no answer came back
};

struct ServerReply {
  int status = 0;
  std::string body;
  std::size_t cache_hits = 0;    // X-Pagekeeper-Cache-Hits, 0 when absent
  std::size_t cache_misses = 0;  // X-Pagekeeper-Cache-Misses
};

// `given` with "http://" in front when it names no scheme ("127.0.0.1:8077").
std::string server_url(const std::string& given);

class ServerClient {
 public:
  // `url` is http://host[:port] or host[:port] (no path). Throws std::invalid_argument for
  // anything else.
  explicit ServerClient(const std::string& url, const std::string& token = {});
  ~ServerClient();
  ServerClient(ServerClient&&) noexcept;

  // POSTs `body` as JSON to `path`. Throws ServerClientError for transport failures and for
  // a status >= 400 (with the server's error message).
  ServerReply post(const std::string& path, const std::string& body);
  nlohmann::json post_json(const std::string& path, const nlohmann::json& body);
  const std::string& url() const { return url_; }

 private:
  std::string url_;
  std::unique_ptr<httplib::Client> client_;
};

}  // namespace pagekeeper::cli
