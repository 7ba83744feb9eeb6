// The pool's tier seam (PoolConfig::tiers) on its own: keys the tiers hold never reach the
// loader, loaded values are handed down, single flight covers the tier lookup, per-call
// accounting says where each value came from.

#include <latch>
#include <map>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "pagekeeper/pool.hpp"

namespace pagekeeper {
namespace {

// An in-process tier: a map, with counters of what the pool asked of it.
class MapTiers final : public SecondaryTiers<int, int> {
 public:
  std::vector<std::optional<int>> lookup(const std::vector<int>& keys, std::vector<std::size_t>& found_in) override {
    std::lock_guard lock(mutex_);
    found_in.assign(keys.size(), 0);
    std::vector<std::optional<int>> out;
    for (int k : keys) {
      ++looked_up_[k];
      auto it = held_.find(k);
      out.push_back(it == held_.end() ? std::nullopt : std::optional<int>(it->second));
    }
    return out;
  }
  void loaded(const std::vector<int>& keys, const std::vector<int>& values) override {
    std::lock_guard lock(mutex_);
    for (std::size_t i = 0; i < keys.size(); ++i) held_[keys[i]] = values[i];
  }
  void hold(int k, int v) {
    std::lock_guard lock(mutex_);
    held_[k] = v;
  }
  int looked_up(int k) {
    std::lock_guard lock(mutex_);
    return looked_up_[k];
  }
  std::size_t held() {
    std::lock_guard lock(mutex_);
    return held_.size();
  }

 private:
  std::mutex mutex_;
  std::map<int, int> held_;
  std::map<int, int> looked_up_;
};

using Pool = PagedResourcePool<int, int>;

Pool::Config config_with(std::shared_ptr<MapTiers> tiers) {
  Pool::Config c;
  c.name = "tiered";
  c.max_bytes = 1 << 20;
  c.sizer = [](const int&) { return std::uint64_t{8}; };
  c.policy = EvictionPolicy<int>::lru();
  c.tiers = std::move(tiers);
  return c;
}

TEST(PoolTiers, HeldKeysNeverReachTheLoaderAndLoadedValuesGoDown) {
  auto tiers = std::make_shared<MapTiers>();
  tiers->hold(1, 100);
  tiers->hold(3, 300);
  Pool pool(config_with(tiers));
  std::vector<int> asked;
  LoadManyStats stats;
  const std::vector<int> values = pool.load_many(
      {1, 2, 3, 4, 2},
      [&](const std::vector<int>& keys) {
        asked = keys;
        std::vector<int> out;
        for (int k : keys) out.push_back(k * 10);
        return out;
      },
      &stats);
  EXPECT_EQ(values, (std::vector<int>{100, 20, 300, 40, 20}));
  std::sort(asked.begin(), asked.end());
  EXPECT_EQ(asked, (std::vector<int>{2, 4}));
  EXPECT_EQ(stats.loaded, 5u);
  EXPECT_EQ(stats.from_tiers, 2u);
  EXPECT_EQ(stats.from_tier[0], 2u);
  EXPECT_EQ(stats.loader_keys, 2u);
  EXPECT_EQ(tiers->held(), 4u);      // 2 and 4 written down
  EXPECT_TRUE(pool.contains(1));     // promoted into memory
  EXPECT_EQ(*pool.get(3), 300);
  EXPECT_EQ(tiers->looked_up(1), 1);
}

TEST(PoolTiers, LoadOrShareAsksTheTiersFirst) {
  auto tiers = std::make_shared<MapTiers>();
  tiers->hold(7, 70);
  Pool pool(config_with(tiers));
  int loader_calls = 0;
  LoadManyStats stats;
  EXPECT_EQ(pool.load_or_share(7, [&] { return ++loader_calls; }, &stats), 70);
  EXPECT_EQ(loader_calls, 0);
  EXPECT_EQ(stats.from_tiers, 1u);
  EXPECT_EQ(stats.loader_keys, 0u);
  EXPECT_EQ(pool.load_or_share(8, [&] { return ++loader_calls; }, &stats), 1);
  EXPECT_EQ(stats.from_tiers, 0u);
  EXPECT_EQ(tiers->held(), 2u);
}

TEST(PoolTiers, LoaderFailureWritesNothingDown) {
  auto tiers = std::make_shared<MapTiers>();
  Pool pool(config_with(tiers));
  EXPECT_THROW(pool.load_many({1, 2}, [](const std::vector<int>&) -> std::vector<int> {
                 throw std::runtime_error("down");
               }),
               std::runtime_error);
  EXPECT_EQ(tiers->held(), 0u);
  EXPECT_FALSE(pool.contains(1));
}

TEST(PoolTiersConcurrency, SingleFlightCoversTheTierLookup) {
  auto tiers = std::make_shared<MapTiers>();
  for (int k = 0; k < 100; k += 2) tiers->hold(k, k);
  Pool pool(config_with(tiers));
  std::atomic<int> loaded{0};
  constexpr int kThreads = 4;
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  std::vector<int> keys(100);
  for (int k = 0; k < 100; ++k) keys[static_cast<std::size_t>(k)] = k;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      const auto values = pool.load_many(keys, [&](const std::vector<int>& missing) {
        loaded += static_cast<int>(missing.size());
        return missing;
      });
      for (int k = 0; k < 100; ++k) EXPECT_EQ(values[static_cast<std::size_t>(k)], k);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(loaded.load(), 50);
  for (int k = 0; k < 100; ++k) EXPECT_EQ(tiers->looked_up(k), 1) << k;
}

}  // namespace
}  // namespace pagekeeper
