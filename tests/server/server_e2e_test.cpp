// End-to-end tests of pagekeeperd: a real Daemon on a loopback port, real HTTP clients.

#include <gtest/gtest.h>

#include <cstring>
#include <future>

#include "pagekeeper/rate_limited_embedder.hpp"
#include "server/encoding.hpp"
#include "server_test_util.hpp"
#include "support/config_error.hpp"

namespace pagekeeper::test {
namespace {

using nlohmann::json;

httplib::Result post(httplib::Client& c, const std::string& path, const json& body,
                     const httplib::Headers& headers = {}) {
  return c.Post(path.c_str(), headers, body.dump(), "application/json");
}

json parsed(const httplib::Result& r) { return json::parse(r->body); }

TEST(ServerE2E, HealthzAnswersOk) {
  TestServer s;
  auto c = s.client();
  auto r = c.Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(parsed(r)["status"], "ok");
}

TEST(ServerE2E, OpenAIEmbeddingsFloatThenHitWithCacheHeaders) {
  TestServer s;
  auto c = s.client();
  auto first = post(c, "/v1/embeddings", {{"input", "the quick brown fox"}, {"model", "lexical"}});
  ASSERT_TRUE(first);
  ASSERT_EQ(first->status, 200) << first->body;
  EXPECT_EQ(first->get_header_value("X-Pagekeeper-Cache-Hits"), "0");
  EXPECT_EQ(first->get_header_value("X-Pagekeeper-Cache-Misses"), "1");
  const json body = parsed(first);
  EXPECT_EQ(body["object"], "list");
  EXPECT_EQ(body["model"], "lexical");
  ASSERT_EQ(body["data"].size(), 1u);
  EXPECT_EQ(body["data"][0]["object"], "embedding");
  EXPECT_EQ(body["data"][0]["index"], 0);
  ASSERT_EQ(body["data"][0]["embedding"].size(), 384u);
  EXPECT_GT(body["usage"]["prompt_tokens"].get<int>(), 0);
  EXPECT_EQ(body["usage"]["total_tokens"], body["usage"]["prompt_tokens"]);
  // The same vector as the embedder computes, exactly (shortest round-trip floats).
  const auto expected = LexicalEmbedder().embed_one("the quick brown fox");
  for (std::size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(body["data"][0]["embedding"][i].get<float>(), expected[i]);

  auto second = post(c, "/v1/embeddings", {{"input", "the quick brown fox"}});
  ASSERT_EQ(second->status, 200);
  EXPECT_EQ(second->get_header_value("X-Pagekeeper-Cache-Hits"), "1");
  EXPECT_EQ(second->get_header_value("X-Pagekeeper-Cache-Misses"), "0");
}

TEST(ServerE2E, OpenAIEmbeddingsBase64MatchesFloat) {
  TestServer s;
  auto c = s.client();
  const json texts = {"alpha beta", "gamma delta", "alpha beta"};
  auto f = post(c, "/v1/embeddings", {{"input", texts}, {"encoding_format", "float"}});
  auto b = post(c, "/v1/embeddings", {{"input", texts}, {"encoding_format", "base64"}});
  ASSERT_EQ(f->status, 200);
  ASSERT_EQ(b->status, 200);
  EXPECT_EQ(b->get_header_value("X-Pagekeeper-Cache-Hits"), "3");
  const json fj = parsed(f), bj = parsed(b);
  ASSERT_EQ(bj["data"].size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(bj["data"][i]["index"], i);
    std::vector<float> floats = fj["data"][i]["embedding"].get<std::vector<float>>();
    std::string bytes;
    server::append_le_float32(bytes, floats);
    std::string encoded;
    server::append_base64(encoded, bytes);
    EXPECT_EQ(bj["data"][i]["embedding"].get<std::string>(), encoded);
  }
}

TEST(ServerE2E, DimensionsAndTokenArraysAreRefusedSayingSo) {
  TestServer s;
  auto c = s.client();
  auto same = post(c, "/v1/embeddings", {{"input", "x"}, {"dimensions", 384}});
  EXPECT_EQ(same->status, 200);
  auto other = post(c, "/v1/embeddings", {{"input", "x"}, {"dimensions", 128}});
  EXPECT_EQ(other->status, 400);
  EXPECT_NE(parsed(other)["error"]["message"].get<std::string>().find("dimensions=128 is not supported"),
            std::string::npos);
  auto tokens = post(c, "/v1/embeddings", {{"input", json::array({1, 2, 3})}});
  EXPECT_EQ(tokens->status, 400);
  EXPECT_NE(parsed(tokens)["error"]["message"].get<std::string>().find("token-array input is not supported"),
            std::string::npos);
}

TEST(ServerE2E, GenerateReturnsRawFloat32WithShapeHeadersOrJson) {
  TestServer s;
  auto c = s.client();
  auto raw = post(c, "/api/embedding/generate", {{"texts", {"one", "two"}}, {"model", "default"}});
  ASSERT_EQ(raw->status, 200) << raw->body;
  EXPECT_EQ(raw->get_header_value("Content-Type"), "application/octet-stream");
  EXPECT_EQ(raw->get_header_value("X-Pagekeeper-Shape"), "384");
  EXPECT_EQ(raw->get_header_value("X-Pagekeeper-Batch-Size"), "2");
  EXPECT_EQ(raw->get_header_value("X-Pagekeeper-Dtype"), "f32");
  EXPECT_EQ(raw->get_header_value("X-Pagekeeper-Model"), "lexical");
  ASSERT_EQ(raw->body.size(), 2u * 384 * sizeof(float));
  std::vector<float> second(384);
  std::memcpy(second.data(), raw->body.data() + 384 * sizeof(float), 384 * sizeof(float));
  EXPECT_EQ(second, LexicalEmbedder().embed_one("two"));

  auto by_accept = post(c, "/api/embedding/generate", {{"texts", {"one"}}}, {{"Accept", "application/json"}});
  ASSERT_EQ(by_accept->status, 200);
  EXPECT_EQ(parsed(by_accept)["shape"], json::array({384}));
  EXPECT_EQ(parsed(by_accept)["batchSize"], 1);
  EXPECT_EQ(parsed(by_accept)["embeddings"][0].size(), 384u);
  auto by_flag = post(c, "/api/embedding/generate", {{"texts", {"one"}}, {"format", "json"}});
  EXPECT_EQ(parsed(by_flag)["hits"], 1);

  auto empty = post(c, "/api/embedding/generate", {{"texts", json::array()}});
  EXPECT_EQ(empty->status, 400);
  EXPECT_EQ(parsed(empty)["error"]["message"], "No texts provided");
}

TEST(ServerE2E, CacheStatsAndClearWithTokenRule) {
  ServerConfig config = small_config();
  config.token = "letmein";
  TestServer s(config);
  auto c = s.client();
  auto stats0 = post(c, "/api/embedding/cache/stats", json::object());
  ASSERT_EQ(stats0->status, 200);
  EXPECT_EQ(parsed(stats0)["hitRatePercent"], "0.0");
  post(c, "/v1/embeddings", {{"input", {"a", "b", "c"}}});
  post(c, "/v1/embeddings", {{"input", "a"}});
  const json stats = parsed(post(c, "/api/embedding/cache/stats", json::object()));
  for (const char* key : {"hits", "misses", "size", "pinned", "totalBytes", "maxBytes", "pressure", "evictions"})
    EXPECT_TRUE(stats.contains(key)) << key;
  EXPECT_EQ(stats["hits"], 1);
  EXPECT_EQ(stats["misses"], 3);
  EXPECT_EQ(stats["size"], 3);
  EXPECT_EQ(stats["hitRatePercent"], "25.0");
  EXPECT_EQ(stats["maxBytes"], 4u << 20);

  auto no_token = post(c, "/api/embedding/cache/clear", json::object());
  EXPECT_EQ(no_token->status, 401);
  auto wrong = post(c, "/api/embedding/cache/clear", json::object(), {{"Authorization", "Bearer nope"}});
  EXPECT_EQ(wrong->status, 403);
  // Read-only commands need no token.
  EXPECT_EQ(post(c, "/api/system/pressure-broker-state", json::object())->status, 200);
  for (const char* cmd : {"cognition/genome-sync", "cognition/genome-evict-under-pressure",
                          "cognition/genome-activate-skill"})
    EXPECT_EQ(post(c, std::string("/api/") + cmd, json::object())->status, 401) << cmd;
  auto ok = post(c, "/api/embedding/cache/clear", json::object(), {{"Authorization", "Bearer letmein"}});
  ASSERT_EQ(ok->status, 200);
  EXPECT_EQ(parsed(ok), (json{{"cleared", 3}, {"success", true}}));
  const json after = parsed(post(c, "/api/embedding/cache/stats", json::object()));
  EXPECT_EQ(after["size"], 0);
  EXPECT_EQ(after["hitRatePercent"], "0.0");
}

TEST(ServerE2E, ModelListBrokerStateAndUnknownCommand) {
  TestServer s;
  auto c = s.client();
  const json models = parsed(post(c, "/api/embedding/model/list", json::object()));
  ASSERT_FALSE(models["models"].empty());
  bool lexical_default = false;
  for (const auto& m : models["models"])
    if (m["name"] == "lexical" && m["isDefault"] == true) lexical_default = true;
  EXPECT_TRUE(lexical_default) << models.dump();

  const json state = parsed(post(c, "/api/system/pressure-broker-state", json::object()));
  EXPECT_TRUE(state.contains("globalPressure"));
  EXPECT_TRUE(state.contains("evictionsFired"));
  EXPECT_TRUE(state.contains("bytesFreedTotal"));
  bool has_embedding_pool = false;
  for (const auto& p : state["pools"])
    if (p["name"] == "embedding-cache") has_embedding_pool = p["stats"].contains("hitCount");
  EXPECT_TRUE(has_embedding_pool) << state.dump();

  auto unknown = post(c, "/api/embedding/does-not-exist", json::object());
  ASSERT_EQ(unknown->status, 404);
  const json known = parsed(unknown)["knownCommands"];
  for (const char* cmd :
       {"embedding/generate", "embedding/cache/stats", "embedding/cache/clear", "embedding/model/list",
        "system/pressure-broker-state", "cognition/genome-activate-skill", "cognition/genome-evict-under-pressure",
        "cognition/genome-sync", "cognition/genome-state"})
    EXPECT_NE(std::find(known.begin(), known.end(), cmd), known.end()) << cmd;
}

TEST(ServerE2E, CognitionCommandsPageAdapters) {
  TestServer s;
  auto c = s.client();
  const json adapters = json::array({{{"name", "code"}, {"size_mb", 40}, {"is_loaded", true}},
                                     {{"name", "legal"}, {"size_mb", 40}},
                                     {{"name", "math"}, {"size_mb", 40}}});
  auto sync = post(c, "/api/cognition/genome-sync", {{"persona_id", "p"}, {"adapters", adapters}, {"memory_budget_mb", 100}});
  ASSERT_EQ(sync->status, 200) << sync->body;
  EXPECT_EQ(parsed(sync)["adapter_count"], 3);
  EXPECT_EQ(parsed(sync)["active_count"], 1);
  auto act = post(c, "/api/cognition/genome-activate-skill", {{"persona_id", "p"}, {"skill_name", "legal"}});
  ASSERT_EQ(act->status, 200) << act->body;
  EXPECT_EQ(parsed(act)["activated"], true);
  // A third 40 MB adapter in a 100 MB budget evicts the least recently used one.
  auto act2 = post(c, "/api/cognition/genome-activate-skill", {{"personaId", "p"}, {"skillName", "math"}});
  ASSERT_EQ(act2->status, 200);
  EXPECT_EQ(parsed(act2)["evicted"], json::array({"code"}));
  auto unknown_skill = post(c, "/api/cognition/genome-activate-skill", {{"persona_id", "p"}, {"skill_name", "nope"}});
  EXPECT_EQ(parsed(unknown_skill)["activated"], false);
  const json state = parsed(post(c, "/api/cognition/genome-state", {{"persona_id", "p"}}));
  EXPECT_EQ(state["active_adapters"].size(), 2u);
  auto evict = post(c, "/api/cognition/genome-evict-under-pressure", {{"persona_id", "p"}, {"target_pressure", 0.5}});
  ASSERT_EQ(evict->status, 200);
  const json e = parsed(evict);
  EXPECT_DOUBLE_EQ(e["pressureBefore"].get<double>(), 0.8);
  EXPECT_LE(e["pressureAfter"].get<double>(), 0.5);
  EXPECT_EQ(e["bytesFreed"], 40u << 20);
  auto missing = post(c, "/api/cognition/genome-state", {{"persona_id", "ghost"}});
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(parsed(missing)["error"]["message"], "No cognition for ghost");
  // The pager is registered with the broker.
  const json broker = parsed(post(c, "/api/system/pressure-broker-state", json::object()));
  bool found = false;
  for (const auto& p : broker["pools"]) found = found || p["name"] == "adapters:p";
  EXPECT_TRUE(found) << broker.dump();
}

TEST(ServerE2E, MetricsExposePoolsBrokerAndPerRouteHistograms) {
  TestServer s;
  auto c = s.client();
  for (int i = 0; i < 3; ++i) post(c, "/v1/embeddings", {{"input", "metric me"}});
  c.Get("/nope");
  auto r = c.Get("/metrics");
  ASSERT_EQ(r->status, 200);
  EXPECT_NE(r->get_header_value("Content-Type").find("text/plain"), std::string::npos);
  const std::string& m = r->body;
  for (const char* needle :
       {"pagekeeper_pool_bytes{pool=\"embedding-cache\"} 1632", "pagekeeper_pool_max_bytes{pool=\"embedding-cache\"} 4194304",
        "pagekeeper_pool_entries{pool=\"embedding-cache\"} 1", "pagekeeper_pool_pinned_entries{pool=\"embedding-cache\"} 0",
        "pagekeeper_pool_hits_total{pool=\"embedding-cache\"} 2", "pagekeeper_pool_misses_total{pool=\"embedding-cache\"} 1",
        "pagekeeper_pool_evictions_total{pool=\"embedding-cache\"} 0", "pagekeeper_pool_pressure{pool=\"embedding-cache\"}",
        "pagekeeper_broker_tier 0", "pagekeeper_broker_tier_info{tier=\"normal\"} 1",
        "pagekeeper_broker_effective_passes_total 0", "pagekeeper_pool_own_pressure{pool=\"embedding-cache\"} 0",
        "pagekeeper_pool_shed_bytes_total{pool=\"embedding-cache\"} 0", "pagekeeper_broker_alerts_suppressed_total 0",
        "# TYPE pagekeeper_pool_miss_ratio_estimate gauge",
        "pagekeeper_pool_ghost_hits_total{pool=\"embedding-cache\"} 0",
        // One vector: the first 64 KiB block of the 384-dimension storage (vectors alive may
        // still count a response's copy, so only the family is checked).
        "pagekeeper_embedding_storage_bytes{dimensions=\"384\"} 65536",
        "# TYPE pagekeeper_embedding_storage_vectors gauge",
        "pagekeeper_http_requests_total{route=\"/v1/embeddings\",code=\"200\"} 3",
        "pagekeeper_http_requests_total{route=\"/ (dashboard)\",code=\"404\"} 1",
        "pagekeeper_http_request_duration_seconds_bucket{route=\"/v1/embeddings\",le=\"+Inf\"} 3",
        "pagekeeper_http_request_duration_seconds_count{route=\"/v1/embeddings\"} 3",
        "# TYPE pagekeeper_http_request_duration_seconds histogram"})
    EXPECT_NE(m.find(needle), std::string::npos) << needle << "\n" << m;
}

TEST(ServerE2E, DashboardIsServedFromTheBinary) {
  TestServer s;
  auto c = s.client();
  auto index = c.Get("/");
  ASSERT_EQ(index->status, 200);
  EXPECT_NE(index->get_header_value("Content-Type").find("text/html"), std::string::npos);
  EXPECT_NE(index->body.find("chart-requests"), std::string::npos);
  auto js = c.Get("/app.js");
  ASSERT_EQ(js->status, 200);
  EXPECT_NE(js->get_header_value("Content-Type").find("javascript"), std::string::npos);
  EXPECT_EQ(c.Get("/style.css")->status, 200);
  // The chart library, fetched at setup and embedded under /vendor/.
  auto uplot = c.Get("/vendor/uPlot.iife.min.js");
  ASSERT_EQ(uplot->status, 200) << "uPlot is not embedded: run scripts/fetch-node-deps.sh and rebuild";
  EXPECT_NE(uplot->body.find("uPlot"), std::string::npos);
  EXPECT_EQ(c.Get("/openapi.json")->status, 200);
  EXPECT_EQ(c.Get("/missing.js")->status, 404);
}

TEST(ServerE2E, LimitsAreRefusedNamingTheLimit) {
  ServerConfig config = small_config();
  config.limits.max_body_bytes = 4096;
  config.limits.max_texts_per_request = 4;
  config.limits.max_text_bytes = 100;
  TestServer s(config);
  auto c = s.client();
  auto body = c.Post("/v1/embeddings", json{{"input", std::string(5000, 'a')}}.dump(), "application/json");
  EXPECT_EQ(body->status, 413);
  EXPECT_NE(parsed(body)["error"]["message"].get<std::string>().find("limits.max_body_bytes"), std::string::npos);
  auto texts = post(c, "/v1/embeddings", {{"input", {"a", "b", "c", "d", "e"}}});
  EXPECT_EQ(texts->status, 400);
  EXPECT_NE(parsed(texts)["error"]["message"].get<std::string>().find("limits.max_texts_per_request is 4"),
            std::string::npos);
  auto bytes = post(c, "/api/embedding/generate", {{"texts", {std::string(101, 'x')}}});
  EXPECT_EQ(bytes->status, 400);
  EXPECT_NE(parsed(bytes)["error"]["message"].get<std::string>().find("limits.max_text_bytes is 100"),
            std::string::npos);
  EXPECT_EQ(post(c, "/v1/embeddings", {{"input", {"a", "b", "c", "d"}}})->status, 200);
}

// A working set that fits the cache (2,390 texts, ~93% of 4 MiB) is all hits in every round
// after the first while the broker ticks: a full cache is not memory pressure.
TEST(ServerE2E, AFittingWorkingSetIsAllHitsEveryRoundWithTheBrokerTicking) {
  TestServer s;
  auto c = s.client();
  const auto cache_hits = [&] {
    const json state = parsed(post(c, "/api/system/pressure-broker-state", json::object()));
    for (const auto& p : state["pools"]) {
      if (p["name"] == "embedding-cache") return p["stats"]["hitCount"].get<std::uint64_t>();
    }
    ADD_FAILURE() << "no embedding-cache pool in " << state.dump();
    return std::uint64_t{0};
  };
  const auto passes = [&] {
    return parsed(post(c, "/api/system/pressure-broker-state", json::object()))["passesTotal"]
        .get<std::uint64_t>();
  };
  constexpr int kTexts = 2390;
  const auto round = [&] {
    for (int begin = 0; begin < kTexts; begin += 800) {
      json texts = json::array();
      for (int i = begin; i < std::min(begin + 800, kTexts); ++i) texts.push_back("working set " + std::to_string(i));
      ASSERT_EQ(post(c, "/v1/embeddings", {{"input", texts}})->status, 200);
    }
  };
  round();
  for (int r = 2; r <= 3; ++r) {
    const auto before = passes();
    test_support::eventually([&] { return passes() >= before + 2; }, std::chrono::milliseconds(10));
    ASSERT_GE(passes(), before + 2) << "the broker is not ticking";
    const auto hits = cache_hits();
    round();
    EXPECT_EQ(cache_hits() - hits, static_cast<std::uint64_t>(kTexts)) << "round " << r;
  }
  const json alerts = parsed(post(c, "/api/system/pressure-alerts", json::object()));
  EXPECT_TRUE(alerts["alerts"].empty()) << alerts.dump();
  const json state = parsed(post(c, "/api/system/pressure-broker-state", json::object()));
  EXPECT_EQ(state["evictionsFired"].get<int>(), 0);
  EXPECT_EQ(state["globalTier"], "normal");
}

// The same cache cycled through 1.3 times what it holds: the texts it evicted come back, the
// metric counts the re-loads and one thrashing alert says how much more budget would help.
TEST(ServerE2E, AWorkingSetPastTheBudgetCountsGhostHitsAndAlertsThrashing) {
  TestServer s;
  auto c = s.client();
  constexpr int kTexts = 3341;  // 1.3 x the 2,570 vectors of 1,632 bytes in 4 MiB
  for (int r = 0; r < 3; ++r) {
    for (int begin = 0; begin < kTexts; begin += 800) {
      json texts = json::array();
      for (int i = begin; i < std::min(begin + 800, kTexts); ++i) texts.push_back("cycled " + std::to_string(i));
      ASSERT_EQ(post(c, "/v1/embeddings", {{"input", texts}})->status, 200);
    }
  }
  const auto thrashing_alerts = [&] {
    std::vector<json> found;
    const json answer = parsed(post(c, "/api/system/pressure-alerts", json::object()));
    for (const auto& a : answer["alerts"]) {
      if (a["cause"] == "thrashing" && !a["cleared"].get<bool>()) found.push_back(a);
    }
    return found;
  };
  test_support::eventually([&] { return !thrashing_alerts().empty(); }, std::chrono::milliseconds(10));
  const auto alerts = thrashing_alerts();
  ASSERT_FALSE(alerts.empty());  // then again after 2, 4, 8 ... passes while it holds
  EXPECT_EQ(alerts[0]["occurrences"], 1);
  EXPECT_EQ(alerts[0]["tierName"], "embedding-cache");
  EXPECT_GT(alerts[0]["budgetWantedBytes"].get<std::uint64_t>(), 0u);
  const std::string metrics = c.Get("/metrics")->body;
  const std::string needle = "pagekeeper_pool_ghost_hits_total{pool=\"embedding-cache\"} ";
  const auto at = metrics.find(needle);
  ASSERT_NE(at, std::string::npos) << metrics;
  EXPECT_GT(std::stod(metrics.substr(at + needle.size())), 1000.0);
}

TEST(ServerE2E, EmbedderFailureIs5xxAndCachesNothing) {
  Backend broken(std::chrono::milliseconds(0), /*fail=*/true);
  auto service = service_with({broken.embedder("broken")});
  TestServer s(small_config(), {service, nullptr, nullptr});
  auto c = s.client();
  auto r = post(c, "/v1/embeddings", {{"input", {"will fail", "also fails"}}, {"model", "broken"}});
  ASSERT_TRUE(r);
  EXPECT_GE(r->status, 500);
  EXPECT_LT(r->status, 600);
  const std::string message = parsed(r)["error"]["message"];
  EXPECT_NE(message.find("embedding failed, nothing was cached"), std::string::npos) << message;
  EXPECT_NE(message.find("500"), std::string::npos) << message;
  EXPECT_EQ(service->stats().entry_count, 0u);
  EXPECT_FALSE(service->contains("will fail", "broken"));
  EXPECT_EQ(broken.calls(), 1);
  // A retry goes to the embedder again (no failure was cached).
  post(c, "/v1/embeddings", {{"input", "will fail"}, {"model", "broken"}});
  EXPECT_EQ(broken.calls(), 2);
  // The server keeps serving other models.
  EXPECT_EQ(post(c, "/v1/embeddings", {{"input", "fine"}})->status, 200);
}

TEST(ServerE2E, GracefulStopFinishesTheRequestInFlight) {
  Backend slow(std::chrono::milliseconds(800), /*fail=*/false);
  auto service = service_with({slow.embedder("slow")});
  TestServer s(small_config(), {service, nullptr, nullptr});
  const int port = s.port();
  auto in_flight = std::async(std::launch::async, [port] {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(10, 0);
    return c.Post("/v1/embeddings", json{{"input", "slow text"}, {"model", "slow"}}.dump(), "application/json");
  });
  // Wait until the backend has the request, then stop.
  test_support::eventually([&] { return slow.calls() > 0; });
  ASSERT_EQ(slow.calls(), 1);
  s.daemon->stop();
  // Read at once, not timed: a loaded machine may delay this thread past any fixed figure.
  const int answered_before_stop_returned = slow.past_delay();
  auto r = in_flight.get();
  ASSERT_TRUE(r) << "the request in flight was cut off";
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body)["data"][0]["embedding"].size(), 384u);
  EXPECT_EQ(answered_before_stop_returned, 1) << "stop() returned before the request in flight finished";
  EXPECT_FALSE(s.daemon->running());
  EXPECT_FALSE(s.daemon->broker().running());
  // Nothing listens any more.
  httplib::Client after("127.0.0.1", port);
  after.set_connection_timeout(1, 0);
  EXPECT_FALSE(after.Get("/healthz"));
  s.daemon->stop();  // idempotent
}

TEST(ServerE2E, ConfigFileAndValidation) {
  const ServerConfig c = parse_server_config(
      "[server]\nport = 0\ntoken = \"t\"\n[limits]\nmax_texts_per_request = 7\n[embedding]\nbudget_mb = 3\n"
      "[broker]\ntick_ms = 250\nhost_memory = false\nmemory_budget_mb = 64\nrebalance_hysteresis = 0.05\n",
      "test.toml");
  EXPECT_EQ(c.port, 0);
  EXPECT_EQ(c.token, "t");
  EXPECT_EQ(c.limits.max_texts_per_request, 7u);
  EXPECT_EQ(c.embedding_budget_bytes, 3u << 20);
  EXPECT_EQ(c.broker.tick_interval, std::chrono::milliseconds(250));
  EXPECT_EQ(c.broker.memory_budget_bytes, std::uint64_t{64} << 20);
  EXPECT_DOUBLE_EQ(c.broker.rebalance_hysteresis, 0.05);
  EXPECT_FALSE(c.host_memory);
  EXPECT_EQ(c.host, "127.0.0.1");
  const auto message = [](const char* text) { return test_support::config_error(text); };
  EXPECT_NE(message("[server]\nprot = 1\n").find("unknown key 'server.prot'"), std::string::npos);
  EXPECT_NE(message("[server]\nport = 70000\n").find("server.port"), std::string::npos);
  EXPECT_NE(message("[server]\nport = \"x\"\n").find("must be an integer"), std::string::npos);
  EXPECT_NE(message("[server\n").find("bad.toml:1"), std::string::npos);
  EXPECT_NE(message("[broker]\nact_above = 0.1\n").find("broker"), std::string::npos);
  EXPECT_NE(message("[broker]\nact_above = 0.7\n").find("act_above"), std::string::npos);
  EXPECT_NE(message("[broker]\nrebalance_hysteresis = 1.5\n").find("rebalance_hysteresis"), std::string::npos);
  EXPECT_NE(message("[nope]\n").find("unknown table"), std::string::npos);
  EXPECT_NE(message("[[embedding.models]]\nname = \"slow\"\nbackend = \"lexical\"\ncalls_per_second = -1\n")
                .find("calls_per_second"),
            std::string::npos);
}

// A model with calls_per_second embeds through a RateLimitedEmbedder (callers queue).
TEST(ServerE2E, AModelWithACallRateIsRateLimited) {
  ServerConfig config = small_config();
  config = parse_server_config(
      "[[embedding.models]]\nname = \"slow\"\nbackend = \"lexical\"\ncalls_per_second = 1000\n", "test.toml",
      config);
  ASSERT_EQ(config.models.size(), 1u);
  EXPECT_DOUBLE_EQ(config.models[0].calls_per_second, 1000.0);
  TestServer s(config);
  const auto embedder = s.daemon->embeddings().models().embedder("slow");
  const auto* limited = dynamic_cast<const RateLimitedEmbedder*>(embedder.get());
  ASSERT_NE(limited, nullptr);
  EXPECT_DOUBLE_EQ(limited->calls_per_second(), 1000.0);
  EXPECT_EQ(dynamic_cast<const RateLimitedEmbedder*>(s.daemon->embeddings().models().embedder("lexical").get()),
            nullptr);
  auto c = s.client();
  EXPECT_EQ(post(c, "/v1/embeddings", {{"input", {"one", "two"}}, {"model", "slow"}})->status, 200);
}

TEST(ServerE2E, BindFailureIsAServerError) {
  TestServer first;
  ServerConfig c = small_config();
  c.port = first.port();
  Daemon second(c);
  EXPECT_THROW(second.start(), ServerError);
}

}  // namespace
}  // namespace pagekeeper::test
