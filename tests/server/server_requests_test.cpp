// Unit tests of pagekeeperd's request parsers and response encodings.

#include <gtest/gtest.h>

#include "server/metrics.hpp"
#include "server/requests.hpp"
#include "server/encoding.hpp"

namespace pagekeeper {
namespace {

int status_of(const std::function<void()>& f, std::string* message = nullptr) {
  try {
    f();
  } catch (const RequestError& e) {
    if (message) *message = e.what();
    return e.status;
  }
  return 0;
}

TEST(ServerRequests, EmbeddingsAcceptsStringOrArrayAndOptions) {
  ServerLimits limits;
  auto one = parse_embeddings_request(R"({"input":"hi","model":"m","encoding_format":"base64","dimensions":3})", limits);
  EXPECT_EQ(one.inputs, std::vector<std::string>{"hi"});
  EXPECT_EQ(one.model, "m");
  EXPECT_EQ(one.encoding_format, EncodingFormat::kBase64);
  EXPECT_EQ(one.dimensions, 3);
  auto many = parse_embeddings_request(R"({"input":["a","b"],"user":"ignored"})", limits);
  EXPECT_EQ(many.inputs.size(), 2u);
  EXPECT_TRUE(many.model.empty());
  EXPECT_EQ(many.encoding_format, EncodingFormat::kFloat);
  EXPECT_FALSE(many.dimensions);
}

TEST(ServerRequests, RefusalsNameTheProblem) {
  ServerLimits limits;
  limits.max_texts_per_request = 2;
  limits.max_text_bytes = 5;
  std::string m;
  EXPECT_EQ(status_of([&] { parse_embeddings_request(R"({"input":["a","b","c"]})", limits); }, &m), 400);
  EXPECT_NE(m.find("limits.max_texts_per_request is 2"), std::string::npos) << m;
  EXPECT_EQ(status_of([&] { parse_embeddings_request(R"({"input":"123456"})", limits); }, &m), 400);
  EXPECT_NE(m.find("limits.max_text_bytes is 5"), std::string::npos) << m;
  EXPECT_EQ(status_of([&] { parse_embeddings_request(R"({"input":[[1]]})", limits); }, &m), 400);
  EXPECT_NE(m.find("token-array"), std::string::npos);
  EXPECT_EQ(status_of([&] { parse_generate_request(R"({"texts":[]})", limits); }, &m), 400);
  EXPECT_EQ(m, "No texts provided");
  EXPECT_EQ(status_of([&] { parse_command_params("[]"); }), 400);
  EXPECT_TRUE(parse_command_params("").is_object());
  EXPECT_EQ(status_of([&] { parse_command_params(std::string(40, '[')); }, &m), 400);
  EXPECT_NE(m.find("nested deeper"), std::string::npos);
  // Brackets inside strings do not count as nesting.
  EXPECT_EQ(parse_command_params(R"({"s":")" + std::string(100, '[') + "\"}")["s"].get<std::string>().size(), 100u);
}

TEST(ServerRequests, NumbersAreRangeChecked) {
  const auto p = nlohmann::json::parse(R"({"target_pressure":0.5,"targetPressure":9})");
  EXPECT_EQ(optional_number(p, "target_pressure", "targetPressure", 0, 1), 0.5);
  const auto camel = nlohmann::json::parse(R"({"targetPressure":2})");
  std::string m;
  EXPECT_EQ(status_of([&] { optional_number(camel, "target_pressure", "targetPressure", 0, 1); }, &m), 400);
  EXPECT_NE(m.find("target_pressure = 2 is not in [0.0, 1.0]"), std::string::npos) << m;
  EXPECT_FALSE(optional_number(nlohmann::json::object(), "x", "", 0, 1));
}

TEST(ServerEncoding, Base64AndFloatsRoundTrip) {
  std::string out;
  server::append_base64(out, "Man");
  server::append_base64(out, "Ma");
  server::append_base64(out, "M");
  EXPECT_EQ(out, "TWFuTWE=TQ==");
  const std::vector<float> v = {0.1f, -2.0f, 3.4028235e38f, 1e-45f};
  std::string json_text;
  server::append_json_floats(json_text, v);
  EXPECT_EQ(nlohmann::json::parse(json_text).get<std::vector<float>>(), v);
  std::string s;
  server::append_json_string(s, "a\"b\\\n\x01");
  EXPECT_EQ(nlohmann::json::parse(s).get<std::string>(), "a\"b\\\n\x01");
}

TEST(ServerMetrics, PrometheusHistogramIsCumulative) {
  HttpMetrics m;
  const auto r = m.add_route("/x");
  m.observe(r, 200, 0.0002);
  m.observe(r, 200, 0.003);
  m.observe(r, 503, 20.0);
  PrometheusWriter w;
  m.write(w);
  const std::string t = w.str();
  EXPECT_NE(t.find("pagekeeper_http_requests_total{route=\"/x\",code=\"200\"} 2"), std::string::npos) << t;
  EXPECT_NE(t.find("pagekeeper_http_requests_total{route=\"/x\",code=\"503\"} 1"), std::string::npos);
  EXPECT_NE(t.find("pagekeeper_http_request_duration_seconds_bucket{route=\"/x\",le=\"0.00025\"} 1"), std::string::npos) << t;
  EXPECT_NE(t.find("pagekeeper_http_request_duration_seconds_bucket{route=\"/x\",le=\"0.005\"} 2"), std::string::npos);
  EXPECT_NE(t.find("pagekeeper_http_request_duration_seconds_bucket{route=\"/x\",le=\"10\"} 2"), std::string::npos);
  EXPECT_NE(t.find("pagekeeper_http_request_duration_seconds_bucket{route=\"/x\",le=\"+Inf\"} 3"), std::string::npos);
  EXPECT_EQ(PrometheusWriter::escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

}  // namespace
}  // namespace pagekeeper
