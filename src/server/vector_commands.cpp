// The similarity commands of pagekeeperd (see vector_commands.hpp).

#include "server/vector_commands.hpp"

#include <charconv>
#include <chrono>
#include <cmath>
#include <limits>

#include "server/requests.hpp"
#include "pagekeeper/vector_math.hpp"
#include "server/encoding.hpp"

namespace pagekeeper::server {

namespace {

[[noreturn]] void refuse(const std::string& code, const std::string& message, const std::string& param) {
  throw RequestError(400, code, message, param);
}

// The double whose shortest decimal form is the float's, so JSON shows 0.9 rather than
// 0.8999999761581421 for 0.9f.
double as_decimal(float f) {
  char buf[32];
  const auto written = std::to_chars(buf, buf + sizeof(buf), f);
  double d = f;
  std::from_chars(buf, written.ptr, d);
  return d;
}

// The vectors of one request in request order: those given as numbers copied out of the
// JSON, those given as texts embedded by one embed_batch call in resolve().
class VectorInputs {
 public:
  VectorInputs(EmbeddingService& embeddings, const ServerLimits& limits, const nlohmann::json& params)
      : embeddings_(embeddings), limits_(limits) {
    if (const auto it = params.find("model"); it != params.end() && !it->is_null()) {
      if (!it->is_string()) refuse("invalid_type", std::string("model must be a string, got ") + it->type_name(), "model");
      model_ = it->get<std::string>();
      if (model_.empty()) refuse("invalid_value", "model must not be empty", "model");
    }
  }

  // Adds the vector `value` (an array of numbers or a text), called `what` in errors, of
  // parameter `param`.
  void add(const nlohmann::json& value, const std::string& what, const std::string& param) {
    if (value.is_string()) {
      const auto& text = value.get_ref<const std::string&>();
      if (text.empty()) refuse("empty_input", what + " is an empty string", param);
      if (text.size() > limits_.max_text_bytes)
        refuse("limit_exceeded",
               what + " is " + std::to_string(text.size()) + " bytes; limits.max_text_bytes is " +
                   std::to_string(limits_.max_text_bytes),
               param);
      if (texts_.size() == limits_.max_texts_per_request)
        refuse("limit_exceeded",
               "more than limits.max_texts_per_request (" + std::to_string(limits_.max_texts_per_request) +
                   ") texts to embed",
               param);
      slots_.push_back({true, texts_.size()});
      texts_.push_back(text);
      return;
    }
    if (!value.is_array())
      refuse("invalid_type", what + " must be an array of numbers or a text, got " + value.type_name(), param);
    std::vector<float> v;
    v.reserve(value.size());
    for (std::size_t i = 0; i < value.size(); ++i) {
      const nlohmann::json& x = value[i];
      if (!x.is_number())
        refuse("invalid_type", what + "[" + std::to_string(i) + "] must be a number, got " + x.type_name(), param);
      const double d = x.get<double>();
      if (!(std::abs(d) <= std::numeric_limits<float>::max()))
        refuse("invalid_value", what + "[" + std::to_string(i) + "] = " + x.dump() + " is outside float32's range",
               param);
      v.push_back(static_cast<float>(d));
    }
    slots_.push_back({false, given_.size()});
    given_.push_back(std::move(v));
  }

  // Adds every vector of the array parameter `param` (missing: `required` refuses it, else
  // it counts as empty). Returns how many were added.
  std::size_t add_list(const nlohmann::json& params, const std::string& param, bool required) {
    const auto it = params.find(param);
    if (it == params.end() || it->is_null()) {
      if (required) refuse("missing_field", param + " is required", param);
      return 0;
    }
    if (!it->is_array())
      refuse("invalid_type", param + " must be an array of vectors (arrays of numbers) or texts, got " + it->type_name(),
             param);
    for (std::size_t i = 0; i < it->size(); ++i) add((*it)[i], param + "[" + std::to_string(i) + "]", param);
    return it->size();
  }

  void add_required(const nlohmann::json& params, const std::string& param) {
    const auto it = params.find(param);
    if (it == params.end() || it->is_null()) refuse("missing_field", param + " is required", param);
    add(*it, param, param);
  }

  // Embeds the texts; the views are valid from now on, as long as this object lives.
  void resolve() {
    if (!texts_.empty()) {
      EmbedBatchResult result = embeddings_.embed_batch(texts_, model_.empty() ? std::string_view("default") : model_);
      embedded_ = std::move(result.vectors);
      accounting_ = result.accounting;
    }
    views_.reserve(slots_.size());
    for (const Slot& s : slots_)
      views_.push_back(s.text ? embedded_[s.index].values() : VectorView(given_[s.index]));
  }

  const std::vector<VectorView>& views() const { return views_; }

  // The cache headers of the embedding call (all 0 when nothing was embedded).
  void add_cache_headers(CommandReply& reply) const {
    reply.headers.emplace_back("X-Pagekeeper-Cache-Hits", std::to_string(accounting_.hits));
    reply.headers.emplace_back("X-Pagekeeper-Cache-Misses", std::to_string(accounting_.misses));
    reply.headers.emplace_back("X-Pagekeeper-Cache-Joined", std::to_string(accounting_.joined));
  }

 private:
  struct Slot {
    bool text;
    std::size_t index;  // into texts_/embedded_ or given_
  };
  EmbeddingService& embeddings_;
  const ServerLimits& limits_;
  std::string model_;
  std::vector<Slot> slots_;
  std::vector<std::vector<float>> given_;
  std::vector<std::string> texts_;
  std::vector<EmbeddingVector> embedded_;
  EmbedAccounting accounting_;
  std::vector<VectorView> views_;
};

// A list parameter whose answer grows with the square of its length is bounded like texts.
void check_square_count(std::size_t n, const std::string& param, const ServerLimits& limits) {
  if (n > limits.max_texts_per_request)
    refuse("limit_exceeded",
           param + " has " + std::to_string(n) + " entries; limits.max_texts_per_request is " +
               std::to_string(limits.max_texts_per_request) + " (the answer grows with the square of the count)",
           param);
}

// Rethrows a VectorDimensionError from a list parameter as a 400 naming both positions.
template <class Body>
auto naming_mismatch(const std::string& param, const std::string& reference, Body&& body) {
  try {
    return body();
  } catch (const VectorDimensionError& e) {
    const std::string where = e.index ? param + "[" + std::to_string(*e.index) + "]" : param;
    throw RequestError(400, "dimension_mismatch",
                       "Dimension mismatch: " + where + " has " + std::to_string(e.actual) + " dimensions, " +
                           reference + " has " + std::to_string(e.expected),
                       param);
  }
}

std::size_t optional_count(const nlohmann::json& params, std::string_view camel, std::string_view snake,
                           std::size_t fallback) {
  const auto v = optional_number(params, camel, snake, 0, 1e12);
  if (!v) return fallback;
  if (std::floor(*v) != *v)
    refuse("invalid_value", std::string(camel) + " must be an integer, got " + nlohmann::json(*v).dump(),
           std::string(camel));
  return static_cast<std::size_t>(*v);
}

double elapsed_ms(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - since).count();
}

}  // namespace

CommandReply similarity_command(const nlohmann::json& params, EmbeddingService& embeddings,
                                const ServerLimits& limits) {
  VectorInputs inputs(embeddings, limits, params);
  inputs.add_required(params, "a");
  inputs.add_required(params, "b");
  inputs.resolve();
  const VectorView a = inputs.views()[0];
  const VectorView b = inputs.views()[1];
  float similarity = 0;
  try {
    similarity = cosine_similarity(a, b);
  } catch (const VectorDimensionError& e) {
    throw RequestError(400, "dimension_mismatch", e.what(), "b");
  }
  CommandReply reply;
  reply.body = nlohmann::json{{"similarity", as_decimal(similarity)}, {"dimensions", a.size()}}.dump();
  inputs.add_cache_headers(reply);
  return reply;
}

CommandReply similarity_matrix_command(const nlohmann::json& params, EmbeddingService& embeddings,
                                       const ServerLimits& limits, bool binary) {
  const auto t0 = std::chrono::steady_clock::now();
  VectorInputs inputs(embeddings, limits, params);
  const std::size_t n = inputs.add_list(params, "embeddings", true);
  check_square_count(n, "embeddings", limits);
  inputs.resolve();
  const std::vector<float> similarities =
      naming_mismatch("embeddings", "embeddings[0]", [&] { return pairwise_similarities(inputs.views()); });
  const std::size_t dims = n == 0 ? 0 : inputs.views().front().size();
  const double ms = elapsed_ms(t0);
  CommandReply reply;
  inputs.add_cache_headers(reply);
  if (binary) {
    append_le_float32(reply.body, similarities);
    reply.content_type = "application/octet-stream";
    reply.headers.emplace_back("X-Pagekeeper-Type", "binary");
    reply.headers.emplace_back("X-Pagekeeper-Dtype", "f32");
    reply.headers.emplace_back("X-Pagekeeper-Byte-Order", "little-endian");
    reply.headers.emplace_back("X-Pagekeeper-Length", std::to_string(reply.body.size()));
    reply.headers.emplace_back("X-Pagekeeper-Count", std::to_string(n));
    reply.headers.emplace_back("X-Pagekeeper-Pairs", std::to_string(similarities.size()));
    reply.headers.emplace_back("X-Pagekeeper-Dimensions", std::to_string(dims));
    reply.headers.emplace_back("X-Pagekeeper-Duration-Ms", std::to_string(ms));
    return reply;
  }
  std::string& body = reply.body;
  body.reserve(similarities.size() * 12 + 128);
  body += R"({"similarities":)";
  append_json_floats(body, similarities);
  body += R"(,"count":)" + std::to_string(n) + R"(,"pairs":)" + std::to_string(similarities.size()) +
          R"(,"dimensions":)" + std::to_string(dims) + R"(,"durationMs":)" + nlohmann::json(ms).dump() + "}";
  return reply;
}

CommandReply top_k_command(const nlohmann::json& params, EmbeddingService& embeddings, const ServerLimits& limits) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::size_t k = optional_count(params, "k", "k", 10);
  const double threshold = optional_number(params, "threshold", "threshold", -1.0, 1.0).value_or(0.0);
  VectorInputs inputs(embeddings, limits, params);
  inputs.add_required(params, "query");
  const std::size_t n = inputs.add_list(params, "targets", true);
  inputs.resolve();
  const VectorView query = inputs.views().front();
  const std::span<const VectorView> targets(inputs.views().data() + 1, n);
  const std::vector<ScoredIndex> top = naming_mismatch(
      "targets", "query", [&] { return top_k_similar(query, targets, k, static_cast<float>(threshold)); });
  nlohmann::json results = nlohmann::json::array();
  for (const ScoredIndex& r : top) results.push_back({{"index", r.index}, {"similarity", as_decimal(r.similarity)}});
  CommandReply reply;
  reply.body = nlohmann::json{{"results", std::move(results)},
                              {"count", top.size()},
                              {"totalTargets", n},
                              {"k", k},
                              {"threshold", threshold},
                              {"dimensions", query.size()},
                              {"durationMs", elapsed_ms(t0)}}
                   .dump();
  inputs.add_cache_headers(reply);
  return reply;
}

CommandReply cluster_command(const nlohmann::json& params, EmbeddingService& embeddings, const ServerLimits& limits) {
  const auto t0 = std::chrono::steady_clock::now();
  const double min_similarity =
      optional_number(params, "minSimilarity", "min_similarity", -1.0, 1.0).value_or(0.7);
  const std::size_t min_size = optional_count(params, "minClusterSize", "min_cluster_size", 2);
  VectorInputs inputs(embeddings, limits, params);
  const std::size_t n = inputs.add_list(params, "embeddings", true);
  check_square_count(n, "embeddings", limits);
  inputs.resolve();
  const std::vector<VectorCluster> clusters = naming_mismatch("embeddings", "embeddings[0]", [&] {
    return cluster_by_similarity(inputs.views(), static_cast<float>(min_similarity), min_size);
  });
  nlohmann::json list = nlohmann::json::array();
  for (const VectorCluster& c : clusters)
    list.push_back({{"indices", c.indices}, {"strength", c.strength}, {"representative", c.representative}});
  CommandReply reply;
  reply.body = nlohmann::json{{"clusters", std::move(list)},
                              {"count", n},
                              {"clusterCount", clusters.size()},
                              {"dimensions", n == 0 ? 0 : inputs.views().front().size()},
                              {"minSimilarity", min_similarity},
                              {"minClusterSize", min_size},
                              {"durationMs", elapsed_ms(t0)}}
                   .dump();
  inputs.add_cache_headers(reply);
  return reply;
}

}  // namespace pagekeeper::server
