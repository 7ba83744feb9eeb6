// Unit tests of pagekeeperd's request parsers and response encodings.

#include <array>
#include <bit>
#include <charconv>
#include <cmath>
#include <limits>
#include <optional>

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

// Both readers of an embeddings body give the same request, or the same refusal.
void expect_same_answer(std::string_view body, const ServerLimits& limits) {
  std::optional<EmbeddingsRequest> plain;
  int plain_status = 0;
  std::string plain_message;
  plain_status = status_of([&] { plain = parse_embeddings_request(body, limits); }, &plain_message);
  std::optional<EmbeddingsRequest> full;
  std::string full_message;
  const int full_status =
      status_of([&] { full = parse_embeddings_request_json(body, limits); }, &full_message);
  ASSERT_EQ(plain_status, full_status) << body;
  EXPECT_EQ(plain_message, full_message) << body;
  ASSERT_EQ(plain.has_value(), full.has_value()) << body;
  if (!plain) return;
  EXPECT_EQ(plain->inputs, full->inputs) << body;
  EXPECT_EQ(plain->model, full->model) << body;
  EXPECT_EQ(plain->encoding_format, full->encoding_format) << body;
  EXPECT_EQ(plain->dimensions, full->dimensions) << body;
}

TEST(ServerRequests, PlainEmbeddingsBodiesAreReadWithoutJsonDocument) {
  ServerLimits limits;
  limits.max_texts_per_request = 3;
  limits.max_text_bytes = 8;
  // What the benchmark, curl users and the OpenAI clients send: read by the plain reader.
  for (std::string_view body :
       {R"({"input":"one text","model":"lexical","encoding_format":"float"})",
        R"( { "input" : [ "a" , "b c" ] , "model" : "m", "encoding_format":"base64", "user":"u" } )",
        "{\n\t\"input\": \"x\"\r\n}", R"({"user":["ignored"],"input":["a","b","c"]})"}) {
    SCOPED_TRACE(body);
    EXPECT_TRUE(parse_plain_embeddings_request(body, limits).has_value());
    expect_same_answer(body, limits);
  }
  // Everything else goes to the full parser, which words the refusal or reads it.
  for (std::string_view body :
       {R"({})", R"({"input":""})", R"({"input":"123456789"})", R"({"input":[]})",
        R"({"input":["a","b","c","d"]})", R"({"input":["a",""]})", R"({"input":"a","model":""})",
        R"({"input":"a","encoding_format":"int8"})", R"({"input":"a","dimensions":"3"})",
        R"({"input":"a","dimensions":3})", R"({"input":"a","input":"b"})",
        R"({"input":"a","model":"m","model":"n"})", R"({"input":"a\u0041"})", R"({"input":"\u00e9t\u00e9"})",
        "{\"input\":\"\xc3\xa9t\xc3\xa9\"}", "{\"input\":\"\xff\"}", R"({"input":"a",})",
        R"({"input":"a"} x)", R"({"input":"a")", R"({"input":null})", R"({"input":"a","model":null})",
        R"({"input":[1,2]})", R"({"input":"a","model":["m"]})", R"({"input":"a","encoding_format":["float"]})",
        R"({"input":"a","user":{"id":1}})", R"(["input","a"])", R"("input")", "", R"({"input":"a"}})",
        R"({'input':'a'})", "{\"input\":\"a\x7f\"}", "\xef\xbb\xbf{\"input\":\"a\"}"}) {
    SCOPED_TRACE(body);
    EXPECT_FALSE(parse_plain_embeddings_request(body, limits).has_value());
    expect_same_answer(body, limits);
  }
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

TEST(ServerEncoding, FloatsAreEachValuesShortestForm) {
  // Zeros, repeated values (remembered per call), values whose remembered slots collide, and
  // the extremes: each must read exactly as std::to_chars writes it alone.
  std::vector<float> v = {0.0f, -0.0f, 0.059052784f, -0.059052784f, 0.0f, 0.059052784f, 1.0f, -1.0f,
                          std::numeric_limits<float>::min(), std::numeric_limits<float>::denorm_min(),
                          -std::numeric_limits<float>::max(), 1e-45f, -1.1754944e-38f, 0.1f, 0.1f};
  for (int i = 0; i < 200; ++i) v.push_back(static_cast<float>(i % 37) / 7.0f - 2.5f);
  for (int i = 0; i < 100; ++i) v.push_back(std::bit_cast<float>(0x3f000000u + static_cast<std::uint32_t>(i) * 0x10000001u));
  v.push_back(std::numeric_limits<float>::quiet_NaN());  // written as 0
  std::string expected = "[";
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i != 0) expected += ',';
    std::array<char, 32> buf{};
    const float value = std::isfinite(v[i]) ? v[i] : 0.0f;
    const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), value);
    ASSERT_EQ(ec, std::errc());
    expected.append(buf.data(), end);
  }
  expected += ']';
  std::string out = "prefix:";
  server::append_json_floats(out, v);
  EXPECT_EQ(out, "prefix:" + expected);
  out.clear();
  server::append_json_floats(out, {});
  EXPECT_EQ(out, "[]");
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
