// The bad-input suite: distinct malformed requests, sent as raw bytes on fresh connections.
// Each must get a 4xx status with a JSON error body that says something, and the server must
// keep serving (checked with /healthz after every case).

#include <gtest/gtest.h>

#include "server_test_util.hpp"

namespace pagekeeper::test {
namespace {

using nlohmann::json;

struct BadCase {
  std::string name;
  std::string request;  // raw bytes
  int expected_status;  // exact status expected
  std::string message_part = {};  // must appear in error.message ("" = any)
  bool half_close = false;
  int pause_after_ms = 0;
};

std::string post_json(const std::string& path, const std::string& body) {
  return http_request("POST", path, body);
}

std::vector<BadCase> cases(const ServerConfig& config) {
  const std::string emb = "/v1/embeddings";
  const std::string deep = std::string(200, '[') + std::string(200, ']');
  std::vector<BadCase> v = {
      {"not_json", post_json(emb, "hello there"), 400, "not valid JSON"},
      {"truncated_json", post_json(emb, R"({"input": "abc)"), 400, "not valid JSON"},
      {"json_array_body", post_json(emb, R"(["a"])"), 400, "must be a JSON object"},
      {"json_string_body", post_json(emb, R"("input")"), 400, "must be a JSON object"},
      {"json_null_body", post_json(emb, "null"), 400, "must be a JSON object"},
      {"empty_body", post_json(emb, ""), 400, "empty"},
      {"missing_input", post_json(emb, R"({"model":"lexical"})"), 400, "input is required"},
      {"null_input", post_json(emb, R"({"input":null})"), 400, "input is required"},
      {"number_input", post_json(emb, R"({"input":42})"), 400, "must be a string or an array"},
      {"object_input", post_json(emb, R"({"input":{"a":1}})"), 400, "must be a string or an array"},
      {"empty_array_input", post_json(emb, R"({"input":[]})"), 400, "empty array"},
      {"empty_string_input", post_json(emb, R"({"input":""})"), 400, "empty string"},
      {"empty_string_in_array", post_json(emb, R"({"input":["ok",""]})"), 400, "input[1] is an empty string"},
      {"wrong_type_in_array", post_json(emb, R"({"input":["ok",true]})"), 400, "input[1] must be a string"},
      {"token_array", post_json(emb, R"({"input":[101,102,103]})"), 400, "token-array input is not supported"},
      {"token_arrays", post_json(emb, R"({"input":[[1,2],[3]]})"), 400, "token-array input is not supported"},
      {"model_not_string", post_json(emb, R"({"input":"x","model":7})"), 400, "model must be a string"},
      {"model_empty", post_json(emb, R"({"input":"x","model":""})"), 400, "model must not be empty"},
      {"unknown_model", post_json(emb, R"({"input":"x","model":"gpt-imaginary"})"), 404, "gpt-imaginary"},
      {"bad_encoding_format", post_json(emb, R"({"input":"x","encoding_format":"int8"})"), 400, "encoding_format"},
      {"encoding_format_number", post_json(emb, R"({"input":"x","encoding_format":1})"), 400, "encoding_format"},
      {"negative_dimensions", post_json(emb, R"({"input":"x","dimensions":-5})"), 400, "positive integer"},
      {"absurd_dimensions", post_json(emb, R"({"input":"x","dimensions":99999999999999999999999})"), 400,
       "dimensions must be an integer"},
      {"number_overflow", post_json(emb, R"({"input":"x","dimensions":1e400})"), 400, "not valid JSON"},
      {"fractional_dimensions", post_json(emb, R"({"input":"x","dimensions":1.5})"), 400, "dimensions"},
      {"unsupported_dimensions", post_json(emb, R"({"input":"x","dimensions":7})"), 400, "not supported"},
      {"invalid_utf8", post_json(emb, "{\"input\":\"bad \xff\xfe bytes\"}"), 400, "UTF-8"},
      {"overlong_utf8", post_json(emb, "{\"input\":\"\xc0\xaf\"}"), 400, "UTF-8"},
      {"nul_in_body", post_json(emb, std::string("{\"input\":\"a\0b\"}", 15)), 400, "not valid JSON"},
      {"deep_nesting", post_json(emb, R"({"input":)" + deep + "}"), 400, "nested deeper"},
      {"wrong_content_type", http_request("POST", emb, R"({"input":"x"})", "text/plain"), 415, "Content-Type"},
      {"form_content_type",
       http_request("POST", emb, "input=x", "application/x-www-form-urlencoded"), 415, "Content-Type"},
      {"huge_body", post_json(emb, R"({"input":")" + std::string(config.limits.max_body_bytes + 10, 'a') + "\"}"),
       413, "limits.max_body_bytes"},
      {"too_many_texts",
       post_json(emb, [&] {
         json texts = json::array();
         for (std::size_t i = 0; i <= config.limits.max_texts_per_request; ++i) texts.push_back("t");
         return json{{"input", texts}}.dump();
       }()),
       400, "limits.max_texts_per_request"},
      {"text_too_long", post_json(emb, json{{"input", std::string(config.limits.max_text_bytes + 1, 'z')}}.dump()), 400,
       "limits.max_text_bytes"},
      {"truncated_body",
       "POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
       "{\"input\":\"abc",
       408, "did not arrive"},
      {"truncated_chunked_body",
       "POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: "
       "chunked\r\n\r\n10\r\n{\"input\":\"abc",
       408, "did not arrive"},
      {"generate_texts_not_array", post_json("/api/embedding/generate", R"({"texts":"abc"})"), 400,
       "texts must be an array"},
      {"generate_no_texts", post_json("/api/embedding/generate", R"({"texts":[]})"), 400, "No texts provided"},
      {"generate_bad_format", post_json("/api/embedding/generate?format=xml", R"({"texts":["a"]})"), 400, "format"},
      {"stats_params_array", post_json("/api/embedding/cache/stats", "[1]"), 400, "must be a JSON object"},
      {"evict_negative_target",
       post_json("/api/cognition/genome-evict-under-pressure", R"({"persona_id":"p","target_pressure":-1})"), 400,
       "target_pressure"},
      {"evict_target_wrong_type",
       post_json("/api/cognition/genome-evict-under-pressure", R"({"persona_id":"p","target_pressure":"high"})"),
       400, "must be a number"},
      {"activate_missing_skill", post_json("/api/cognition/genome-activate-skill", R"({"persona_id":"p"})"), 400,
       "skill_name is required"},
      {"activate_absurd_budget",
       post_json("/api/cognition/genome-activate-skill",
                 R"({"persona_id":"p","skill_name":"s","memory_budget_mb":1e300})"),
       400, "memory_budget_mb"},
      {"persona_wrong_type", post_json("/api/cognition/genome-state", R"({"persona_id":12})"), 400,
       "persona_id must be a string"},
      {"sync_adapters_not_array", post_json("/api/cognition/genome-sync", R"({"persona_id":"p","adapters":5})"), 400,
       "adapters must be an array"},
      {"sync_negative_size",
       post_json("/api/cognition/genome-sync",
                 R"({"persona_id":"p","memory_budget_mb":10,"adapters":[{"name":"a","size_mb":-3}]})"),
       400, "adapters[0]"},
      {"unknown_command", post_json("/api/embedding/teleport", "{}"), 404, "unknown command"},
      {"unknown_path", http_request("GET", "/does/not/exist", "", ""), 404, "no route"},
      {"wrong_method", http_request("GET", emb, "", ""), 405, "not allowed"},
      // Without Content-Length or Transfer-Encoding a request has no body (RFC 9112 6.3).
      {"post_without_length", "POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 400,
       "empty"},
      {"garbage_request_line", "THIS IS NOT HTTP\r\n\r\n", 400, ""},
      {"bad_content_length",
       "POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: abc\r\n\r\n{}",
       400, ""},
      {"bad_chunk_size",
       "POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: "
       "chunked\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n",
       400, ""},
      {"uri_too_long", http_request("GET", "/" + std::string(10000, 'a'), "", ""), 414, ""},
  };
  return v;
}

class BadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = small_config();
    config_.read_timeout = std::chrono::milliseconds(500);
    server_ = std::make_unique<TestServer>(config_);
  }
  ServerConfig config_;
  std::unique_ptr<TestServer> server_;
};

TEST_F(BadInput, EveryMalformedRequestGetsA4xxJsonErrorAndTheServerKeepsServing) {
  const auto all = cases(config_);
  ASSERT_GE(all.size(), 30u);
  std::set<std::string> names;
  for (const auto& c : all) {
    SCOPED_TRACE(c.name);
    EXPECT_TRUE(names.insert(c.name).second) << "duplicate case name";
    const std::string response = raw_exchange(server_->port(), c.request, 30000, c.half_close, c.pause_after_ms);
    const int status = status_of(response);
    EXPECT_EQ(status, c.expected_status) << response.substr(0, 400);
    EXPECT_GE(status, 400);
    EXPECT_LT(status, 500);
    json body;
    ASSERT_NO_THROW(body = json::parse(body_of(response))) << response.substr(0, 400);
    ASSERT_TRUE(body.contains("error")) << body.dump();
    const std::string message = body["error"]["message"];
    EXPECT_FALSE(message.empty());
    EXPECT_EQ(body["error"]["status"], status);
    if (!c.message_part.empty()) {
      EXPECT_NE(message.find(c.message_part), std::string::npos) << message;
    }
    // Still serving.
    const std::string health = raw_exchange(server_->port(), http_request("GET", "/healthz", "", ""));
    EXPECT_EQ(status_of(health), 200) << "after " << c.name;
  }
  // And the real thing still works after all of that.
  auto client = server_->client();
  auto ok = client.Post("/v1/embeddings", R"({"input":"still alive"})", "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

TEST_F(BadInput, ClientThatStallsInTheHeadersIsDisconnectedAndOthersAreServed) {
  // A stalled client is answered (4xx) or disconnected at the read timeout. What matters is
  // that it neither blocks the server nor takes it down: a health check that the stalled
  // clients held up would wait for their read timeout, so the check must answer in under half
  // of it, which a loaded machine running a sanitizer does not reach by accident.
  config_.read_timeout = std::chrono::milliseconds(3000);
  server_ = std::make_unique<TestServer>(config_);
  // The stalled clients are connected and have sent their partial headers before the check.
  std::vector<int> stalled;
  for (int i = 0; i < 4; ++i) {
    const int fd = connect_loopback(server_->port());
    ASSERT_GE(fd, 0);
    stalled.push_back(fd);
    ASSERT_TRUE(send_all(fd, "POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
  }
  const auto t0 = std::chrono::steady_clock::now();
  const std::string health = raw_exchange(server_->port(), http_request("GET", "/healthz", "", ""));
  EXPECT_EQ(status_of(health), 200);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, config_.read_timeout / 2);
  for (const int fd : stalled) {
    const std::string r = read_answer(fd, test_support::kPatience);
    EXPECT_TRUE(r.empty() || (status_of(r) >= 400 && status_of(r) < 500)) << r;
    // Then the server closes the connection (EOF), well before the idle timeout.
    char byte = 0;
    pollfd p{fd, POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 30'000), 1);
    EXPECT_LE(::recv(fd, &byte, 1, 0), 0) << "the stalled connection is still open";
    ::close(fd);
  }
}

}  // namespace
}  // namespace pagekeeper::test
