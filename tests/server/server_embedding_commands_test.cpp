// pagekeeperd's embedding/similarity, similarity-matrix, top-k, cluster and model/info,
// load, unload commands over HTTP on a real Daemon: answers compared with a double-precision
// reference computed here, texts embedded through the cache (cache headers), refusals that
// name the field, and a generated llama.cpp model loaded and unloaded on request.

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "embedding/llama_test_support.hpp"
#include "llama/llama_model_pool.hpp"
#include "server_test_util.hpp"
#include "support/vector_reference.hpp"

namespace pagekeeper::test {
namespace {

using nlohmann::json;
using test_support::Matrix;

using test_support::random_vectors;
using test_support::reference_cosine;

struct Answer {
  int status = 0;
  json body;
  httplib::Headers headers;
  std::string raw;
};

Answer post(const TestServer& s, const std::string& command, const json& params, const httplib::Headers& headers = {}) {
  auto c = s.client();
  auto r = c.Post(("/api/" + command).c_str(), headers, params.dump(), "application/json");
  if (!r) return {};
  Answer a{r->status, json(), r->headers, r->body};
  if (r->get_header_value("Content-Type").rfind("application/json", 0) == 0) a.body = json::parse(r->body);
  return a;
}

std::string header(const Answer& a, const char* name) {
  const auto it = a.headers.find(name);
  return it == a.headers.end() ? "" : it->second;
}

std::string error_message(const Answer& a) { return a.body["error"]["message"].get<std::string>(); }

constexpr double kTolerance = 1e-5;

TEST(ServerEmbeddingCommands, SimilarityOfVectorsAndOfTexts) {
  TestServer s;
  const Matrix m = random_vectors(2, 40, 1);
  Answer a = post(s, "embedding/similarity", {{"a", m[0]}, {"b", m[1]}});
  ASSERT_EQ(a.status, 200) << a.raw;
  EXPECT_NEAR(a.body["similarity"].get<double>(), reference_cosine(m[0], m[1]), kTolerance);
  EXPECT_EQ(a.body["dimensions"], 40);

  a = post(s, "embedding/similarity", {{"a", {0, 0, 0}}, {"b", {1, 2, 3}}});
  ASSERT_EQ(a.status, 200);
  EXPECT_EQ(a.body["similarity"], 0.0);

  // Texts are embedded through the cache with the default model: misses, then hits.
  const std::vector<std::string> texts = {"paging memory for models", "memory paging of models"};
  a = post(s, "embedding/similarity", {{"a", texts[0]}, {"b", texts[1]}});
  ASSERT_EQ(a.status, 200) << a.raw;
  EXPECT_EQ(header(a, "X-Pagekeeper-Cache-Misses"), "2");
  LexicalEmbedder lexical;
  const double want = reference_cosine(lexical.embed_one(texts[0]), lexical.embed_one(texts[1]));
  EXPECT_NEAR(a.body["similarity"].get<double>(), want, kTolerance);
  EXPECT_EQ(a.body["dimensions"], 384);
  // A text against a vector: the text's cached vector is reused.
  a = post(s, "embedding/similarity", {{"a", texts[0]}, {"b", lexical.embed_one(texts[1])}});
  ASSERT_EQ(a.status, 200);
  EXPECT_EQ(header(a, "X-Pagekeeper-Cache-Hits"), "1");
  EXPECT_NEAR(a.body["similarity"].get<double>(), want, kTolerance);
}

TEST(ServerEmbeddingCommands, RefusalsNameTheProblem) {
  TestServer s;
  Answer a = post(s, "embedding/similarity", {{"a", {1, 2, 3}}, {"b", {1, 2}}});
  EXPECT_EQ(a.status, 400);
  EXPECT_EQ(a.body["error"]["code"], "dimension_mismatch");
  EXPECT_EQ(error_message(a), "Dimension mismatch: 3 vs 2");

  a = post(s, "embedding/similarity", {{"a", {1, 2}}});
  EXPECT_EQ(a.status, 400);
  EXPECT_EQ(error_message(a), "b is required");
  a = post(s, "embedding/similarity", {{"a", {1, "x"}}, {"b", {1, 2}}});
  EXPECT_EQ(a.status, 400);
  EXPECT_EQ(error_message(a), "a[1] must be a number, got string");
  a = post(s, "embedding/similarity", {{"a", {1, 1e39}}, {"b", {1, 2}}});
  EXPECT_EQ(a.status, 400);
  EXPECT_NE(error_message(a).find("outside float32's range"), std::string::npos) << a.raw;
  a = post(s, "embedding/similarity", {{"a", "x"}, {"b", "y"}, {"model", "nope"}});
  EXPECT_EQ(a.status, 404);
  EXPECT_NE(error_message(a).find("nope"), std::string::npos);

  a = post(s, "embedding/similarity-matrix", {{"embeddings", {{1, 2}, {1, 2}, {1, 2, 3}}}});
  EXPECT_EQ(a.status, 400);
  EXPECT_EQ(error_message(a), "Dimension mismatch: embeddings[2] has 3 dimensions, embeddings[0] has 2");
  a = post(s, "embedding/top-k", {{"query", {1, 2}}, {"targets", {{1, 2}, {1}}}});
  EXPECT_EQ(a.status, 400);
  EXPECT_EQ(error_message(a), "Dimension mismatch: targets[1] has 1 dimensions, query has 2");
  a = post(s, "embedding/top-k", {{"query", {1, 2}}, {"targets", {{1, 2}}}, {"k", 1.5}});
  EXPECT_EQ(a.status, 400);
  EXPECT_EQ(a.body["error"]["param"], "k");
  a = post(s, "embedding/cluster", {{"embeddings", {{1, 2}}}, {"minSimilarity", 2}});
  EXPECT_EQ(a.status, 400);
  EXPECT_EQ(a.body["error"]["param"], "minSimilarity");
  a = post(s, "embedding/cluster", {{"embeddings", 5}});
  EXPECT_EQ(a.status, 400);
  EXPECT_EQ(a.body["error"]["code"], "invalid_type");

  // The pairwise answer grows with the square of the count: bounded like texts.
  ServerConfig small = small_config();
  small.limits.max_texts_per_request = 3;
  TestServer limited(small);
  a = post(limited, "embedding/similarity-matrix", {{"embeddings", random_vectors(4, 2, 1)}});
  EXPECT_EQ(a.status, 400);
  EXPECT_EQ(a.body["error"]["code"], "limit_exceeded");
}

TEST(ServerEmbeddingCommands, SimilarityMatrixInRowOrderAsJsonAndAsFloat32) {
  TestServer s;
  const Matrix m = random_vectors(7, 24, 2);
  Answer a = post(s, "embedding/similarity-matrix", {{"embeddings", m}});
  ASSERT_EQ(a.status, 200) << a.raw;
  EXPECT_EQ(a.body["count"], 7);
  EXPECT_EQ(a.body["pairs"], 21);
  EXPECT_EQ(a.body["dimensions"], 24);
  EXPECT_TRUE(a.body["durationMs"].is_number());
  const auto got = a.body["similarities"].get<std::vector<double>>();
  ASSERT_EQ(got.size(), 21U);
  std::size_t p = 0;
  for (std::size_t i = 0; i < 7; ++i)
    for (std::size_t j = i + 1; j < 7; ++j, ++p) EXPECT_NEAR(got[p], reference_cosine(m[i], m[j]), kTolerance);

  Answer raw = post(s, "embedding/similarity-matrix", {{"embeddings", m}}, {{"Accept", "application/octet-stream"}});
  ASSERT_EQ(raw.status, 200);
  EXPECT_EQ(header(raw, "Content-Type"), "application/octet-stream");
  EXPECT_EQ(header(raw, "X-Pagekeeper-Pairs"), "21");
  EXPECT_EQ(header(raw, "X-Pagekeeper-Count"), "7");
  EXPECT_EQ(header(raw, "X-Pagekeeper-Dimensions"), "24");
  EXPECT_EQ(header(raw, "X-Pagekeeper-Dtype"), "f32");
  ASSERT_EQ(raw.raw.size(), 21 * sizeof(float));
  for (std::size_t k = 0; k < 21; ++k) {
    float f = 0;
    std::memcpy(&f, raw.raw.data() + k * sizeof(float), sizeof(float));  // the test host is little-endian
    EXPECT_NEAR(f, got[k], 1e-6);
  }

  a = post(s, "embedding/similarity-matrix", {{"embeddings", Matrix{{1, 2}}}});
  ASSERT_EQ(a.status, 200);
  EXPECT_EQ(a.body["similarities"], json::array());
  EXPECT_EQ(a.body["count"], 1);
  EXPECT_EQ(a.body["pairs"], 0);
  // Texts and vectors mixed.
  LexicalEmbedder lexical;
  a = post(s, "embedding/similarity-matrix", {{"embeddings", {json("a text"), json(lexical.embed_one("a text"))}}});
  ASSERT_EQ(a.status, 200) << a.raw;
  EXPECT_NEAR(a.body["similarities"][0].get<double>(), 1.0, kTolerance);
}

TEST(ServerEmbeddingCommands, TopKSortedAboveTheThreshold) {
  TestServer s;
  const Matrix targets = random_vectors(60, 16, 3);
  const Matrix query = random_vectors(1, 16, 4);
  std::vector<std::pair<double, std::size_t>> ref;
  for (std::size_t i = 0; i < targets.size(); ++i) ref.emplace_back(reference_cosine(query[0], targets[i]), i);
  std::sort(ref.begin(), ref.end(), [](auto& x, auto& y) { return x.first > y.first; });

  Answer a = post(s, "embedding/top-k", {{"query", query[0]}, {"targets", targets}});
  ASSERT_EQ(a.status, 200) << a.raw;
  EXPECT_EQ(a.body["k"], 10);
  EXPECT_EQ(a.body["threshold"], 0.0);
  EXPECT_EQ(a.body["totalTargets"], 60);
  EXPECT_EQ(a.body["dimensions"], 16);
  ASSERT_EQ(a.body["count"], 10);
  for (std::size_t r = 0; r < 10; ++r) {
    EXPECT_EQ(a.body["results"][r]["index"], ref[r].second);
    EXPECT_NEAR(a.body["results"][r]["similarity"].get<double>(), ref[r].first, kTolerance);
  }
  a = post(s, "embedding/top-k", {{"query", query[0]}, {"targets", targets}, {"k", 100}, {"threshold", 0.25}});
  ASSERT_EQ(a.status, 200);
  const auto above = std::count_if(ref.begin(), ref.end(), [](auto& r) { return r.first >= 0.25; });
  EXPECT_EQ(a.body["count"], above);
  for (const json& r : a.body["results"]) EXPECT_GE(r["similarity"].get<double>(), 0.25);

  a = post(s, "embedding/top-k", {{"query", query[0]}, {"targets", json::array()}});
  ASSERT_EQ(a.status, 200);
  EXPECT_EQ(a.body["results"], json::array());
  EXPECT_EQ(a.body["count"], 0);
  // Texts: the query's own text ranks first.
  a = post(s, "embedding/top-k",
           {{"query", "memory pages"}, {"targets", {"a cat sat", "memory pages", "pages of memory"}}, {"k", 2}});
  ASSERT_EQ(a.status, 200) << a.raw;
  EXPECT_EQ(a.body["results"][0]["index"], 1);
  EXPECT_NEAR(a.body["results"][0]["similarity"].get<double>(), 1.0, kTolerance);
  EXPECT_EQ(a.body["results"][1]["index"], 2);
}

TEST(ServerEmbeddingCommands, ClustersAreConnectedComponentsByStrength) {
  TestServer s;
  // 0-1 and 1-2 join at 0.5 (0-2 does not): one chain; 3 and 4 nearly equal: a stronger pair;
  // 5 alone is dropped by the default minClusterSize 2.
  const float h = std::sqrt(3.0F) / 2;
  const Matrix m = {{1, 0, 0}, {0.5F, h, 0}, {-0.5F, h, 0}, {0, 0, 1}, {0, 0.01F, 1}, {0, -1, 0}};
  Answer a = post(s, "embedding/cluster", {{"embeddings", m}, {"minSimilarity", 0.5}});
  ASSERT_EQ(a.status, 200) << a.raw;
  EXPECT_EQ(a.body["count"], 6);
  EXPECT_EQ(a.body["clusterCount"], 2);
  EXPECT_EQ(a.body["minClusterSize"], 2);
  EXPECT_EQ(a.body["dimensions"], 3);
  const json& clusters = a.body["clusters"];
  ASSERT_EQ(clusters.size(), 2U);
  EXPECT_EQ(clusters[0]["indices"], json::array({3, 4}));
  EXPECT_NEAR(clusters[0]["strength"].get<double>(), reference_cosine(m[3], m[4]), kTolerance);
  EXPECT_EQ(clusters[1]["indices"], json::array({0, 1, 2}));
  EXPECT_NEAR(clusters[1]["strength"].get<double>(), 0.5 / 3, kTolerance);
  EXPECT_EQ(clusters[1]["representative"], 1);
  // The default minSimilarity is 0.7: the chain falls apart.
  a = post(s, "embedding/cluster", {{"embeddings", m}});
  ASSERT_EQ(a.status, 200);
  EXPECT_EQ(a.body["minSimilarity"], 0.7);
  EXPECT_EQ(a.body["clusterCount"], 1);
}

TEST(ServerEmbeddingCommands, ModelInfoLoadAndUnloadOfBuiltInModels) {
  TestServer s;
  Answer a = post(s, "embedding/model/info", {{"model", "default"}});
  ASSERT_EQ(a.status, 200) << a.raw;
  EXPECT_EQ(a.body["name"], "lexical");
  EXPECT_EQ(a.body["isDefault"], true);
  a = post(s, "embedding/model/info", {{"model", "nope"}});
  EXPECT_EQ(a.status, 404);
  EXPECT_NE(error_message(a).find("'nope'"), std::string::npos);
  a = post(s, "embedding/model/load", {{"model", "lexical"}});
  ASSERT_EQ(a.status, 200) << a.raw;
  EXPECT_EQ(a.body["loaded"], true);
  EXPECT_EQ(a.body["model"], "lexical");
  a = post(s, "embedding/model/unload", {{"model", "nope"}});
  EXPECT_EQ(a.status, 404);
  EXPECT_EQ(a.body["error"]["code"], "model_not_found");
  a = post(s, "embedding/model/unload", {{"model", "lexical"}});
  EXPECT_EQ(a.status, 400);
  EXPECT_NE(error_message(a).find("nothing to unload"), std::string::npos);
  a = post(s, "embedding/model/load", json::object());
  EXPECT_EQ(a.status, 400);
  EXPECT_EQ(error_message(a), "model is required");
}

#ifdef PAGEKEEPER_HAVE_LLAMA

TEST(ServerEmbeddingCommands, LlamaModelLoadsOnRequestAndUnloads) {
  const std::filesystem::path model = llama_test::tiny_model();
  ServerConfig config = parse_server_config("[[embedding.models]]\nname = \"tiny\"\nbackend = \"llama\"\npath = \"" +
                                                model.string() + "\"\nthreads = 1\n",
                                            "test.toml", small_config());
  TestServer s(std::move(config));
  auto resident = [&] {
    for (const PoolPressure& p : s.daemon->broker().snapshot().pools)
      if (p.name == "llama-models") return p.stats.entry_count;
    return std::size_t{99};
  };
  Answer a = post(s, "embedding/model/info", {{"model", "tiny"}});
  ASSERT_EQ(a.status, 200) << a.raw;
  EXPECT_EQ(a.body["loaded"], false);
  a = post(s, "embedding/model/unload", {{"model", "tiny"}});
  EXPECT_EQ(a.status, 404);
  EXPECT_EQ(error_message(a), "Model not loaded: tiny");

  a = post(s, "embedding/model/load", {{"model", "tiny"}});
  ASSERT_EQ(a.status, 200) << a.raw;
  EXPECT_EQ(a.body["loaded"], true);
  EXPECT_EQ(a.body["dimensions"], 32);
  EXPECT_EQ(resident(), 1U);
  a = post(s, "embedding/model/info", {{"model", "tiny"}});
  EXPECT_EQ(a.body["loaded"], true);
  EXPECT_EQ(a.body["dimensions"], 32);

  a = post(s, "embedding/model/unload", {{"model", "tiny"}});
  ASSERT_EQ(a.status, 200) << a.raw;
  EXPECT_EQ(a.body["unloaded"], true);
  EXPECT_EQ(resident(), 0U);
  EXPECT_EQ(post(s, "embedding/model/info", {{"model", "tiny"}}).body["loaded"], false);
  // Texts with the model load it again.
  a = post(s, "embedding/similarity", {{"a", "one text"}, {"b", "another text"}, {"model", "tiny"}});
  ASSERT_EQ(a.status, 200) << a.raw;
  EXPECT_EQ(a.body["dimensions"], 32);
  EXPECT_EQ(resident(), 1U);
}

#endif  // PAGEKEEPER_HAVE_LLAMA

}  // namespace
}  // namespace pagekeeper::test
