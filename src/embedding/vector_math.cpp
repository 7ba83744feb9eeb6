// Similarity arithmetic (see vector_math.hpp).
//
// The kernels are written with the compiler's generic vector type (8 floats; GCC and Clang
// vector extensions), not intrinsics: the compiler maps it to the target's SIMD registers
// (two SSE registers, one AVX register, NEON pairs). Each kernel keeps several independent
// sums so consecutive multiply-adds do not wait on each other; a plain loop would not (the
// compiler may not reorder float additions, and GCC does not split a reduction into several
// accumulators by itself). The kernels are compiled twice on x86-64 (target_clones): for the
// baseline ISA (SSE2) and for Haswell's (AVX2 + FMA), picked once at load time by the CPU the
// process runs on, so one binary is fast on current hardware and still runs everywhere.

#include "pagekeeper/vector_math.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <queue>

namespace pagekeeper {

// Not under ThreadSanitizer: the clones' resolvers run before its runtime is ready (GCC
// defines __SANITIZE_THREAD__, Clang answers __has_feature).
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PAGEKEEPER_TSAN 1
#endif
#endif
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__) && !defined(PAGEKEEPER_TSAN)
#define PAGEKEEPER_SIMD_CLONES __attribute__((target_clones("arch=haswell", "default")))
#else
#define PAGEKEEPER_SIMD_CLONES
#endif

namespace {

using f32x8 = float __attribute__((vector_size(32)));
// The same, readable at any float's address (an unaligned vector load).
using f32x8_unaligned = float __attribute__((vector_size(32), aligned(4), may_alias));
constexpr std::size_t kWidth = 8;

// Helpers take and give vectors by reference: passing a 32-byte vector by value would have
// a different ABI in the two clones.
inline const f32x8_unaligned& vec_at(const float* p) { return *reinterpret_cast<const f32x8_unaligned*>(p); }

inline float sum8(const f32x8& v) {
  float s = 0;
  for (std::size_t l = 0; l < kWidth; ++l) s += v[l];
  return s;
}

// dot(a, b) over n floats.
PAGEKEEPER_SIMD_CLONES
float dot(const float* a, const float* b, std::size_t n) {
  f32x8 s0 = {}, s1 = {}, s2 = {}, s3 = {};
  std::size_t i = 0;
  for (; i + 4 * kWidth <= n; i += 4 * kWidth) {
    s0 += vec_at(a + i) * vec_at(b + i);
    s1 += vec_at(a + i + kWidth) * vec_at(b + i + kWidth);
    s2 += vec_at(a + i + 2 * kWidth) * vec_at(b + i + 2 * kWidth);
    s3 += vec_at(a + i + 3 * kWidth) * vec_at(b + i + 3 * kWidth);
  }
  for (; i + kWidth <= n; i += kWidth) s0 += vec_at(a + i) * vec_at(b + i);
  float sum = sum8((s0 + s1) + (s2 + s3));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// dot(a, b[r]) for four rows b[0..3] at once: `a` is loaded once for the four.
PAGEKEEPER_SIMD_CLONES
void dot4(const float* a, const float* b0, const float* b1, const float* b2, const float* b3, std::size_t n,
          float* out) {
  f32x8 s0 = {}, s1 = {}, s2 = {}, s3 = {}, t0 = {}, t1 = {}, t2 = {}, t3 = {};
  std::size_t i = 0;
  for (; i + 2 * kWidth <= n; i += 2 * kWidth) {
    const f32x8 x = vec_at(a + i);
    const f32x8 y = vec_at(a + i + kWidth);
    s0 += x * vec_at(b0 + i);
    s1 += x * vec_at(b1 + i);
    s2 += x * vec_at(b2 + i);
    s3 += x * vec_at(b3 + i);
    t0 += y * vec_at(b0 + i + kWidth);
    t1 += y * vec_at(b1 + i + kWidth);
    t2 += y * vec_at(b2 + i + kWidth);
    t3 += y * vec_at(b3 + i + kWidth);
  }
  float r[4] = {sum8(s0 + t0), sum8(s1 + t1), sum8(s2 + t2), sum8(s3 + t3)};
  for (; i < n; ++i) {
    r[0] += a[i] * b0[i];
    r[1] += a[i] * b1[i];
    r[2] += a[i] * b2[i];
    r[3] += a[i] * b3[i];
  }
  std::memcpy(out, r, sizeof(r));
}

// dot(q, t) and |t|^2 in one pass over t.
PAGEKEEPER_SIMD_CLONES
void dot_and_square(const float* q, const float* t, std::size_t n, float& dot_out, float& square_out) {
  f32x8 d0 = {}, d1 = {}, n0 = {}, n1 = {};
  std::size_t i = 0;
  for (; i + 2 * kWidth <= n; i += 2 * kWidth) {
    const f32x8 x = vec_at(t + i);
    const f32x8 y = vec_at(t + i + kWidth);
    d0 += vec_at(q + i) * x;
    d1 += vec_at(q + i + kWidth) * y;
    n0 += x * x;
    n1 += y * y;
  }
  float d = sum8(d0 + d1);
  float s = sum8(n0 + n1);
  for (; i < n; ++i) {
    d += q[i] * t[i];
    s += t[i] * t[i];
  }
  dot_out = d;
  square_out = s;
}

// |v| in double: a sum of float squares can overflow float, never double.
double norm(VectorView v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return std::sqrt(s);
}

float clamp_similarity(double s) { return static_cast<float>(std::clamp(s, -1.0, 1.0)); }

// The slow, exact path: everything in double.
float cosine_double(VectorView a, VectorView b) {
  const double na = norm(a);
  const double nb = norm(b);
  if (na == 0 || nb == 0) return 0;
  double d = 0;
  for (std::size_t i = 0; i < a.size(); ++i) d += static_cast<double>(a[i]) * b[i];
  return clamp_similarity(d / na / nb);
}

void check_same_lengths(std::span<const VectorView> vectors) {
  if (vectors.empty()) return;
  const std::size_t dims = vectors.front().size();
  for (std::size_t i = 1; i < vectors.size(); ++i)
    if (vectors[i].size() != dims) throw VectorDimensionError(dims, vectors[i].size(), i);
}

struct DisjointSets {
  explicit DisjointSets(std::size_t n) : parent(n) { std::iota(parent.begin(), parent.end(), std::size_t{0}); }
  std::size_t find(std::size_t x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  }
  void join(std::size_t a, std::size_t b) {
    a = find(a);
    b = find(b);
    if (a != b) parent[std::max(a, b)] = std::min(a, b);
  }
  std::vector<std::size_t> parent;
};

}  // namespace

VectorDimensionError::VectorDimensionError(std::size_t expected, std::size_t actual, std::optional<std::size_t> index)
    : InvalidArgument("Dimension mismatch: " + std::to_string(actual) + " vs " + std::to_string(expected) +
                       (index ? " (vector " + std::to_string(*index) + ")" : std::string())),
      expected(expected),
      actual(actual),
      index(index) {}

float cosine_similarity(VectorView a, VectorView b) {
  if (a.size() != b.size()) throw VectorDimensionError(b.size(), a.size());
  float d = 0, sb = 0;
  dot_and_square(a.data(), b.data(), b.size(), d, sb);
  const float sa = dot(a.data(), a.data(), a.size());
  if (!std::isfinite(d) || !std::isfinite(sa) || !std::isfinite(sb) || sa < 1e-30F || sb < 1e-30F)
    return cosine_double(a, b);
  return clamp_similarity(static_cast<double>(d) / std::sqrt(static_cast<double>(sa) * sb));
}

std::vector<float> pairwise_similarities(std::span<const VectorView> vectors) {
  check_same_lengths(vectors);
  const std::size_t n = vectors.size();
  if (n < 2) return {};
  const std::size_t dims = vectors.front().size();
  // Unit-length copies: each pair is then one dot product (a zero vector stays all zeros).
  std::vector<float> unit(n * dims);
  for (std::size_t i = 0; i < n; ++i) {
    const double length = norm(vectors[i]);
    float* row = unit.data() + i * dims;
    if (length == 0) continue;
    for (std::size_t k = 0; k < dims; ++k) row[k] = static_cast<float>(vectors[i][k] / length);
  }
  std::vector<float> out(n * (n - 1) / 2);
  auto row = [&](std::size_t i) { return unit.data() + i * dims; };
  auto put = [&](std::size_t i, std::size_t j, float s) { out[pair_index(n, i, j)] = std::clamp(s, -1.0F, 1.0F); };
  // Rows are taken kBlock at a time: each later row is then read from memory once per block
  // and dotted with the block's rows (in cache), four at a time, instead of once per row.
  constexpr std::size_t kBlock = 16;
  for (std::size_t i0 = 0; i0 < n; i0 += kBlock) {
    const std::size_t end = std::min(i0 + kBlock, n);
    for (std::size_t i = i0; i < end; ++i)
      for (std::size_t j = i + 1; j < end; ++j) put(i, j, dot(row(i), row(j), dims));
    for (std::size_t j = end; j < n; ++j) {
      std::size_t i = i0;
      for (; i + 4 <= end; i += 4) {
        float s[4];
        dot4(row(j), row(i), row(i + 1), row(i + 2), row(i + 3), dims, s);
        for (std::size_t q = 0; q < 4; ++q) put(i + q, j, s[q]);
      }
      for (; i < end; ++i) put(i, j, dot(row(i), row(j), dims));
    }
  }
  return out;
}

std::vector<ScoredIndex> top_k_similar(VectorView query, std::span<const VectorView> targets, std::size_t k,
                                       float threshold) {
  for (std::size_t i = 0; i < targets.size(); ++i)
    if (targets[i].size() != query.size()) throw VectorDimensionError(query.size(), targets[i].size(), i);
  if (k == 0 || targets.empty()) return {};
  const double query_norm = norm(query);
  // Better = higher similarity, then lower index. The heap's top is the worst kept.
  auto better = [](const ScoredIndex& x, const ScoredIndex& y) {
    return x.similarity > y.similarity || (x.similarity == y.similarity && x.index < y.index);
  };
  std::priority_queue<ScoredIndex, std::vector<ScoredIndex>, decltype(better)> kept(better);
  for (std::size_t i = 0; i < targets.size(); ++i) {
    const VectorView t = targets[i];
    float similarity = 0;
    if (query_norm != 0) {
      float d = 0, square = 0;
      dot_and_square(query.data(), t.data(), t.size(), d, square);
      if (std::isfinite(d) && std::isfinite(square) && square >= 1e-30F)
        similarity = clamp_similarity(static_cast<double>(d) / (query_norm * std::sqrt(static_cast<double>(square))));
      else
        similarity = cosine_double(query, t);
    }
    if (similarity < threshold) continue;
    const ScoredIndex candidate{i, similarity};
    if (kept.size() < k) {
      kept.push(candidate);
    } else if (better(candidate, kept.top())) {
      kept.pop();
      kept.push(candidate);
    }
  }
  std::vector<ScoredIndex> out(kept.size());
  for (std::size_t i = out.size(); i > 0; --i) {
    out[i - 1] = kept.top();
    kept.pop();
  }
  return out;
}

std::vector<VectorCluster> cluster_by_similarity(std::span<const VectorView> vectors, float min_similarity,
                                                 std::size_t min_cluster_size) {
  const std::vector<float> similarities = pairwise_similarities(vectors);
  const std::size_t n = vectors.size();
  min_cluster_size = std::max<std::size_t>(min_cluster_size, 1);
  if (n < min_cluster_size) return {};
  DisjointSets sets(n);
  for (std::size_t i = 0, p = 0; i < n; ++i)
    for (std::size_t j = i + 1; j < n; ++j, ++p)
      if (similarities[p] >= min_similarity) sets.join(i, j);
  // Members by component, each list ascending (indices visited in order).
  std::vector<std::vector<std::size_t>> members(n);
  for (std::size_t i = 0; i < n; ++i) members[sets.find(i)].push_back(i);

  std::vector<VectorCluster> clusters;
  for (std::vector<std::size_t>& m : members) {
    if (m.empty() || m.size() < min_cluster_size) continue;
    VectorCluster c;
    c.representative = m.front();
    if (m.size() == 1) {
      c.strength = 1.0;
    } else {
      // Each member's summed similarity to the others; the pair total counts each pair twice.
      std::vector<double> to_others(m.size(), 0.0);
      double total = 0;
      for (std::size_t a = 0; a < m.size(); ++a)
        for (std::size_t b = a + 1; b < m.size(); ++b) {
          const double s = similarities[pair_index(n, m[a], m[b])];
          to_others[a] += s;
          to_others[b] += s;
          total += s;
        }
      const double pairs = static_cast<double>(m.size()) * static_cast<double>(m.size() - 1) / 2;
      c.strength = total / pairs;
      const auto best = std::max_element(to_others.begin(), to_others.end());  // first of equals
      c.representative = m[static_cast<std::size_t>(best - to_others.begin())];
    }
    c.indices = std::move(m);
    clusters.push_back(std::move(c));
  }
  std::stable_sort(clusters.begin(), clusters.end(),
                   [](const VectorCluster& x, const VectorCluster& y) { return x.strength > y.strength; });
  return clusters;
}

}  // namespace pagekeeper
