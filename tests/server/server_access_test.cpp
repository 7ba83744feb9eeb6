// Who may reach pagekeeperd: the API key on /v1/*, the token on state-changing commands,
// the Host and Origin checks that keep web pages in the operator's browser out (DNS
// rebinding, cross-site forms), the persona limit, and the startup warning for an exposed
// daemon without credentials.

#include <gtest/gtest.h>

#include <sstream>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "server_test_util.hpp"

namespace pagekeeper::test {
namespace {

using nlohmann::json;

std::string request(const std::string& method, const std::string& path, const std::string& body,
                    const std::string& headers, const std::string& host = "127.0.0.1") {
  return method + " " + path + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n" + headers +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string error_code(const std::string& response) {
  try {
    return json::parse(body_of(response))["error"]["code"].get<std::string>();
  } catch (const std::exception&) {
    return "(no JSON error: " + response.substr(0, 200) + ")";
  }
}

TEST(Access, ApiKeyGuardsEveryV1Route) {
  ServerConfig config = small_config();
  config.api_key = "sk-test-key";
  TestServer server(config);
  const std::string body = R"({"input":"guarded"})";
  const std::string json_type = "Content-Type: application/json\r\n";

  const std::string none = raw_exchange(server.port(), request("POST", "/v1/embeddings", body, json_type));
  EXPECT_EQ(status_of(none), 401) << none;
  EXPECT_EQ(error_code(none), "invalid_api_key");
  const std::string wrong = raw_exchange(
      server.port(), request("POST", "/v1/embeddings", body, json_type + "Authorization: Bearer sk-test-kez\r\n"));
  EXPECT_EQ(status_of(wrong), 401);
  EXPECT_EQ(error_code(wrong), "invalid_api_key");
  const std::string other_path = raw_exchange(server.port(), request("GET", "/v1/anything", "", ""));
  EXPECT_EQ(status_of(other_path), 401) << "every /v1/ path, known or not";
  EXPECT_EQ(server.daemon->embeddings().stats().entry_count, 0u) << "a refused request embedded";

  const std::string right = raw_exchange(
      server.port(), request("POST", "/v1/embeddings", body, json_type + "Authorization: Bearer sk-test-key\r\n"));
  EXPECT_EQ(status_of(right), 200) << right;
  // Twice: the second is a cache hit, answered on the I/O thread, with the same check.
  const std::string hit_without_key = raw_exchange(server.port(), request("POST", "/v1/embeddings", body, json_type));
  EXPECT_EQ(status_of(hit_without_key), 401);

  // The key is for /v1/*; the command API and the probes do not need it.
  EXPECT_EQ(status_of(raw_exchange(server.port(), request("POST", "/api/embedding/cache/stats", "", ""))), 200);
  EXPECT_EQ(status_of(raw_exchange(server.port(), request("GET", "/healthz", "", ""))), 200);
}

TEST(Access, TokenGuardsStateChangingCommands) {
  ServerConfig config = small_config();
  config.token = "t0ken";
  TestServer server(config);
  EXPECT_EQ(status_of(raw_exchange(server.port(), request("POST", "/api/embedding/cache/clear", "", ""))), 401);
  EXPECT_EQ(status_of(raw_exchange(server.port(), request("POST", "/api/embedding/cache/clear", "",
                                                          "Authorization: Bearer wrong\r\n"))),
            403);
  EXPECT_EQ(status_of(raw_exchange(server.port(), request("POST", "/api/embedding/cache/clear", "",
                                                          "Authorization: Bearer t0ken\r\n"))),
            200);
}

TEST(Access, ForeignHostIsRefusedAndKnownNamesAreServed) {
  ServerConfig config = small_config();
  config.allowed_hosts = {"pagekeeper.internal"};
  TestServer server(config);
  for (const char* host : {"evil.example", "evil.example:8077", "127.0.0.1.evil.example", "localhost.evil"}) {
    const std::string r = raw_exchange(server.port(), request("GET", "/healthz", "", "", host));
    EXPECT_EQ(status_of(r), 403) << host << r;
    EXPECT_EQ(error_code(r), "host_not_allowed") << host;
  }
  const std::string port = std::to_string(server.port());
  for (const std::string& host : {"127.0.0.1:" + port, "localhost:" + port, std::string("localhost"), "[::1]:" + port,
                                  "PageKeeper.Internal:" + port, std::string("127.0.0.2")}) {
    EXPECT_EQ(status_of(raw_exchange(server.port(), request("GET", "/healthz", "", "", host))), 200) << host;
  }
}

TEST(Access, CrossSitePostCannotClearTheCache) {
  // The attack: a page elsewhere makes the operator's browser send a bodyless POST, with its
  // own Origin (and, through DNS rebinding, its own Host).
  TestServer server;
  ASSERT_EQ(status_of(raw_exchange(server.port(), http_request("POST", "/v1/embeddings", R"({"input":"keep me"})"))),
            200);
  ASSERT_EQ(server.daemon->embeddings().stats().entry_count, 1u);
  const std::string clear = "/api/embedding/cache/clear";
  for (const std::string& headers :
       {std::string("Origin: http://evil.example\r\n"), std::string("Origin: null\r\n"),
        std::string("Origin: http://127.0.0.1.evil.example\r\n"), std::string("Sec-Fetch-Site: cross-site\r\n")}) {
    const std::string r = raw_exchange(server.port(), request("POST", clear, "", headers));
    EXPECT_EQ(status_of(r), 403) << headers << r;
    EXPECT_EQ(error_code(r), "cross_origin");
  }
  const std::string rebound = raw_exchange(server.port(), request("POST", clear, "", "Origin: http://evil.example\r\n",
                                                                  "evil.example"));
  EXPECT_EQ(status_of(rebound), 403);
  EXPECT_EQ(server.daemon->embeddings().stats().entry_count, 1u) << "a refused request cleared the cache";

  // Pages of this server (the dashboard) may.
  const std::string own = raw_exchange(
      server.port(), request("POST", clear, "", "Origin: http://127.0.0.1:" + std::to_string(server.port()) + "\r\n"));
  EXPECT_EQ(status_of(own), 200) << own;
  EXPECT_EQ(server.daemon->embeddings().stats().entry_count, 0u);
}

TEST(Access, PersonasAreBoundedAndMetricsStayBounded) {
  ServerConfig config = small_config();
  config.max_personas = 3;
  TestServer server(config);
  auto create = [&](const std::string& persona) {
    return raw_exchange(server.port(),
                        http_request("POST", "/api/cognition/genome-evict-under-pressure",
                                     json{{"persona_id", persona}, {"memory_budget_mb", 4}}.dump()));
  };
  for (int i = 0; i < 3; ++i) ASSERT_EQ(status_of(create("persona-" + std::to_string(i))), 200);
  const std::size_t metrics_size = body_of(raw_exchange(server.port(), http_request("GET", "/metrics", "", ""))).size();
  for (int i = 3; i < 50; ++i) {
    const std::string r = create("persona-" + std::to_string(i));
    ASSERT_EQ(status_of(r), 429) << r;
    EXPECT_EQ(error_code(r), "too_many_personas");
  }
  EXPECT_EQ(status_of(create("persona-1")), 200) << "an existing persona still works";
  const std::size_t metrics_after = body_of(raw_exchange(server.port(), http_request("GET", "/metrics", "", ""))).size();
  EXPECT_LT(metrics_after, metrics_size + 4096) << "refused personas grew /metrics";
  EXPECT_EQ(server.daemon->adapters().persona_ids().size(), 3u);
}

TEST(Access, ExposedDaemonWithoutCredentialsWarnsAtStartup) {
  std::ostringstream log;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  spdlog::default_logger()->sinks().push_back(sink);
  {
    ServerConfig config = small_config();
    config.host = "0.0.0.0";
    TestServer exposed(config);
  }
  const std::string exposed_log = log.str();
  log.str("");
  {
    ServerConfig config = small_config();
    config.host = "0.0.0.0";
    config.api_key = "sk-set";
    TestServer keyed(config);
  }
  {
    TestServer loopback;
  }
  spdlog::default_logger()->sinks().pop_back();
  EXPECT_NE(exposed_log.find("neither an API key"), std::string::npos) << exposed_log;
  EXPECT_EQ(log.str().find("neither an API key"), std::string::npos) << log.str();
}

}  // namespace
}  // namespace pagekeeper::test
