// The similarity commands of pagekeeperd (embedding/similarity, similarity-matrix, top-k,
// cluster): parameters in, answer out, independent of the HTTP engine that carries them.
//
// Every vector parameter accepts, per vector, either an array of numbers or a text; texts
// are embedded through the embedding cache with the request's `model` (default: the default
// model), so they are cached and counted like every other embedding call, and the answer
// carries the X-Pagekeeper-Cache-* headers of that call. Refusals are RequestErrors naming the
// field: a vector that is neither (400 invalid_type), a number outside float32's range (400
// invalid_value), vectors of different lengths (400 dimension_mismatch, naming the position),
// more than limits.max_texts_per_request texts, or vectors where the answer grows with the
// square of their count (400 limit_exceeded).
//
// Thread safety: pure functions of their arguments and the (thread-safe) EmbeddingService.

#pragma once

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "pagekeeper/embedding_service.hpp"
#include "pagekeeper/server_config.hpp"

namespace pagekeeper::server {

// What a command answers: a body of `content_type` and extra header fields.
struct CommandReply {
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
};

// {a, b, model?} -> {similarity, dimensions}.
CommandReply similarity_command(const nlohmann::json& params, EmbeddingService& embeddings,
                                const ServerLimits& limits);

// {embeddings, model?} -> {similarities, count, pairs, dimensions, durationMs}, the pairs in
// row order (0,1), (0,2), ..., (n-2,n-1); with `binary`, the similarities as raw
// little-endian float32 and the rest in X-Pagekeeper-* headers.
CommandReply similarity_matrix_command(const nlohmann::json& params, EmbeddingService& embeddings,
                                       const ServerLimits& limits, bool binary);

// {query, targets, k = 10, threshold = 0, model?} ->
// {results: [{index, similarity}], count, totalTargets, k, threshold, dimensions, durationMs}.
CommandReply top_k_command(const nlohmann::json& params, EmbeddingService& embeddings, const ServerLimits& limits);

// {embeddings, minSimilarity = 0.7, minClusterSize = 2, model?} ->
// {clusters: [{indices, strength, representative}], count, clusterCount, dimensions,
//  minSimilarity, minClusterSize, durationMs}.
CommandReply cluster_command(const nlohmann::json& params, EmbeddingService& embeddings, const ServerLimits& limits);

}  // namespace pagekeeper::server
