// Benchmarks of the similarity arithmetic (vector_math.hpp), each beside a naive scalar
// baseline in the same binary and run (a plain per-pair loop accumulating dot product and
// norms in one float each, which the compiler cannot vectorise without reassociating):
//   - all pairwise similarities of 1,000 vectors of 384 dimensions (499,500 pairs);
//   - the top 10 of 100,000 targets of 384 dimensions for one query.

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include <benchmark/benchmark.h>

#include "pagekeeper/vector_math.hpp"

namespace {

using pagekeeper::VectorView;

constexpr std::size_t kDims = 384;

struct VectorSet {
  std::vector<float> values;
  std::vector<VectorView> views;
};

VectorSet make_vectors(std::size_t n, std::uint32_t seed) {
  VectorSet s;
  s.values.resize(n * kDims);
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  for (float& x : s.values) x = normal(rng);
  for (std::size_t i = 0; i < n; ++i) s.views.emplace_back(s.values.data() + i * kDims, kDims);
  return s;
}

float naive_cosine(VectorView a, VectorView b) {
  float d = 0, na = 0, nb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    d += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return na == 0 || nb == 0 ? 0.0F : d / (std::sqrt(na) * std::sqrt(nb));
}

void BM_SimilarityMatrix(benchmark::State& state) {
  const VectorSet s = make_vectors(1000, 1);
  for (auto _ : state) {
    std::vector<float> out = pagekeeper::pairwise_similarities(s.views);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["pairs"] = 1000.0 * 999 / 2;
}
BENCHMARK(BM_SimilarityMatrix)->Unit(benchmark::kMillisecond);

void BM_SimilarityMatrixNaiveScalar(benchmark::State& state) {
  const VectorSet s = make_vectors(1000, 1);
  for (auto _ : state) {
    std::vector<float> out;
    out.reserve(1000 * 999 / 2);
    for (std::size_t i = 0; i < s.views.size(); ++i)
      for (std::size_t j = i + 1; j < s.views.size(); ++j) out.push_back(naive_cosine(s.views[i], s.views[j]));
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_SimilarityMatrixNaiveScalar)->Unit(benchmark::kMillisecond);

void BM_TopK(benchmark::State& state) {
  const VectorSet targets = make_vectors(100000, 2);
  const VectorSet query = make_vectors(1, 3);
  for (auto _ : state) {
    auto out = pagekeeper::top_k_similar(query.views[0], targets.views, 10, 0.0F);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * 100000);
}
BENCHMARK(BM_TopK)->Unit(benchmark::kMillisecond);

void BM_TopKNaiveScalar(benchmark::State& state) {
  const VectorSet targets = make_vectors(100000, 2);
  const VectorSet query = make_vectors(1, 3);
  for (auto _ : state) {
    std::vector<std::pair<float, std::size_t>> scored;
    for (std::size_t i = 0; i < targets.views.size(); ++i) {
      const float s = naive_cosine(query.views[0], targets.views[i]);
      if (s >= 0.0F) scored.emplace_back(s, i);
    }
    const std::size_t k = std::min<std::size_t>(10, scored.size());
    std::partial_sort(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(k), scored.end(),
                      [](auto& x, auto& y) { return x.first > y.first; });
    scored.resize(k);
    benchmark::DoNotOptimize(scored.data());
  }
  state.SetItemsProcessed(state.iterations() * 100000);
}
BENCHMARK(BM_TopKNaiveScalar)->Unit(benchmark::kMillisecond);

}  // namespace
