// pagekeeperd serving configured models: [[embedding.models]] tables and --model flags
// (validation), a llama.cpp GGUF model generated at test time (same vectors as LlamaEmbedder
// in-process, cache hits, aliases, model/list, a missing file answered as a JSON error while
// the server keeps serving) and an OpenAI-compatible server on loopback started by the test.
// Every server here is a real Daemon on a loopback port built from TOML text.

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "embedding/llama_test_support.hpp"
#include "llama/llama_runtime.hpp"
#include "pagekeeper/llama_embedder.hpp"
#include "server_test_util.hpp"

namespace pagekeeper::test {
namespace {

using nlohmann::json;

ServerConfig config_from(const std::string& toml) { return parse_server_config(toml, "test.toml", small_config()); }

httplib::Result embed(httplib::Client& c, const json& input, const std::string& model) {
  return c.Post("/v1/embeddings", json{{"input", input}, {"model", model}}.dump(), "application/json");
}

json model_list(httplib::Client& c) {
  auto r = c.Post("/api/embedding/model/list", "{}", "application/json");
  EXPECT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  return json::parse(r->body);
}

json listed(const json& list, const std::string& name) {
  for (const json& m : list["models"])
    if (m["name"] == name) return m;
  ADD_FAILURE() << "model/list has no " << name << ": " << list.dump();
  return json::object();
}

// The message of the ServerConfigError that `read` throws, or "(accepted)".
template <typename Read>
std::string error_of(Read&& read) {
  try {
    read();
  } catch (const ServerConfigError& e) {
    return e.what();
  }
  return "(accepted)";
}
std::string config_error(const std::string& toml) { return error_of([&] { config_from(toml); }); }
std::string flag_error(const std::string& spec) { return error_of([&] { parse_model_flag(spec); }); }

TEST(ServerModelsConfig, BadModelTablesAreErrorsNamingTheKey) {
  EXPECT_NE(config_error("[[embedding.models]]\nname = \"m\"\nbackend = \"onnx\"\n").find("embedding.models[0].backend = 'onnx' is not one of 'llama', 'openai', 'lexical'"),
            std::string::npos);
  EXPECT_NE(config_error("[[embedding.models]]\nname = \"m\"\n").find("embedding.models[0].backend: required"),
            std::string::npos);
  EXPECT_NE(config_error("[[embedding.models]]\nname = \"m\"\nbackend = \"llama\"\n").find("embedding.models[0] ('m').path: required for backend 'llama'"),
            std::string::npos);
  EXPECT_NE(config_error("[[embedding.models]]\nbackend = \"lexical\"\n").find("embedding.models[0].name: required"),
            std::string::npos);
  const std::string twice =
      "[[embedding.models]]\nname = \"a\"\nbackend = \"lexical\"\n"
      "[[embedding.models]]\nname = \"b\"\nbackend = \"lexical\"\naliases = [\"A\"]\n";
  EXPECT_NE(config_error(twice).find("embedding.models[1] ('b').aliases: 'A' is already the name or alias"),
            std::string::npos)
      << config_error(twice);
  EXPECT_NE(config_error("[[embedding.models]]\nname = \"lexical\"\nbackend = \"lexical\"\n").find("reserved"),
            std::string::npos);
  EXPECT_NE(config_error("[[embedding.models]]\nname = \"m\"\nbackend = \"openai\"\nbase_url = \"http://x\"\n")
                .find("('m').dimensions: required for backend 'openai'"),
            std::string::npos);
  // A key of another backend is refused, with the file position.
  EXPECT_NE(config_error("[[embedding.models]]\nname = \"m\"\nbackend = \"openai\"\nbase_url = \"http://x\"\n"
                         "dimensions = 8\npath = \"/m.gguf\"\n")
                .find("test.toml:6:8: unknown key 'embedding.models[0].path'"),
            std::string::npos);
  EXPECT_NE(config_error("[[embedding.models]]\nname = \"m\"\nbackend = \"llama\"\npath = \"/m.gguf\"\n"
                         "overflow = \"wrap\"\n")
                .find("embedding.models[0].overflow = 'wrap' is not one of 'truncate', 'refuse'"),
            std::string::npos);
  EXPECT_NE(config_error("[embedding]\nmodels = 3\n").find("[[embedding.models]]"), std::string::npos);
  EXPECT_NE(config_error("[embedding]\nmodel_budget_mb = 0\n").find("embedding.model_budget_mb"), std::string::npos);
}

TEST(ServerModelsConfig, ModelTablesAndFlagsAreRead) {
  const ServerConfig c = config_from(R"(
[embedding]
model_budget_mb = 64
[[embedding.models]]
name = "bge"
backend = "llama"
aliases = ["small", "bge-small"]
path = "/models/bge.gguf"
threads = 2
contexts = 3
overflow = "refuse"
batch_tokens = 1024
[[embedding.models]]
name = "remote"
backend = "openai"
base_url = "http://127.0.0.1:9"
remote_model = "nomic-embed-text"
dimensions = 768
api_key_env = "REMOTE_KEY"
timeout_ms = 1500
max_retries = 1
deadline_ms = 2500
)");
  EXPECT_EQ(c.model_budget_bytes, 64u << 20);
  ASSERT_EQ(c.models.size(), 2u);
  EXPECT_EQ(c.models[0].backend, EmbeddingModelConfig::Backend::kLlama);
  EXPECT_EQ(c.models[0].aliases, (std::vector<std::string>{"small", "bge-small"}));
  EXPECT_EQ(c.models[0].llama.model_path, "/models/bge.gguf");
  EXPECT_EQ(c.models[0].llama.threads, 2);
  EXPECT_EQ(c.models[0].llama.contexts, 3u);
  EXPECT_EQ(c.models[0].llama.overflow, LlamaEmbedderConfig::Overflow::kRefuse);
  EXPECT_EQ(c.models[0].llama.batch_tokens, 1024u);
  EXPECT_EQ(c.models[1].openai.model, "nomic-embed-text");
  EXPECT_EQ(c.models[1].openai.dimensions, 768u);
  EXPECT_EQ(c.models[1].openai.read_timeout, std::chrono::milliseconds(1500));
  EXPECT_EQ(c.models[1].openai.max_retries, 1);
  EXPECT_EQ(c.models[1].openai.deadline, std::chrono::milliseconds(2500));
  EXPECT_EQ(c.models[1].api_key_env, "REMOTE_KEY");
  EXPECT_TRUE(c.models[1].openai.api_key.empty());

  const EmbeddingModelConfig flag = parse_model_flag("bge=llama:/m/bge.gguf?threads=4&aliases=b1,b2");
  EXPECT_EQ(flag.name, "bge");
  EXPECT_EQ(flag.llama.model_path, "/m/bge.gguf");
  EXPECT_EQ(flag.llama.threads, 4);
  EXPECT_EQ(flag.aliases, (std::vector<std::string>{"b1", "b2"}));
  const EmbeddingModelConfig remote = parse_model_flag("r=openai:http://127.0.0.1:8080/v1?dimensions=16");
  EXPECT_EQ(remote.openai.base_url, "http://127.0.0.1:8080/v1");
  EXPECT_EQ(remote.openai.dimensions, 16u);
  EXPECT_EQ(remote.openai.model, "r");
  EXPECT_NE(flag_error("bge").find("expected NAME=BACKEND"), std::string::npos);
  EXPECT_NE(flag_error("x=llama:/m.gguf?threads=many").find("embedding.models.threads must be an integer"),
            std::string::npos);
  EXPECT_NE(flag_error("x=tf:/m").find("'tf' is not one of"), std::string::npos);
}

TEST(ServerModels, DefaultModelMayNameAConfiguredModel) {
  TestServer s(config_from(R"(
[embedding]
default_model = "tiny-lex"
[[embedding.models]]
name = "tiny-lex"
backend = "lexical"
dimensions = 64
aliases = ["tl"]
)"));
  auto c = s.client();
  auto r = c.Post("/v1/embeddings", R"({"input":"hello there"})", "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  const json body = json::parse(r->body);
  EXPECT_EQ(body["model"], "tiny-lex");
  EXPECT_EQ(body["data"][0]["embedding"].size(), 64u);
  const json list = model_list(c);
  EXPECT_EQ(list["default"], "tiny-lex");
  const json m = listed(list, "tiny-lex");
  EXPECT_EQ(m["backend"], "lexical");
  EXPECT_EQ(m["dimensions"], 64);
  EXPECT_EQ(m["aliases"], json::array({"tl"}));
  EXPECT_EQ(m["isDefault"], true);
  EXPECT_EQ(listed(list, "lexical")["dimensions"], 384);
  // A default that names nothing is a configuration error, not a server answering 404s.
  EXPECT_THROW(Daemon(config_from("[embedding]\ndefault_model = \"nothing\"\n")), ServerConfigError);
}

// A tiny OpenAI-compatible embeddings server: vectors of `dims` values derived from each
// text's bytes; it records the Authorization header and the model it was asked for.
class TinyOpenAIServer {
 public:
  explicit TinyOpenAIServer(std::size_t dims)
      : dims_(dims), http_([this](httplib::Server& server) {
          server.Post("/v1/embeddings", [this](const httplib::Request& req, httplib::Response& res) {
            const json body = json::parse(req.body);
            {
              std::lock_guard lock(mutex_);
              authorization_ = req.get_header_value("Authorization");
              model_ = body["model"].get<std::string>();
              ++requests_;
            }
            json data = json::array();
            for (std::size_t i = 0; i < body["input"].size(); ++i)
              data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", vector_of(body["input"][i].get<std::string>())}});
            res.set_content(json{{"object", "list"}, {"data", data}, {"model", body["model"]}}.dump(), "application/json");
          });
        }) {}
  std::vector<float> vector_of(const std::string& text) const {
    std::vector<float> v(dims_);
    for (std::size_t i = 0; i < dims_; ++i) v[i] = static_cast<float>(text.size() + i) / 64.0f;
    for (std::size_t i = 0; i < text.size(); ++i) v[i % dims_] += static_cast<unsigned char>(text[i]) / 256.0f;
    return v;
  }
  int port() const { return http_.port(); }
  std::string authorization() const {
    std::lock_guard lock(mutex_);
    return authorization_;
  }
  std::string model() const {
    std::lock_guard lock(mutex_);
    return model_;
  }
  int requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  std::size_t dims_;
  mutable std::mutex mutex_;  // guards the three below (written on the server's threads)
  std::string authorization_;
  std::string model_;
  int requests_ = 0;
  LoopbackHttpServer http_;  // last: stops serving before the members its handler uses go
};

TEST(ServerModels, OpenAIBackendFromTomlWithKeyFromEnvironment) {
  TinyOpenAIServer remote(24);
  ::setenv("PAGEKEEPER_TEST_REMOTE_KEY", "sk-test-123", 1);  // before any daemon thread starts
  TestServer s(config_from(R"(
[[embedding.models]]
name = "remote"
backend = "openai"
aliases = ["far"]
base_url = "http://127.0.0.1:)" + std::to_string(remote.port()) + R"("
remote_model = "nomic-embed-text"
dimensions = 24
api_key_env = "PAGEKEEPER_TEST_REMOTE_KEY"
timeout_ms = 5000
max_retries = 0
)"));
  auto c = s.client();
  auto first = embed(c, {"alpha", "beta"}, "remote");
  ASSERT_EQ(first->status, 200) << first->body;
  EXPECT_EQ(first->get_header_value("X-Pagekeeper-Cache-Misses"), "2");
  const json body = json::parse(first->body);
  EXPECT_EQ(body["model"], "remote");
  for (int i = 0; i < 2; ++i) {
    const auto got = body["data"][i]["embedding"].get<std::vector<float>>();
    EXPECT_EQ(got, remote.vector_of(i == 0 ? "alpha" : "beta"));
  }
  EXPECT_EQ(remote.authorization(), "Bearer sk-test-123");
  EXPECT_EQ(remote.model(), "nomic-embed-text");
  // Through the alias: the same cache slots, so no second remote request.
  auto again = embed(c, {"beta", "alpha"}, "FAR");
  ASSERT_EQ(again->status, 200) << again->body;
  EXPECT_EQ(again->get_header_value("X-Pagekeeper-Cache-Hits"), "2");
  EXPECT_EQ(remote.requests(), 1);
  const json m = listed(model_list(c), "remote");
  EXPECT_EQ(m["backend"], "openai");
  EXPECT_EQ(m["dimensions"], 24);
  EXPECT_EQ(m["aliases"], json::array({"far"}));
  EXPECT_NE(m["location"].get<std::string>().find(std::to_string(remote.port())), std::string::npos);

  // A key variable that is not set is a configuration error naming it.
  try {
    Daemon(config_from("[[embedding.models]]\nname = \"r\"\nbackend = \"openai\"\nbase_url = \"http://127.0.0.1:9\"\n"
                       "dimensions = 8\napi_key_env = \"PAGEKEEPER_TEST_NO_SUCH_KEY\"\n"));
    ADD_FAILURE() << "accepted an unset api_key_env";
  } catch (const ServerConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("PAGEKEEPER_TEST_NO_SUCH_KEY"), std::string::npos) << e.what();
  }
}

std::string llama_toml(const std::string& name, const std::string& path, const std::string& extra = "") {
  return "[[embedding.models]]\nname = \"" + name + "\"\nbackend = \"llama\"\npath = \"" + path + "\"\nthreads = 1\n" +
         extra;
}

#ifndef PAGEKEEPER_HAVE_LLAMA

TEST(ServerModels, LlamaBackendAnswersNotAvailableInThisBuild) {
  TestServer s(config_from(llama_toml("bge", "/models/bge.gguf")));
  auto c = s.client();
  auto r = embed(c, "hello", "bge");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 502);
  EXPECT_NE(json::parse(r->body)["error"]["message"].get<std::string>().find("not available in this build"),
            std::string::npos)
      << r->body;
  EXPECT_EQ(embed(c, "hello", "lexical")->status, 200);
}

#else

TEST(ServerModels, LlamaModelServesTheVectorsOfLlamaEmbedder) {
  const std::filesystem::path model = llama_test::tiny_model();
  TestServer s(config_from(llama_toml("tiny", model.string(), "aliases = [\"tiny-bert\"]\ncontexts = 2\n")));
  auto c = s.client();
  const json texts = {"the quick brown fox", "jumps over the lazy dog", "hello"};
  const json before = listed(model_list(c), "tiny");
  EXPECT_EQ(before["backend"], "llama");
  EXPECT_EQ(before["location"], model.string());
  EXPECT_TRUE(before["dimensions"].is_null()) << "dimensions are known once the model is loaded";

  auto first = embed(c, texts, "tiny");
  ASSERT_EQ(first->status, 200) << first->body;
  EXPECT_EQ(first->get_header_value("X-Pagekeeper-Cache-Misses"), "3");
  const json body = json::parse(first->body);
  EXPECT_EQ(body["model"], "tiny");

  LlamaEmbedderConfig direct_config;
  direct_config.model_path = model;
  direct_config.threads = 1;
  const auto direct = LlamaEmbedder::create(direct_config);
  const std::vector<std::string> plain = texts.get<std::vector<std::string>>();
  const auto expected = direct->embed(plain);
  ASSERT_EQ(body["data"].size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    const auto got = body["data"][i]["embedding"].get<std::vector<float>>();
    ASSERT_EQ(got.size(), direct->dimensions());
    EXPECT_LE(llama_test::max_abs_diff(got, expected[i]), 1e-5) << "text " << i;
  }

  auto second = embed(c, texts, "tiny");
  ASSERT_EQ(second->status, 200);
  EXPECT_EQ(second->get_header_value("X-Pagekeeper-Cache-Hits"), "3");
  // The alias and `default`-free spelling variants share the model's cache slots.
  auto alias = embed(c, {"hello"}, "TINY-BERT");
  ASSERT_EQ(alias->status, 200);
  EXPECT_EQ(alias->get_header_value("X-Pagekeeper-Cache-Hits"), "1");
  EXPECT_EQ(json::parse(alias->body)["model"], "tiny");

  const json after = listed(model_list(c), "tiny");
  EXPECT_EQ(after["dimensions"], direct->dimensions());
  EXPECT_EQ(after["aliases"], json::array({"tiny-bert"}));
  // The model pool is registered with the broker and holds the loaded model.
  bool found = false;
  for (const PoolPressure& p : s.daemon->broker().snapshot().pools) {
    if (p.name != "llama-models") continue;
    found = true;
    EXPECT_EQ(p.stats.entry_count, 1u);
    EXPECT_GT(p.stats.total_bytes, 0u);
  }
  EXPECT_TRUE(found) << "llama-models pool not registered with the broker";
}

TEST(ServerModels, MissingOrCorruptGgufIsAJsonErrorAndTheServerKeepsServing) {
  const auto missing = llama_test::scratch_dir() / "no-such-model.gguf";
  const auto corrupt = llama_test::scratch_dir() / "corrupt.gguf";
  {
    std::ofstream out(corrupt, std::ios::binary);
    out << "GGUF" << std::string(40, '\x7f');
  }
  TestServer s(config_from(llama_toml("gone", missing.string()) + llama_toml("broken", corrupt.string())));
  auto c = s.client();
  for (const auto& [name, path] : {std::pair{"gone", missing}, std::pair{"broken", corrupt}}) {
    for (int attempt = 0; attempt < 2; ++attempt) {  // a failed load is not cached: tried again, same answer
      auto r = embed(c, "hello", name);
      ASSERT_TRUE(r);
      EXPECT_EQ(r->status, 502) << r->body;
      const json error = json::parse(r->body)["error"];
      EXPECT_EQ(error["code"], "embedder_failed");
      EXPECT_NE(error["message"].get<std::string>().find(path.string()), std::string::npos) << r->body;
    }
  }
  auto ok = embed(c, "hello", "lexical");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(c.Get("/healthz")->status, 200);
  EXPECT_EQ(s.daemon->embeddings().stats().entry_count, 1u) << "a failed model cached nothing";
}

// The number of llama models the broker sees resident (99 when the pool is not registered).
std::size_t resident_models(const TestServer& s) {
  for (const PoolPressure& p : s.daemon->broker().snapshot().pools)
    if (p.name == "llama-models") return p.stats.entry_count;
  return std::size_t{99};
}

// Waits until the daemon's broker has completed `passes` more passes (or kPatience went by).
void await_broker_passes(const TestServer& s, std::uint64_t passes) {
  const std::uint64_t target = s.daemon->broker().snapshot().passes_total + passes;
  test_support::eventually([&] { return s.daemon->broker().snapshot().passes_total >= target; },
                           std::chrono::milliseconds(10));
  ASSERT_GE(s.daemon->broker().snapshot().passes_total, target) << "the broker stopped ticking";
}

TEST(ServerModels, ModelPoolAtItsBudgetIsNotPressure) {
  const std::filesystem::path model = llama_test::tiny_model();
  ServerConfig config = config_from(llama_toml("tiny", model.string()));
  // The model fills its pool to 91%, above act_above (0.8); the host has memory to spare.
  config.model_budget_bytes = LlamaModel::load(model)->size_bytes() * 11 / 10;
  TestServer s(std::move(config));
  auto c = s.client();
  ASSERT_EQ(embed(c, "first text", "tiny")->status, 200);
  await_broker_passes(s, 5);
  EXPECT_EQ(resident_models(s), 1u) << "a full pool is not short of memory: the model stays loaded";
}

TEST(ServerModels, GlobalBudgetPressureEvictsTheIdleModel) {
  const std::filesystem::path model = llama_test::tiny_model();
  ServerConfig config = config_from(llama_toml("tiny", model.string()));
  const std::uint64_t model_bytes = LlamaModel::load(model)->size_bytes();
  config.model_budget_bytes = model_bytes * 11 / 10;
  // One budget over all pools that the model alone exceeds: memory is short.
  config.broker.memory_budget_bytes = model_bytes * 9 / 10;
  TestServer s(std::move(config));
  auto c = s.client();
  ASSERT_EQ(embed(c, "first text", "tiny")->status, 200);
  // The daemon's embedder pins the model between requests; the broker (100 ms passes) sheds
  // from the model pool, frees nothing the first time, the daemon lets go of the model, and a
  // later pass evicts it.
  test_support::eventually([&] { return resident_models(s) == 0; }, std::chrono::milliseconds(20));
  EXPECT_EQ(resident_models(s), 0u);
  // Loaded again on the next miss.
  auto again = embed(c, "second text", "tiny");
  ASSERT_EQ(again->status, 200) << again->body;
  EXPECT_EQ(json::parse(again->body)["data"][0]["embedding"].size(), 32u);
}

#endif  // PAGEKEEPER_HAVE_LLAMA

}  // namespace
}  // namespace pagekeeper::test
