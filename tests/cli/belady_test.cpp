// Belady's MIN with bypass (cli/belady.hpp) against an exhaustive search over every
// admission and eviction choice on small unit-size traces, and its behaviour with sizes.

#include "cli/belady.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <map>
#include <random>
#include <utility>
#include <vector>

namespace pagekeeper::cli {
namespace {

// The most hits any cache of `capacity` keys can get on `keys` (ids below 16): on each
// miss it may store the key or not, evicting any resident to make room.
class BruteForce {
 public:
  BruteForce(const std::vector<std::uint32_t>& keys, unsigned capacity) : keys_(keys), capacity_(capacity) {}
  std::uint64_t best(std::size_t i = 0, std::uint32_t resident = 0) {
    if (i == keys_.size()) return 0;
    const auto memo = memo_.find({i, resident});
    if (memo != memo_.end()) return memo->second;
    const std::uint32_t bit = std::uint32_t{1} << keys_[i];
    std::uint64_t result = 0;
    if ((resident & bit) != 0) {
      result = 1 + best(i + 1, resident);
    } else {
      result = best(i + 1, resident);  // bypass
      if (static_cast<unsigned>(std::popcount(resident)) < capacity_) {
        result = std::max(result, best(i + 1, resident | bit));
      } else {
        for (std::uint32_t r = resident; r != 0; r &= r - 1) {
          const std::uint32_t victim = r & (~r + 1);
          result = std::max(result, best(i + 1, (resident & ~victim) | bit));
        }
      }
    }
    memo_[{i, resident}] = result;
    return result;
  }

 private:
  const std::vector<std::uint32_t>& keys_;
  unsigned capacity_;
  std::map<std::pair<std::size_t, std::uint32_t>, std::uint64_t> memo_;
};

TEST(Belady, MatchesExhaustiveSearchOnSmallTraces) {
  std::mt19937 rng(2024);
  for (int trial = 0; trial < 400; ++trial) {
    const unsigned distinct = 2 + rng() % 6;
    const unsigned capacity = 1 + rng() % 4;
    std::vector<std::uint32_t> keys(4 + rng() % 20);
    // Skewed draws, so some keys recur often and others rarely.
    for (auto& k : keys) k = std::min<std::uint32_t>(rng() % distinct, rng() % distinct);
    BruteForce brute(keys, capacity);
    const BeladyResult opt = belady_min(keys, {}, capacity);
    ASSERT_EQ(opt.hits, brute.best()) << "trial " << trial << " capacity " << capacity;
    ASSERT_EQ(opt.hits + opt.misses, keys.size());
    ASSERT_LE(opt.resident_entries, capacity);
  }
}

TEST(Belady, BypassesWhatComesBackLaterThanEveryResident) {
  // Capacity 1: a is resident and comes back next; b comes back only after a, so it is not
  // admitted (LRU would swap a out and lose its hit).
  const std::vector<std::uint32_t> keys = {0, 1, 0, 1};
  const BeladyResult opt = belady_min(keys, {}, 1);
  EXPECT_EQ(opt.hits, 1u);
  EXPECT_EQ(opt.bypassed, 2u);  // b twice (the second time it never comes back)
  EXPECT_EQ(opt.evictions, 0u);
}

TEST(Belady, SizesBoundTheResidentBytes) {
  std::mt19937 rng(9);
  std::vector<std::uint32_t> keys(5000);
  std::vector<std::uint64_t> sizes(keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    keys[i] = rng() % 300;
    sizes[i] = 1 + keys[i] % 7;  // a key keeps its size
  }
  sizes[10] = 1000;  // one request larger than the capacity
  const BeladyResult opt = belady_min(keys, sizes, 100);
  EXPECT_LE(opt.resident_bytes, 100u);
  EXPECT_EQ(opt.hits + opt.misses, keys.size());
  EXPECT_GE(opt.rejected_oversize + opt.hits, 1u);
  EXPECT_THROW(belady_min(keys, std::vector<std::uint64_t>(3, 1), 100), std::invalid_argument);
}

}  // namespace
}  // namespace pagekeeper::cli
