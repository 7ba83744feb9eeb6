// pagekeeper/vector_math.hpp
//
// Similarity arithmetic over embedding vectors: cosine similarity, all pairwise similarities
// of a set, the k targets most similar to a query, and clusters of similar vectors. These are
// what the daemon's embedding/similarity, similarity-matrix, top-k and cluster commands
// compute; they work on plain float spans, so vectors from the embedding cache
// (EmbeddingVector::values()) and vectors a caller sent are treated alike.
//
// Conventions shared by every function:
//   - Cosine similarity is dot(a, b) / (|a| |b|), clamped to [-1, 1]. A vector whose norm is 0
//     (all zeros, or empty) has similarity 0 with everything, itself included.
//   - Vectors of different lengths are refused with VectorDimensionError, which names the
//     offending vector's position and both lengths; nothing is computed.
//   - Results are float; they agree with a double-precision computation to about 1e-6
//     (accumulation is in float, several lanes at a time). Sums are formed in double where
//     float could overflow (norms), so finite inputs give finite results.
//
// Thread safety: pure functions; safe to call concurrently.

#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "pagekeeper/errors.hpp"

namespace pagekeeper {

using VectorView = std::span<const float>;

// Two vectors that should have the same length do not. `index` is the position of the
// offending vector in its list (nullopt when comparing two single vectors); `expected` the
// length it should have had (the query's, or the first vector's), `actual` its own. The
// message is "Dimension mismatch: <actual> vs <expected>" plus the position when known.
class VectorDimensionError : public InvalidArgument {
 public:
  VectorDimensionError(std::size_t expected, std::size_t actual, std::optional<std::size_t> index = std::nullopt);
  std::size_t expected;
  std::size_t actual;
  std::optional<std::size_t> index;
};

// Cosine similarity of `a` and `b`. Throws VectorDimensionError(b.size(), a.size()) when the
// lengths differ.
float cosine_similarity(VectorView a, VectorView b);

// The n(n-1)/2 cosine similarities of every pair i < j of `vectors`, in row order (0,1),
// (0,2), ..., (0,n-1), (1,2), ..., (n-2,n-1). Fewer than two vectors give an empty result.
// Throws VectorDimensionError naming the first vector whose length differs from vectors[0].
// Memory: the result plus one normalised copy of the vectors.
std::vector<float> pairwise_similarities(std::span<const VectorView> vectors);

// Position of pair (i, j), i < j < n, in pairwise_similarities' result.
constexpr std::size_t pair_index(std::size_t n, std::size_t i, std::size_t j) noexcept {
  return i * (2 * n - i - 1) / 2 + (j - i - 1);
}

struct ScoredIndex {
  std::size_t index = 0;  // position in the targets
  float similarity = 0;
};

// The targets most similar to `query`: those with similarity >= `threshold`, sorted by
// similarity descending (ties: lower index first), at most `k` of them. Throws
// VectorDimensionError naming the first target whose length differs from the query's.
// Memory: O(k) beyond the result; the targets are read once, in order.
std::vector<ScoredIndex> top_k_similar(VectorView query, std::span<const VectorView> targets, std::size_t k,
                                       float threshold);

struct VectorCluster {
  std::vector<std::size_t> indices;  // ascending
  double strength = 0;               // mean similarity over the cluster's pairs (1 for one member)
  std::size_t representative = 0;    // member with the highest mean similarity to the others
};

// Clusters of `vectors`: the connected components of the graph joining every pair whose
// similarity is >= `min_similarity`, without the components smaller than `min_cluster_size`
// (0 counts as 1), sorted by strength descending (ties: lowest first index first). A
// representative tie goes to the lower index. Throws VectorDimensionError as
// pairwise_similarities does. Memory: the pairwise similarities (n(n-1)/2 floats).
std::vector<VectorCluster> cluster_by_similarity(std::span<const VectorView> vectors, float min_similarity,
                                                 std::size_t min_cluster_size);

}  // namespace pagekeeper
