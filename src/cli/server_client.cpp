#include "cli/server_client.hpp"

#include <regex>

#include <httplib.h>

namespace pagekeeper::cli {

std::string server_url(const std::string& given) {
  return given.find("://") == std::string::npos ? "http://" + given : given;
}

ServerClient::ServerClient(const std::string& url, const std::string& token) : url_(server_url(url)) {
  static const std::regex kUrl(R"(^http://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+)(:\d{1,5})?/?$)");
  if (!std::regex_match(url_, kUrl))
    throw std::invalid_argument("--server (or PAGEKEEPER_SERVER) must look like http://host:port or host:port, got '" +
                                url + "'");
  std::string base = url_;
  if (base.back() == '/') base.pop_back();
  client_ = std::make_unique<httplib::Client>(base);
  client_->set_keep_alive(true);
  client_->set_tcp_nodelay(true);
  client_->set_connection_timeout(5, 0);
  client_->set_read_timeout(120, 0);
  if (!token.empty()) client_->set_bearer_token_auth(token);
}

ServerClient::~ServerClient() = default;
ServerClient::ServerClient(ServerClient&&) noexcept = default;

ServerReply ServerClient::post(const std::string& path, const std::string& body) {
  auto r = client_->Post(path, body, "application/json");
  if (!r) throw ServerClientError(0, "cannot reach pagekeeperd at " + url_ + ": " + httplib::to_string(r.error()));
  ServerReply reply;
  reply.status = r->status;
  reply.body = std::move(r->body);
  auto header = [&](const char* name) -> std::size_t {
    const std::string v = r->get_header_value(name);
    return v.empty() ? 0 : std::stoull(v);
  };
  reply.cache_hits = header("X-Pagekeeper-Cache-Hits");
  reply.cache_misses = header("X-Pagekeeper-Cache-Misses");
  if (reply.status >= 400) {
    std::string message = reply.body.substr(0, 500);
    const auto j = nlohmann::json::parse(reply.body, nullptr, false);
    if (j.is_object() && j.contains("error") && j["error"].contains("message"))
      message = j["error"]["message"].get<std::string>();
    throw ServerClientError(reply.status, "pagekeeperd answered " + std::to_string(reply.status) + " to " + path +
                                              ": " + message);
  }
  return reply;
}

nlohmann::json ServerClient::post_json(const std::string& path, const nlohmann::json& body) {
  return nlohmann::json::parse(post(path, body.dump()).body);
}

}  // namespace pagekeeper::cli
