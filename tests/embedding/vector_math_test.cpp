// Similarity arithmetic against a double-precision reference computed the naive way.

#include "pagekeeper/vector_math.hpp"
#include "support/vector_reference.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <vector>

namespace pagekeeper {
namespace {

using test_support::Matrix;

using test_support::random_vectors;
using test_support::reference_cosine;

std::vector<VectorView> views(const Matrix& m) { return {m.begin(), m.end()}; }

constexpr double kTolerance = 2e-6;

TEST(VectorMath, CosineMatchesReferenceForEveryTailLength) {
  for (std::size_t dims = 1; dims <= 80; ++dims) {
    const Matrix m = random_vectors(2, dims, static_cast<std::uint32_t>(dims));
    EXPECT_NEAR(cosine_similarity(m[0], m[1]), reference_cosine(m[0], m[1]), kTolerance) << dims;
  }
  const Matrix m = random_vectors(2, 384, 7);
  EXPECT_NEAR(cosine_similarity(m[0], m[1]), reference_cosine(m[0], m[1]), kTolerance);
  EXPECT_NEAR(cosine_similarity(m[0], m[0]), 1.0, kTolerance);
  std::vector<float> opposite = m[0];
  for (auto& x : opposite) x = -x;
  EXPECT_NEAR(cosine_similarity(m[0], opposite), -1.0, kTolerance);
}

TEST(VectorMath, ZeroAndEmptyVectorsGiveZero) {
  const std::vector<float> zero(16, 0.0F);
  const std::vector<float> ones(16, 1.0F);
  EXPECT_EQ(cosine_similarity(zero, ones), 0.0F);
  EXPECT_EQ(cosine_similarity(zero, zero), 0.0F);
  EXPECT_EQ(cosine_similarity(VectorView{}, VectorView{}), 0.0F);
}

TEST(VectorMath, HugeAndTinyValuesStayFinite) {
  const std::vector<float> big = {3e30F, 4e30F, 0};
  const std::vector<float> big2 = {4e30F, 3e30F, 0};
  EXPECT_NEAR(cosine_similarity(big, big2), 24.0 / 25.0, kTolerance);
  const std::vector<float> tiny = {3e-30F, 4e-30F, 0};
  EXPECT_NEAR(cosine_similarity(tiny, big2), 24.0 / 25.0, kTolerance);
  const Matrix rows = {big, big2, tiny};
  const std::vector<float> pairs = pairwise_similarities(views(rows));
  ASSERT_EQ(pairs.size(), 3U);
  EXPECT_NEAR(pairs[0], 24.0 / 25.0, kTolerance);
  EXPECT_NEAR(pairs[1], 1.0, kTolerance);
  const auto top = top_k_similar(big, views(rows), 3, -1.0F);
  ASSERT_EQ(top.size(), 3U);
  for (const auto& r : top) EXPECT_TRUE(std::isfinite(r.similarity));
}

TEST(VectorMath, DimensionMismatchIsATypedErrorNamingThePosition) {
  const std::vector<float> three = {1, 2, 3};
  const std::vector<float> two = {1, 2};
  try {
    cosine_similarity(three, two);
    FAIL() << "no error";
  } catch (const VectorDimensionError& e) {
    EXPECT_EQ(e.actual, 3U);
    EXPECT_EQ(e.expected, 2U);
    EXPECT_FALSE(e.index.has_value());
    EXPECT_STREQ(e.what(), "Dimension mismatch: 3 vs 2");
  }
  const Matrix rows = {two, two, three, two};
  try {
    pairwise_similarities(views(rows));
    FAIL() << "no error";
  } catch (const VectorDimensionError& e) {
    EXPECT_EQ(e.index, std::optional<std::size_t>(2));
    EXPECT_EQ(e.actual, 3U);
    EXPECT_EQ(e.expected, 2U);
  }
  EXPECT_THROW(top_k_similar(three, views(rows), 1, 0), VectorDimensionError);
  EXPECT_THROW(cluster_by_similarity(views(rows), 0.5F, 2), VectorDimensionError);
}

TEST(VectorMath, PairwiseSimilaritiesInRowOrder) {
  EXPECT_TRUE(pairwise_similarities({}).empty());
  const Matrix one = random_vectors(1, 8, 1);
  EXPECT_TRUE(pairwise_similarities(views(one)).empty());
  for (std::size_t n : {2U, 5U, 6U, 37U}) {
    Matrix m = random_vectors(n, 19, static_cast<std::uint32_t>(n));
    std::fill(m[1].begin(), m[1].end(), 0.0F);  // a zero row among them
    const std::vector<float> got = pairwise_similarities(views(m));
    ASSERT_EQ(got.size(), n * (n - 1) / 2);
    std::size_t p = 0;
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = i + 1; j < n; ++j, ++p) {
        EXPECT_EQ(pair_index(n, i, j), p);
        EXPECT_NEAR(got[p], reference_cosine(m[i], m[j]), kTolerance) << i << "," << j;
      }
  }
}

TEST(VectorMath, TopKMatchesSortedReference) {
  const Matrix targets = random_vectors(1000, 33, 3);
  const Matrix query = random_vectors(1, 33, 4);
  std::vector<std::pair<double, std::size_t>> ref;
  for (std::size_t i = 0; i < targets.size(); ++i) ref.emplace_back(reference_cosine(query[0], targets[i]), i);
  std::sort(ref.begin(), ref.end(), [](auto& x, auto& y) { return x.first > y.first; });
  for (std::size_t k : {1U, 10U, 100U}) {
    const auto got = top_k_similar(query[0], views(targets), k, -1.0F);
    ASSERT_EQ(got.size(), k);
    for (std::size_t r = 0; r < k; ++r) {
      EXPECT_EQ(got[r].index, ref[r].second) << r;
      EXPECT_NEAR(got[r].similarity, ref[r].first, kTolerance);
    }
  }
  // The threshold drops everything below it, even when that leaves fewer than k.
  const float threshold = 0.2F;
  const auto above = top_k_similar(query[0], views(targets), 1000, threshold);
  const auto expected =
      std::count_if(ref.begin(), ref.end(), [&](auto& r) { return r.first >= threshold; });
  EXPECT_EQ(static_cast<std::ptrdiff_t>(above.size()), expected);
  for (const auto& r : above) EXPECT_GE(r.similarity, threshold);
  EXPECT_TRUE(std::is_sorted(above.begin(), above.end(),
                             [](auto& x, auto& y) { return x.similarity > y.similarity; }));
  EXPECT_TRUE(top_k_similar(query[0], views(targets), 0, 0).empty());
  EXPECT_TRUE(top_k_similar(query[0], {}, 5, 0).empty());
}

TEST(VectorMath, TopKTiesGoToTheLowerIndex) {
  const Matrix targets = {{1, 0}, {0, 1}, {2, 0}, {1, 0}, {5, 0}};
  const auto got = top_k_similar(std::vector<float>{1, 0}, views(targets), 3, 0.5F);
  ASSERT_EQ(got.size(), 3U);
  EXPECT_EQ(got[0].index, 0U);
  EXPECT_EQ(got[1].index, 2U);
  EXPECT_EQ(got[2].index, 3U);
}

// Reference clustering: breadth-first search over the edges, all in double.
std::vector<VectorCluster> reference_clusters(const Matrix& m, double min_similarity, std::size_t min_size) {
  const std::size_t n = m.size();
  std::vector<int> seen(n, 0);
  std::vector<VectorCluster> out;
  for (std::size_t s = 0; s < n; ++s) {
    if (seen[s]) continue;
    std::vector<std::size_t> comp{s};
    seen[s] = 1;
    for (std::size_t q = 0; q < comp.size(); ++q)
      for (std::size_t j = 0; j < n; ++j)
        if (!seen[j] && j != comp[q] && reference_cosine(m[comp[q]], m[j]) >= min_similarity) {
          seen[j] = 1;
          comp.push_back(j);
        }
    if (comp.size() < std::max<std::size_t>(min_size, 1)) continue;
    std::sort(comp.begin(), comp.end());
    VectorCluster c;
    c.indices = comp;
    c.representative = comp[0];
    c.strength = 1.0;
    if (comp.size() > 1) {
      double total = 0, best = -2;
      for (std::size_t a : comp) {
        double mine = 0;
        for (std::size_t b : comp)
          if (a != b) mine += reference_cosine(m[a], m[b]);
        total += mine;
        if (mine > best + 1e-9) {
          best = mine;
          c.representative = a;
        }
      }
      c.strength = total / static_cast<double>(comp.size() * (comp.size() - 1));
    }
    out.push_back(c);
  }
  std::stable_sort(out.begin(), out.end(), [](auto& x, auto& y) { return x.strength > y.strength; });
  return out;
}

TEST(VectorMath, ClustersMatchReference) {
  // Three tight groups around random centres of different spreads, plus loners.
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  const Matrix centres = random_vectors(5, 24, 12);
  Matrix m;
  const int members[] = {6, 4, 3, 1, 1};
  const float spread[] = {0.15F, 0.05F, 0.3F, 0, 0};
  for (int c = 0; c < 5; ++c)
    for (int k = 0; k < members[c]; ++k) {
      std::vector<float> v = centres[static_cast<std::size_t>(c)];
      for (auto& x : v) x += spread[c] * normal(rng);
      m.push_back(v);
    }
  std::shuffle(m.begin(), m.end(), rng);
  for (std::size_t min_size : {1U, 2U, 4U}) {
    const auto got = cluster_by_similarity(views(m), 0.8F, min_size);
    const auto want = reference_clusters(m, 0.8, min_size);
    ASSERT_EQ(got.size(), want.size()) << min_size;
    for (std::size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].indices, want[i].indices);
      EXPECT_NEAR(got[i].strength, want[i].strength, kTolerance);
      EXPECT_EQ(got[i].representative, want[i].representative);
    }
  }
  EXPECT_EQ(cluster_by_similarity(views(m), 0.8F, 2).size(), 3U);
  EXPECT_TRUE(cluster_by_similarity(views(m), 0.8F, m.size() + 1).empty());
}

TEST(VectorMath, ClusterStrengthAndRepresentativeByHand) {
  // 0-1 and 1-2 are edges at 0.5, 0-2 is not (cos 120 deg = -0.5): one chain of three.
  const float s = std::sqrt(3.0F) / 2;
  const Matrix m = {{1, 0}, {0.5F, s}, {-0.5F, s}, {0, -1}};
  const auto got = cluster_by_similarity(views(m), 0.5F, 2);
  ASSERT_EQ(got.size(), 1U);
  EXPECT_EQ(got[0].indices, (std::vector<std::size_t>{0, 1, 2}));
  EXPECT_NEAR(got[0].strength, (0.5 + 0.5 - 0.5) / 3, kTolerance);
  EXPECT_EQ(got[0].representative, 1U);  // 0.5 + 0.5 against 0.5 - 0.5 for the ends
  const auto singles = cluster_by_similarity(views(m), 0.99F, 1);
  ASSERT_EQ(singles.size(), 4U);
  for (const auto& c : singles) EXPECT_EQ(c.strength, 1.0);
  EXPECT_EQ(singles[0].indices, (std::vector<std::size_t>{0}));
}

}  // namespace
}  // namespace pagekeeper
