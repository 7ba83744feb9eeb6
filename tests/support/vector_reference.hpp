// What similarity tests compare against: cosine similarity computed the naive way in double
// precision, and reproducible random vectors.
//
// Thread safety: pure functions.

#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace pagekeeper::test_support {

using Matrix = std::vector<std::vector<float>>;

// 0 when either vector has norm 0, as pagekeeper::cosine_similarity.
inline double reference_cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  double na = 0;
  double nb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    d += static_cast<double>(a[i]) * b[i];
    na += static_cast<double>(a[i]) * a[i];
    nb += static_cast<double>(b[i]) * b[i];
  }
  if (na == 0 || nb == 0) return 0;
  return d / std::sqrt(na) / std::sqrt(nb);
}

// `n` vectors of `dims` standard-normal floats drawn from a generator seeded with `seed`.
inline Matrix random_vectors(std::size_t n, std::size_t dims, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  Matrix m(n, std::vector<float>(dims));
  for (auto& v : m)
    for (auto& x : v) x = normal(rng);
  return m;
}

}  // namespace pagekeeper::test_support
