// OpenAIEmbedder against a real HTTP server (cpp-httplib) on 127.0.0.1 with an ephemeral
// port, started by each test. The server speaks the embeddings API; each test chooses how
// it answers.

#include "pagekeeper/openai_embedder.hpp"

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "support/loopback_http_server.hpp"
#include "support/patience.hpp"

namespace pagekeeper {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// The vector the test server gives `text`: distinct per text, easy to check.
std::vector<float> expected_vector(const std::string& text, std::size_t dims) {
  std::vector<float> v(dims);
  for (std::size_t d = 0; d < dims; ++d) {
    v[d] = static_cast<float>(text.size()) + static_cast<float>(d) * 0.25f +
           static_cast<float>(static_cast<unsigned char>(text.empty() ? 0 : text[0])) / 1000.0f;
  }
  return v;
}

// A well-formed answer for `request_body`, data listed in REVERSE order with their index,
// as servers are allowed to do.
json good_answer(const std::string& request_body, std::size_t dims) {
  const json request = json::parse(request_body);
  json data = json::array();
  const auto& input = request.at("input");
  for (std::size_t i = input.size(); i-- > 0;) {
    data.push_back({{"object", "embedding"},
                    {"index", i},
                    {"embedding", expected_vector(input[i].get<std::string>(), dims)}});
  }
  return {{"object", "list"}, {"data", data}, {"model", request.at("model")}};
}

class EmbeddingsServer {
 public:
  using Handler = std::function<void(int call, const httplib::Request&, httplib::Response&)>;

  explicit EmbeddingsServer(Handler handler, std::string path = "/v1/embeddings")
      : handler_(std::move(handler)),
        http_([this, &path](httplib::Server& server) {
          server.Post(path, [this](const httplib::Request& req, httplib::Response& res) {
            const int call = calls_.fetch_add(1);
            {
              std::lock_guard lock(mutex_);
              bodies_.push_back(req.body);
              authorizations_.push_back(req.get_header_value("Authorization"));
            }
            handler_(call, req, res);
          });
        }) {}

  std::string url() const { return "http://127.0.0.1:" + std::to_string(http_.port()); }
  int calls() const { return calls_.load(); }
  std::string body(std::size_t i) {
    std::lock_guard lock(mutex_);
    return bodies_.at(i);
  }
  std::string authorization(std::size_t i) {
    std::lock_guard lock(mutex_);
    return authorizations_.at(i);
  }

 private:
  Handler handler_;
  std::atomic<int> calls_{0};
  std::mutex mutex_;
  std::vector<std::string> bodies_;
  std::vector<std::string> authorizations_;
  test_support::LoopbackHttpServer http_;  // last: stops serving before what its route uses goes
};

// A server on 127.0.0.1 that accepts connections, reads nothing and never answers: a remote
// model that hangs. Connections stay open until the server is destroyed.
class SilentServer {
 public:
  SilentServer() {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    auto* any = reinterpret_cast<sockaddr*>(&addr);  // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
    if (listener_ < 0 || ::bind(listener_, any, len) != 0 || ::listen(listener_, 64) != 0 ||
        ::getsockname(listener_, any, &len) != 0) {
      throw std::runtime_error("SilentServer: cannot listen on 127.0.0.1");
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      for (;;) {
        const int fd = ::accept(listener_, nullptr, nullptr);
        if (fd < 0) return;  // shutdown() in the destructor wakes accept with an error
        std::lock_guard lock(mutex_);
        accepted_.push_back(fd);
      }
    });
  }
  SilentServer(const SilentServer&) = delete;
  SilentServer& operator=(const SilentServer&) = delete;
  ~SilentServer() {
    ::shutdown(listener_, SHUT_RDWR);
    thread_.join();
    ::close(listener_);
    for (const int fd : accepted_) ::close(fd);
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int connections() {
    std::lock_guard lock(mutex_);
    return static_cast<int>(accepted_.size());
  }

 private:
  int listener_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::mutex mutex_;
  std::vector<int> accepted_;
};

OpenAIEmbedderConfig config_for(const std::string& url, std::size_t dims = 4) {
  OpenAIEmbedderConfig config;
  config.base_url = url;
  config.model = "test-embed";
  config.dimensions = dims;
  config.api_key = "secret-key";
  config.initial_backoff = 5ms;
  config.max_backoff = 20ms;
  config.connect_timeout = 2000ms;
  config.read_timeout = 5000ms;
  return config;
}

void answer_json(httplib::Response& res, const json& body, int status = 200) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

std::string error_of(OpenAIEmbedder& embedder, const std::vector<std::string>& texts) {
  try {
    embedder.embed(texts);
  } catch (const EmbedderError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(OpenAIEmbedder, EmbedsABatchInInputOrderUsingIndex) {
  EmbeddingsServer server([](int, const httplib::Request& req, httplib::Response& res) {
    answer_json(res, good_answer(req.body, 4));
  });
  OpenAIEmbedder embedder(config_for(server.url()));
  EXPECT_EQ(embedder.name(), "openai:test-embed");
  EXPECT_EQ(embedder.dimensions(), 4u);
  const std::vector<std::string> texts = {"alpha", "be", "gamma ray", "\xc3\xa9t\xc3\xa9"};
  const auto vectors = embedder.embed(texts);
  ASSERT_EQ(vectors.size(), texts.size());
  for (std::size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(vectors[i], expected_vector(texts[i], 4)) << i;
  }
  ASSERT_EQ(server.calls(), 1);
  const json sent = json::parse(server.body(0));
  EXPECT_EQ(sent.at("model"), "test-embed");
  EXPECT_EQ(sent.at("encoding_format"), "float");
  EXPECT_EQ(sent.at("input").get<std::vector<std::string>>(), texts);
  EXPECT_FALSE(sent.contains("dimensions"));
  EXPECT_EQ(server.authorization(0), "Bearer secret-key");
}

TEST(OpenAIEmbedder, BaseUrlWithPathPrefixAndV1IsNotDoubled) {
  EmbeddingsServer server(
      [](int, const httplib::Request& req, httplib::Response& res) {
        answer_json(res, good_answer(req.body, 3));
      },
      "/proxy/v1/embeddings");
  auto config = config_for(server.url() + "/proxy/v1/", 3);
  config.send_dimensions = true;
  config.name = "remote-small";
  OpenAIEmbedder embedder(config);
  EXPECT_EQ(embedder.endpoint(), server.url() + "/proxy/v1/embeddings");
  EXPECT_EQ(embedder.name(), "remote-small");
  const std::vector<std::string> texts = {"x"};
  EXPECT_EQ(embedder.embed(texts).at(0), expected_vector("x", 3));
  EXPECT_EQ(json::parse(server.body(0)).at("dimensions"), 3);
}

TEST(OpenAIEmbedder, RetriesAfter429HonouringRetryAfter) {
  EmbeddingsServer server([](int call, const httplib::Request& req, httplib::Response& res) {
    if (call == 0) {
      res.set_header("Retry-After", "1");
      answer_json(res, {{"error", {{"message", "slow down"}}}}, 429);
      return;
    }
    answer_json(res, good_answer(req.body, 4));
  });
  OpenAIEmbedder embedder(config_for(server.url()));
  const auto start = std::chrono::steady_clock::now();
  const std::vector<std::string> texts = {"one", "two"};
  const auto vectors = embedder.embed(texts);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(server.calls(), 2);
  EXPECT_EQ(vectors.at(1), expected_vector("two", 4));
  // Retry-After: 1 s, not the 5 ms backoff.
  EXPECT_GE(elapsed, 950ms);
}

TEST(OpenAIEmbedder, ServerErrorExhaustsRetriesWithAClearMessage) {
  EmbeddingsServer server([](int, const httplib::Request&, httplib::Response& res) {
    answer_json(res, {{"error", "model overloaded"}, {"error_type", "Overloaded"}}, 500);
  });
  auto config = config_for(server.url());
  config.max_retries = 2;
  OpenAIEmbedder embedder(config);
  const std::string what = error_of(embedder, {"a"});
  EXPECT_EQ(server.calls(), 3);
  EXPECT_NE(what.find("HTTP 500"), std::string::npos) << what;
  EXPECT_NE(what.find("model overloaded"), std::string::npos) << what;
  EXPECT_NE(what.find("after 3 attempts"), std::string::npos) << what;
  EXPECT_NE(what.find(server.url() + "/v1/embeddings"), std::string::npos) << what;
}

TEST(OpenAIEmbedder, ClientErrorsAreNotRetriedAnd400IsAnInputError) {
  EmbeddingsServer server([](int, const httplib::Request&, httplib::Response& res) {
    answer_json(res, {{"error", {{"message", "input is too long"}}}}, 400);
  });
  OpenAIEmbedder embedder(config_for(server.url()));
  const std::vector<std::string> texts = {"a"};
  try {
    embedder.embed(texts);
    FAIL() << "expected EmbedderInputError";
  } catch (const EmbedderInputError& e) {
    EXPECT_NE(std::string(e.what()).find("input is too long"), std::string::npos) << e.what();
  }
  EXPECT_EQ(server.calls(), 1);
}

TEST(OpenAIEmbedder, UnauthorizedIsAnEmbedderErrorWithTheRawBody) {
  EmbeddingsServer server([](int, const httplib::Request&, httplib::Response& res) {
    res.status = 401;
    res.set_content("no key, no embeddings", "text/plain");
  });
  OpenAIEmbedder embedder(config_for(server.url()));
  const std::string what = error_of(embedder, {"a"});
  EXPECT_NE(what.find("HTTP 401: no key, no embeddings"), std::string::npos) << what;
  EXPECT_EQ(server.calls(), 1);
}

TEST(OpenAIEmbedder, MalformedJsonIsAnError) {
  EmbeddingsServer server([](int, const httplib::Request&, httplib::Response& res) {
    res.set_content("{\"data\": [", "application/json");
  });
  OpenAIEmbedder embedder(config_for(server.url()));
  const std::string what = error_of(embedder, {"a"});
  EXPECT_NE(what.find("not valid JSON"), std::string::npos) << what;
  EXPECT_EQ(server.calls(), 1);
}

TEST(OpenAIEmbedder, WrongDimensionIsAnError) {
  EmbeddingsServer server([](int, const httplib::Request& req, httplib::Response& res) {
    answer_json(res, good_answer(req.body, 5));
  });
  OpenAIEmbedder embedder(config_for(server.url(), 4));
  const std::string what = error_of(embedder, {"a", "b"});
  EXPECT_NE(what.find("has 5 dimensions, expected 4"), std::string::npos) << what;
}

TEST(OpenAIEmbedder, WrongCountBadIndexAndBadNumbersAreErrors) {
  std::atomic<int> mode{0};
  EmbeddingsServer server([&mode](int, const httplib::Request& req, httplib::Response& res) {
    json answer = good_answer(req.body, 2);
    switch (mode.load()) {
      case 0: answer["data"].erase(answer["data"].begin()); break;  // one missing
      case 1: answer["data"][0]["index"] = answer["data"][1]["index"]; break;  // duplicate
      case 2: answer["data"][0]["index"] = 7; break;  // out of range
      case 3: answer["data"][0]["embedding"][1] = "x"; break;  // not a number
      case 4: answer["data"][0]["embedding"][0] = 1e300; break;  // not a float
      case 5: answer["data"][0]["index"] = -1; break;
      case 6: answer["data"][0].erase("index"); break;  // only some indexed
      case 7: answer = json::array(); break;
      case 8: answer["data"][0]["embedding"] = "AAAAAA=="; break;  // base64
    }
    answer_json(res, answer);
  });
  OpenAIEmbedder embedder(config_for(server.url(), 2));
  const std::vector<std::pair<int, std::string>> cases = {
      {0, "1 embeddings for 2 inputs"},      {1, "appears twice"},
      {2, "index 7 is out of range"},        {3, "non-number at position 1"},
      {4, "non-finite value at position 0"}, {5, "non-integer or negative"},
      {6, "only some embeddings"},           {7, "not a JSON object"},
      {8, "no \"embedding\" list"}};
  for (const auto& [m, expected] : cases) {
    mode = m;
    const std::string what = error_of(embedder, {"a", "b"});
    EXPECT_NE(what.find(expected), std::string::npos) << "mode " << m << ": " << what;
    EXPECT_NE(what.find("invalid response"), std::string::npos) << what;
  }
}

TEST(OpenAIEmbedder, ResponseWithoutIndexesIsTakenInArrayOrder) {
  EmbeddingsServer server([](int, const httplib::Request& req, httplib::Response& res) {
    const json request = json::parse(req.body);
    json data = json::array();
    for (const auto& text : request.at("input")) {
      data.push_back({{"embedding", expected_vector(text.get<std::string>(), 2)}});
    }
    answer_json(res, {{"data", data}});
  });
  OpenAIEmbedder embedder(config_for(server.url(), 2));
  const std::vector<std::string> texts = {"first", "second"};
  const auto vectors = embedder.embed(texts);
  EXPECT_EQ(vectors.at(0), expected_vector("first", 2));
  EXPECT_EQ(vectors.at(1), expected_vector("second", 2));
}

TEST(OpenAIEmbedder, ReadTimeoutIsAnError) {
  // A server slower than the read timeout, simulated: it answers once the test has its result,
  // so only the timeout can end the call, however slow the machine.
  std::promise<void> release;
  const std::shared_future<void> released = release.get_future().share();
  EmbeddingsServer server([released](int, const httplib::Request& req, httplib::Response& res) {
    released.wait_for(test_support::kPatience);
    answer_json(res, good_answer(req.body, 4));
  });
  auto config = config_for(server.url());
  config.read_timeout = 500ms;
  config.max_retries = 0;
  OpenAIEmbedder embedder(config);
  const auto start = std::chrono::steady_clock::now();
  const std::string what = error_of(embedder, {"a"});
  const auto elapsed = std::chrono::steady_clock::now() - start;
  release.set_value();
  EXPECT_NE(what.find("network error"), std::string::npos) << what;
  EXPECT_GE(elapsed, 400ms);
  EXPECT_LT(elapsed, 10 * config.read_timeout);
}

TEST(OpenAIEmbedder, DeadlineBoundsAttemptsAndBackoffTogether) {
  // A server that accepts and never answers, a read timeout of 300 ms and thirty retries:
  // without the deadline the call takes 31 x 300 ms plus backoff; with it, it ends at 1 s. The
  // upper bound leaves a loaded machine running a sanitizer a margin of 4 s.
  SilentServer silent;
  auto config = config_for(silent.url());
  config.read_timeout = 300ms;
  config.max_retries = 30;
  config.deadline = 1000ms;
  OpenAIEmbedder embedder(config);
  const auto start = std::chrono::steady_clock::now();
  const std::string what = error_of(embedder, {"a"});
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_NE(what.find("network error"), std::string::npos) << what;
  EXPECT_GE(elapsed, 900ms) << what;
  EXPECT_LT(elapsed, 5000ms) << what;
  EXPECT_GE(silent.connections(), 2) << "the deadline, not the first timeout, ended the call";

  // Failing fast but with long backoff: the retry that would pass the deadline is not made.
  EmbeddingsServer failing([](int, const httplib::Request&, httplib::Response& res) {
    answer_json(res, {{"error", "overloaded"}}, 503);
  });
  auto backoff = config_for(failing.url());
  backoff.max_retries = 10;
  backoff.initial_backoff = 400ms;
  backoff.max_backoff = 400ms;
  backoff.deadline = 300ms;
  OpenAIEmbedder slow_retries(backoff);
  const std::string why = error_of(slow_retries, {"a"});
  EXPECT_EQ(failing.calls(), 1);
  EXPECT_NE(why.find("deadline of 300 ms"), std::string::npos) << why;
}

TEST(OpenAIEmbedder, RefusedConnectionIsRetriedThenReported) {
  std::string url;
  {
    // Find a port that was free a moment ago and is closed now.
    EmbeddingsServer probe([](int, const httplib::Request&, httplib::Response&) {});
    url = probe.url();
  }
  auto config = config_for(url);
  config.max_retries = 1;
  OpenAIEmbedder embedder(config);
  const std::string what = error_of(embedder, {"a"});
  EXPECT_NE(what.find("network error"), std::string::npos) << what;
  EXPECT_NE(what.find("after 2 attempts"), std::string::npos) << what;
}

TEST(OpenAIEmbedder, EmptyInputMakesNoRequestAndOversizedBatchIsRefused) {
  EmbeddingsServer server([](int, const httplib::Request& req, httplib::Response& res) {
    answer_json(res, good_answer(req.body, 4));
  });
  auto config = config_for(server.url());
  config.max_batch = 2;
  OpenAIEmbedder embedder(config);
  EXPECT_TRUE(embedder.embed(std::vector<std::string>{}).empty());
  EXPECT_THROW(embedder.embed(std::vector<std::string>{"a", "b", "c"}), EmbedderInputError);
  EXPECT_EQ(server.calls(), 0);
  // Not UTF-8: cannot be sent as JSON, refused as input.
  EXPECT_THROW(embedder.embed(std::vector<std::string>{"\xff\xfe"}), EmbedderInputError);
}

TEST(OpenAIEmbedder, InvalidConfigurationIsRefused) {
  auto good = config_for("http://127.0.0.1:1");
  auto with = [&](auto change) {
    auto c = good;
    change(c);
    return c;
  };
  EXPECT_NO_THROW(OpenAIEmbedder{good});
  EXPECT_THROW(OpenAIEmbedder(with([](auto& c) { c.base_url = "ftp://x"; })), std::invalid_argument);
  EXPECT_THROW(OpenAIEmbedder(with([](auto& c) { c.base_url = "localhost:8080"; })),
               std::invalid_argument);
  EXPECT_THROW(OpenAIEmbedder(with([](auto& c) { c.base_url = "http://"; })), std::invalid_argument);
  EXPECT_THROW(OpenAIEmbedder(with([](auto& c) { c.dimensions = 0; })), std::invalid_argument);
  EXPECT_THROW(OpenAIEmbedder(with([](auto& c) { c.model = ""; })), std::invalid_argument);
  EXPECT_THROW(OpenAIEmbedder(with([](auto& c) { c.max_batch = 0; })), std::invalid_argument);
  EXPECT_THROW(OpenAIEmbedder(with([](auto& c) { c.max_retries = -1; })), std::invalid_argument);
  EXPECT_THROW(OpenAIEmbedder(with([](auto& c) { c.deadline = 0ms; })), std::invalid_argument);
}

TEST(OpenAIEmbedderConfig, FromEnvironment) {
  ::setenv("OPENAI_BASE_URL", "http://10.0.0.1:8080/v1", 1);
  ::setenv("OPENAI_API_KEY", "k", 1);
  ::setenv("OPENAI_EMBEDDING_MODEL", "nomic-embed-text", 1);
  ::setenv("OPENAI_EMBEDDING_DIMENSIONS", "768", 1);
  const auto config = OpenAIEmbedderConfig::from_env();
  EXPECT_EQ(config.base_url, "http://10.0.0.1:8080/v1");
  EXPECT_EQ(config.api_key, "k");
  EXPECT_EQ(config.model, "nomic-embed-text");
  EXPECT_EQ(config.dimensions, 768u);
  EXPECT_EQ(OpenAIEmbedder(config).endpoint(), "http://10.0.0.1:8080/v1/embeddings");
  ::setenv("OPENAI_EMBEDDING_DIMENSIONS", "lots", 1);
  EXPECT_THROW(OpenAIEmbedderConfig::from_env(), std::invalid_argument);
  for (const char* name : {"OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_EMBEDDING_MODEL",
                           "OPENAI_EMBEDDING_DIMENSIONS"}) {
    ::unsetenv(name);
  }
}

}  // namespace
}  // namespace pagekeeper
