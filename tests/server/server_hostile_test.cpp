// The HTTP engine against hostile and careless clients, on raw sockets: the attacks that
// stopped or bloated the thread-per-connection server (slowloris, idle keep-alive
// connections, bodies over the limit through chunked, length-less and compressed framings, a
// Range with thousands of parts, megabytes of headers, pipelined requests, two
// Content-Lengths) and further hostile framings. Each must be refused or answered correctly,
// the server must keep serving others meanwhile, and its memory must stay within the body
// limit plus a fixed overhead.

#include <gtest/gtest.h>

#include <sys/resource.h>

#include <atomic>
#include <fstream>
#include <latch>
#include <set>

#include "server_test_util.hpp"

namespace pagekeeper::test {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// A connected loopback socket; closed on destruction.
class Connection {
 public:
  explicit Connection(int port) : fd_(connect_loopback(port)) {}
  ~Connection() {
    if (fd_ >= 0) ::close(fd_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  Connection(Connection&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}

  bool ok() const { return fd_ >= 0; }
  // Sends all of `bytes`; false when the peer closed or reset the connection first.
  bool send(std::string_view bytes) { return send_all(fd_, bytes); }
  void half_close() { ::shutdown(fd_, SHUT_WR); }
  // Reads until `done(received)` or the peer closes or `timeout` passes.
  std::string read(std::chrono::milliseconds timeout, const std::function<bool(const std::string&)>& done = {}) {
    const auto deadline = Clock::now() + timeout;
    char buf[65536];
    while (!(done && done(in_))) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) break;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) break;
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) {
        closed_ = true;
        break;
      }
      in_.append(buf, static_cast<std::size_t>(n));
    }
    return in_;
  }
  // Whether the server closed the connection (EOF or reset) within `timeout`.
  bool closed_within(std::chrono::milliseconds timeout) {
    read(timeout);
    return closed_;
  }
  std::string& received() { return in_; }

 private:
  int fd_ = -1;
  std::string in_;
  bool closed_ = false;
};

// Complete responses at the start of `bytes` (each with its Content-Length body).
std::vector<std::string> split_responses(const std::string& bytes) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    const auto end = bytes.find("\r\n\r\n", pos);
    if (end == std::string::npos) break;
    const std::string head = bytes.substr(pos, end - pos);
    std::size_t length = 0;
    for (const char* name : {"Content-Length: ", "content-length: "})
      if (auto at = head.find(name); at != std::string::npos) length = std::strtoull(head.c_str() + at + 16, nullptr, 10);
    if (end + 4 + length > bytes.size()) break;
    out.push_back(bytes.substr(pos, end + 4 + length - pos));
    pos = end + 4 + length;
  }
  return out;
}

std::function<bool(const std::string&)> responses(std::size_t n) {
  return [n](const std::string& s) { return split_responses(s).size() >= n; };
}

std::string header_of(const std::string& response, const std::string& name) {
  const auto end = response.find("\r\n\r\n");
  const std::string head = response.substr(0, end);
  std::string lower_head = head;
  std::string lower_name = name + ": ";
  for (char& c : lower_head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (char& c : lower_name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const auto at = lower_head.find("\r\n" + lower_name);
  if (at == std::string::npos) return "";
  const auto start = at + 2 + lower_name.size();
  return head.substr(start, head.find("\r\n", start) - start);
}

std::uint64_t peak_rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  return 0;
}

std::string keep_alive_get(const std::string& path) { return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"; }

std::string embeddings_request(const std::string& input, const std::string& connection = "keep-alive") {
  const std::string body = json{{"input", input}}.dump();
  return "POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: " + connection +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// The server's header deadline. A client that a slow or idle connection held up would wait
// for it, so "quickly" means under half of it; long enough that a loaded machine running a
// sanitizer does not reach that by accident (an answer takes about a millisecond).
constexpr std::chrono::milliseconds kReadTimeout{3000};
// The limit of reads that end at their answer or at the server closing the connection: a
// passing test does not wait it out.
constexpr std::chrono::milliseconds kAnswerWait{30000};
// The limit for a connection the server must close: far below its idle timeout (60 s), which
// would close it anyway.
constexpr std::chrono::milliseconds kCloseWait{10000};

class Hostile : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = small_config();
    config_.read_timeout = kReadTimeout;
    server_ = std::make_unique<TestServer>(config_);
  }
  int port() const { return server_->port(); }
  // A fresh client gets /healthz quickly.
  void expect_served_quickly() {
    const auto t0 = Clock::now();
    Connection c(port());
    ASSERT_TRUE(c.send(keep_alive_get("/healthz")));
    const auto got = split_responses(c.read(kAnswerWait, responses(1)));
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(status_of(got[0]), 200);
    EXPECT_LT(Clock::now() - t0, kReadTimeout / 2);
  }
  ServerConfig config_;
  std::unique_ptr<TestServer> server_;
};

// ---- the attacks that worked on the old server ----

TEST_F(Hostile, SlowlorisConnectionsNeitherBlockOthersNorLastPastTheReadTimeout) {
  std::vector<Connection> slow;
  for (int i = 0; i < 16; ++i) {
    slow.emplace_back(port());
    ASSERT_TRUE(slow.back().send("POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Trickle: "));
  }
  expect_served_quickly();
  // Keep trickling: the header deadline counts from the request's first byte, so bytes that
  // keep coming do not extend it.
  const auto t0 = Clock::now();
  for (int round = 0; round < 3; ++round)
    for (auto& c : slow) c.send("a");
  for (auto& c : slow) {
    const std::string got = c.read(kAnswerWait);
    EXPECT_EQ(status_of(got), 408) << got;
    EXPECT_NE(body_of(got).find("read_timeout_ms"), std::string::npos) << got;
  }
  EXPECT_LT(Clock::now() - t0, 2 * kReadTimeout);
}

TEST_F(Hostile, IdleKeepAliveConnectionsDoNotDelayTheNextClient) {
  std::vector<Connection> idle;
  for (int i = 0; i < 200; ++i) {
    idle.emplace_back(port());
    ASSERT_TRUE(idle.back().send(keep_alive_get("/healthz")));
    ASSERT_EQ(split_responses(idle.back().read(kAnswerWait, responses(1))).size(), 1u);
  }
  for (int i = 0; i < 5; ++i) expect_served_quickly();
}

TEST_F(Hostile, ChunkedBodyOverTheLimitIs413AndIsNotRead) {
  const std::uint64_t rss_before = peak_rss_bytes();
  Connection c(port());
  ASSERT_TRUE(c.send("POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n"));
  const std::string chunk = "10000\r\n" + std::string(0x10000, 'a') + "\r\n";
  std::size_t sent = 0;
  // 64 MiB offered; the server stops reading past the 256 KiB limit, answers and closes.
  while (sent < (64u << 20) && c.send(chunk)) sent += 0x10000;
  const std::string got = c.read(kAnswerWait, responses(1));
  EXPECT_EQ(status_of(got), 413) << got.substr(0, 300);
  EXPECT_LT(sent, 64u << 20) << "the server read the whole oversized body";
  EXPECT_LT(peak_rss_bytes() - rss_before, config_.limits.max_body_bytes + (32u << 20));
}

TEST_F(Hostile, BodyWithoutLengthAndHalfCloseIsNotABody) {
  // No Content-Length, no Transfer-Encoding: the request has no body; what follows is read
  // as the next request and refused. Nothing is buffered past the header limit.
  const std::uint64_t rss_before = peak_rss_bytes();
  Connection c(port());
  ASSERT_TRUE(c.send("POST /api/embedding/cache/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  c.send(std::string(4u << 20, 'x'));
  c.half_close();
  const auto got = split_responses(c.read(kAnswerWait, responses(2)));
  ASSERT_GE(got.size(), 1u);
  EXPECT_EQ(status_of(got[0]), 200) << got[0];  // a command without parameters, empty body
  if (got.size() > 1) {
    EXPECT_GE(status_of(got[1]), 400);
    EXPECT_LT(status_of(got[1]), 500);
  }
  EXPECT_LT(peak_rss_bytes() - rss_before, config_.limits.max_body_bytes + (32u << 20));
}

TEST_F(Hostile, CompressedBodiesAreRefusedWith415) {
  for (const char* coding : {"gzip", "deflate", "br", "x-gzip, identity"}) {
    const std::string body = "\x1f\x8b\x08\x00\x00\x00\x00\x00";
    const std::string r = raw_exchange(port(), http_request("POST", "/v1/embeddings", body, "application/json",
                                                            std::string("Content-Encoding: ") + coding + "\r\n"));
    EXPECT_EQ(status_of(r), 415) << coding << ": " << r;
    EXPECT_NE(body_of(r).find("Content-Encoding"), std::string::npos) << r;
  }
  // identity is no encoding at all.
  const std::string r = raw_exchange(port(), http_request("POST", "/v1/embeddings", R"({"input":"x"})",
                                                          "application/json", "Content-Encoding: identity\r\n"));
  EXPECT_EQ(status_of(r), 200) << r;
}

TEST_F(Hostile, RangeHeaderIsIgnored) {
  std::string ranges = "bytes=";
  for (int i = 0; i < 2700; ++i) ranges += (i ? "," : "") + std::to_string(i) + "-" + std::to_string(i + 1000);
  config_.limits.max_header_bytes = 64u << 10;
  server_ = std::make_unique<TestServer>(config_);
  const std::string plain = raw_exchange(port(), http_request("GET", "/", "", ""));
  const std::string ranged = raw_exchange(port(), http_request("GET", "/", "", "", "Range: " + ranges + "\r\n"));
  EXPECT_EQ(status_of(ranged), 200) << ranged.substr(0, 200);
  EXPECT_EQ(body_of(ranged), body_of(plain));
  EXPECT_EQ(header_of(ranged, "Content-Range"), "");
  const std::string api = raw_exchange(port(), http_request("POST", "/v1/embeddings", R"({"input":"x"})",
                                                            "application/json", "Range: bytes=0-0,1-1,2-2\r\n"));
  EXPECT_EQ(status_of(api), 200);
  EXPECT_TRUE(json::parse(body_of(api)).contains("data"));
}

TEST_F(Hostile, MegabytesOfHeadersAre431AndAreNotRead) {
  Connection c(port());
  ASSERT_TRUE(c.send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
  const std::string field = "X-Padding: " + std::string(1000, 'p') + "\r\n";
  std::size_t sent = 0;
  while (sent < (100u << 20) && c.send(field)) sent += field.size();
  const std::string got = c.read(kAnswerWait, responses(1));
  EXPECT_EQ(status_of(got), 431) << got.substr(0, 300);
  EXPECT_LT(sent, 100u << 20);
}

TEST_F(Hostile, TooManyHeaderFieldsAre431) {
  std::string extra;
  for (std::size_t i = 0; i <= config_.limits.max_header_fields; ++i) extra += "X-F" + std::to_string(i) + ": 1\r\n";
  const std::string r = raw_exchange(port(), http_request("GET", "/healthz", "", "", extra));
  EXPECT_EQ(status_of(r), 431) << r;
  EXPECT_NE(body_of(r).find("header fields"), std::string::npos);
}

TEST_F(Hostile, PipelinedRequestsAreAllAnsweredInOrder) {
  Connection c(port());
  std::string batch;
  for (int i = 0; i < 50; ++i) batch += embeddings_request("pipelined text " + std::to_string(i));
  batch += keep_alive_get("/healthz");
  ASSERT_TRUE(c.send(batch));
  const auto got = split_responses(c.read(kAnswerWait, responses(51)));
  ASSERT_EQ(got.size(), 51u);
  auto expected = [](int i) {
    return LexicalEmbedder().embed_one("pipelined text " + std::to_string(i));
  };
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(status_of(got[static_cast<std::size_t>(i)]), 200);
    const json body = json::parse(body_of(got[static_cast<std::size_t>(i)]));
    const auto v = body["data"][0]["embedding"].get<std::vector<float>>();
    EXPECT_EQ(v, expected(i)) << "answer " << i << " is not its request's";
  }
  EXPECT_NE(body_of(got[50]).find("\"status\":\"ok\""), std::string::npos);
}

TEST_F(Hostile, TwoContentLengthsAreRefused) {
  for (const char* lengths : {"Content-Length: 2\r\nContent-Length: 3\r\n", "Content-Length: 2\r\nContent-Length: 2\r\n",
                              "Content-Length: 2, 2\r\n"}) {
    const std::string r = raw_exchange(port(), std::string("POST /api/embedding/cache/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n") +
                                                   lengths + "\r\n{}{}");
    EXPECT_EQ(status_of(r), 400) << lengths << r;
  }
}

TEST_F(Hostile, ConnectionsPastTheCapGet503WithRetryAfter) {
  config_.max_connections = 8;
  server_ = std::make_unique<TestServer>(config_);
  std::vector<Connection> held;
  for (int i = 0; i < 8; ++i) {
    held.emplace_back(port());
    ASSERT_TRUE(held.back().send(keep_alive_get("/healthz")));
    ASSERT_EQ(split_responses(held.back().read(kAnswerWait, responses(1))).size(), 1u);
  }
  Connection extra(port());
  const std::string got = extra.read(kAnswerWait, responses(1));
  EXPECT_EQ(status_of(got), 503) << got;
  EXPECT_EQ(header_of(got, "Retry-After"), "1");
  EXPECT_NE(body_of(got).find("max_connections"), std::string::npos);
  held.pop_back();  // one leaves: the next is served
  std::string r;
  EXPECT_TRUE(test_support::eventually(
      [&] {
        r = raw_exchange(port(), http_request("GET", "/healthz", "", ""));
        return status_of(r) == 200;
      },
      std::chrono::milliseconds(10)))
      << r;
}

TEST_F(Hostile, StopClosesIdleConnectionsAtOnceWhileSlowClientsTrickle) {
  std::vector<Connection> idle;
  for (int i = 0; i < 20; ++i) {
    idle.emplace_back(port());
    ASSERT_TRUE(idle.back().send(keep_alive_get("/healthz")));
    ASSERT_EQ(split_responses(idle.back().read(kAnswerWait, responses(1))).size(), 1u);
  }
  std::vector<Connection> slow;
  for (int i = 0; i < 8; ++i) {
    slow.emplace_back(port());
    ASSERT_TRUE(slow.back().send("GET /healthz HTTP/1.1\r\nHo"));
  }
  // A stop that waited for the slow clients would take their read timeout.
  const auto t0 = Clock::now();
  server_->daemon->stop();
  EXPECT_LT(Clock::now() - t0, kReadTimeout / 2);
  for (auto& c : idle) EXPECT_TRUE(c.closed_within(kCloseWait));
  for (auto& c : slow) EXPECT_TRUE(c.closed_within(kReadTimeout / 2));
}

// ---- more hostile framings: each refused with a 4xx JSON error, the server unharmed ----

struct Framing {
  std::string name;
  std::string request;
  int status;
};

std::vector<Framing> framings() {
  const std::string post = "POST /api/embedding/cache/stats HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n";
  return {
      {"length_and_chunked", post + "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 400},
      {"chunked_twice", post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
      {"transfer_coding_not_chunked", post + "Transfer-Encoding: gzip\r\n\r\nxx", 400},
      {"gzip_then_chunked", post + "Transfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 400},
      {"negative_length", post + "Content-Length: -1\r\n\r\n", 400},
      {"length_with_plus", post + "Content-Length: +2\r\n\r\n{}", 400},
      {"length_overflows", post + "Content-Length: 99999999999999999999999\r\n\r\n", 400},
      {"length_over_limit_no_body", post + "Content-Length: 100000000\r\n\r\n", 413},
      {"chunk_size_overflows", post + "Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\n{}\r\n0\r\n\r\n", 400},
      {"chunk_size_negative", post + "Transfer-Encoding: chunked\r\n\r\n-2\r\n{}\r\n0\r\n\r\n", 400},
      {"chunks_over_limit", post + "Transfer-Encoding: chunked\r\n\r\n" + [] {
         std::string s;
         for (int i = 0; i < 70; ++i) s += "1000\r\n" + std::string(0x1000, ' ') + "\r\n";
         return s + "0\r\n\r\n";
       }(),
       413},
      {"header_without_colon", "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nNoColonHere\r\n\r\n", 400},
      {"space_before_colon", "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length : 0\r\n\r\n", 400},
      {"nul_in_header_value", "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a" + std::string(1, '\0') + "b\r\n\r\n",
       400},
      {"space_in_header_name", "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Name: 1\r\n\r\n", 400},
      {"bare_lf_line_endings", "GET /healthz HTTP/1.1\nHost: x\n\n", 400},
      {"http2_preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400},
      {"http09_request_line", "GET /healthz\r\n\r\n", 400},
      {"absolute_form_target", "GET http://evil.example/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400},
      {"asterisk_target", "OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400},
      {"nul_in_target", "GET /heal%00thz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400},
      {"bad_percent_escape", "GET /%zz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400},
      {"extra_spaces_in_request_line", "GET  /healthz  HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400},
      {"long_method", std::string(20000, 'G') + " /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 431},
      {"long_target", "GET /" + std::string(9000, 'a') + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 414},
      {"chunk_without_crlf", post + "Transfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n", 400},
      {"content_encoding_unknown", post + "Content-Encoding: zstd\r\nContent-Length: 2\r\n\r\n{}", 415},
      {"expect_continue_over_limit", post + "Expect: 100-continue\r\nContent-Length: 100000000\r\n\r\n", 413},
      {"control_char_in_target", "GET /heal\x01thz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400},
  };
}

TEST_F(Hostile, HostileFramingsAreRefusedWithJsonErrors) {
  const auto all = framings();
  ASSERT_GE(all.size(), 20u);
  std::set<std::string> names;
  for (const auto& f : all) {
    SCOPED_TRACE(f.name);
    EXPECT_TRUE(names.insert(f.name).second) << "duplicate case";
    Connection c(port());
    ASSERT_TRUE(c.send(f.request));
    const auto got = split_responses(c.read(kAnswerWait, responses(1)));
    ASSERT_EQ(got.size(), 1u) << c.received().substr(0, 300);
    EXPECT_EQ(status_of(got[0]), f.status) << got[0].substr(0, 400);
    json body;
    ASSERT_NO_THROW(body = json::parse(body_of(got[0]))) << got[0].substr(0, 400);
    EXPECT_EQ(body["error"]["status"], f.status);
    // A refused framing ends the connection: its remaining bytes cannot be trusted.
    EXPECT_TRUE(c.closed_within(kCloseWait));
    const std::string health = raw_exchange(port(), http_request("GET", "/healthz", "", ""));
    ASSERT_EQ(status_of(health), 200) << "after " << f.name;
  }
}

// ---- framings that are legal and must work ----

TEST_F(Hostile, ExpectContinueGetsAnInterimAnswerThenTheResult) {
  Connection c(port());
  const std::string body = R"({"input":"continue"})";
  ASSERT_TRUE(c.send("POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nExpect: "
                     "100-continue\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n"));
  const std::string interim = c.read(kAnswerWait, [](const std::string& s) {
    return s.find("\r\n\r\n") != std::string::npos;
  });
  ASSERT_EQ(interim.rfind("HTTP/1.1 100 Continue\r\n", 0), 0u) << interim;
  c.received().clear();
  ASSERT_TRUE(c.send(body));
  const auto got = split_responses(c.read(kAnswerWait, responses(1)));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(status_of(got[0]), 200);
}

TEST_F(Hostile, ChunkedBodyWithTrailerAndOneByteChunksIsRead) {
  const std::string body = R"({"input":"chunky"})";
  std::string chunked;
  for (char ch : body) chunked += std::string("1\r\n") + ch + "\r\n";
  chunked += "0\r\nX-Trailer: t\r\n\r\n";
  const std::string r = raw_exchange(port(), "POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                                             "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
                                                 chunked);
  EXPECT_EQ(status_of(r), 200) << r;
  EXPECT_EQ(json::parse(body_of(r))["data"][0]["embedding"].get<std::vector<float>>(), LexicalEmbedder().embed_one("chunky"));
}

TEST_F(Hostile, HeadAnswersHeadersWithoutBody) {
  Connection c(port());
  ASSERT_TRUE(c.send("HEAD /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + keep_alive_get("/healthz")));
  // The HEAD answer announces the GET body's length but carries none, so the second answer
  // follows its header directly.
  const std::string got = c.read(kAnswerWait, [](const std::string& s) {
    const auto first = s.find("\r\n\r\n");
    return first != std::string::npos && s.find("\"ok\"", first) != std::string::npos;
  });
  const auto first_end = got.find("\r\n\r\n");
  ASSERT_NE(first_end, std::string::npos) << got;
  EXPECT_EQ(status_of(got), 200);
  EXPECT_NE(header_of(got, "Content-Length"), "0");
  EXPECT_EQ(got.compare(first_end + 4, 9, "HTTP/1.1 "), 0) << got;
}

TEST_F(Hostile, Http10AndConnectionCloseAreHonoured) {
  for (const char* request : {"GET /healthz HTTP/1.0\r\n\r\n", "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"}) {
    Connection c(port());
    ASSERT_TRUE(c.send(request));
    EXPECT_TRUE(c.closed_within(kCloseWait));
    EXPECT_EQ(split_responses(c.received()).size(), 1u) << request;
  }
}

TEST_F(Hostile, ARefusedRequestEndsThePipeline) {
  Connection c(port());
  ASSERT_TRUE(c.send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: x\r\n\r\n" + keep_alive_get("/healthz")));
  EXPECT_TRUE(c.closed_within(kCloseWait));
  const auto got = split_responses(c.received());
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(status_of(got[0]), 400);
}

TEST_F(Hostile, EmptyBodiesAreNoParametersAndUntypedBodiesAreJson) {
  // curl -X POST (no Content-Length at all), curl -d '' (form type, empty), Content-Length: 0.
  for (const std::string& request :
       {std::string("POST /api/embedding/cache/stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
        http_request("POST", "/api/embedding/cache/stats", "", "application/x-www-form-urlencoded"),
        http_request("POST", "/api/embedding/cache/stats", "", "")}) {
    const std::string r = raw_exchange(port(), request);
    EXPECT_EQ(status_of(r), 200) << request << r;
    EXPECT_TRUE(json::parse(body_of(r)).contains("hits")) << r;
  }
  const std::string untyped = raw_exchange(port(), http_request("POST", "/v1/embeddings", R"({"input":"x"})", ""));
  EXPECT_EQ(status_of(untyped), 200) << untyped;
  const std::string typed_wrong =
      raw_exchange(port(), http_request("POST", "/v1/embeddings", R"({"input":"x"})", "text/plain"));
  EXPECT_EQ(status_of(typed_wrong), 415) << typed_wrong;
}

}  // namespace
}  // namespace pagekeeper::test
