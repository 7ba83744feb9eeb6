// Ghosts of evicted keys: a pool counts re-loads of entries it evicted shortly before, with the
// budget that would have kept them, and the broker turns a steady stream of them into one
// thrashing alert. Also the miss cost a pool measures from its loaders.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "broker/vector_pool.hpp"
#include "pagekeeper/broker.hpp"
#include "pagekeeper/core_json.hpp"
#include "pagekeeper/detail/ghost_keys.hpp"
#include "pagekeeper/pool.hpp"

namespace pagekeeper {
namespace {

using pool_detail::GhostDepths;
using pool_detail::GhostKeys;

TEST(GhostKeys, RecallsTheDepthInBytesAndForgets) {
  GhostKeys ghost(8);
  ghost.remember(11, 100);
  ghost.remember(22, 50);
  ghost.remember(33, 10);
  // 11 was evicted first: its own 100 bytes and the 60 evicted after it.
  EXPECT_EQ(ghost.recall(11), std::optional<std::uint64_t>(160));
  EXPECT_EQ(ghost.recall(11), std::nullopt);  // forgotten once recalled
  EXPECT_EQ(ghost.recall(33), std::optional<std::uint64_t>(10));
  EXPECT_EQ(ghost.recall(44), std::nullopt);
  EXPECT_EQ(ghost.size(), 1u);
}

TEST(GhostKeys, KeepsOnlyTheLatestEvictionsAndAgreesWithAPlainMap) {
  // Hashes that collide in the index (same low bits) exercise probing and backward shifts.
  GhostKeys ghost(64);
  std::map<std::uint64_t, std::uint64_t> reference;  // hash -> eviction number
  std::vector<std::uint64_t> order;
  std::mt19937_64 random(7);
  std::uint64_t evictions = 0;
  for (int step = 0; step < 20000; ++step) {
    const std::uint64_t h = (random() % 300) * 256;  // 300 keys, all in a few index homes
    if (random() % 2 == 0) {
      reference.erase(h);
      ghost.remember(h, 1);
      reference[h] = evictions++;
    } else {
      const auto got = ghost.recall(h);
      const auto it = reference.find(h);
      // The reference keeps a key while it is among the last 64 evictions.
      const bool expected = it != reference.end() && evictions - it->second <= 64;
      ASSERT_EQ(got.has_value(), expected) << "step " << step;
      if (expected) {
        EXPECT_EQ(*got, evictions - it->second);
      }
      if (it != reference.end()) reference.erase(it);
    }
  }
  EXPECT_LE(ghost.size(), 64u);
}

TEST(GhostDepths, QuantileIsTheBucketCeilingCoveringTheShare) {
  GhostDepths depths;
  EXPECT_EQ(depths.quantile_bytes(0.9), 0u);
  for (int i = 0; i < 9; ++i) depths.add(3000);
  depths.add(1'000'000);
  const std::uint64_t q90 = depths.quantile_bytes(0.9);
  EXPECT_GE(q90, 3000u);
  EXPECT_LE(q90, 3000u * 1.19);  // 4 buckets per doubling: within 2^(1/4)
  EXPECT_GE(depths.quantile_bytes(1.0), 1'000'000u);
}

using Vector = std::vector<float>;
using Pool = testing::VectorPool;

// 25 floats: 100 bytes per entry, 100 entries in the budget, one shard.
std::shared_ptr<Pool> make_pool(std::string name, std::uint32_t ghost_keys = 256) {
  auto config = testing::vector_pool_config(std::move(name), 10'000);
  config.ghost_max_keys = ghost_keys;
  return std::make_shared<Pool>(config);
}

void cycle(Pool& pool, int keys, int rounds) {
  for (int round = 0; round < rounds; ++round) {
    for (int i = 0; i < keys; ++i) {
      pool.load_or_share("text-" + std::to_string(i), [] { return Vector(25, 0.5f); });
    }
  }
}

TEST(PoolGhost, AWorkingSetOfOnePointThreeBudgetsReloadsWhatItEvicted) {
  auto pool = make_pool("cycled");
  cycle(*pool, 130, 3);
  const PoolStats stats = pool->stats();
  // Every access after the first round misses (LRU over a loop longer than the cache), and
  // each such miss re-loads a key evicted 30 entries before.
  EXPECT_EQ(stats.misses, 390u);
  EXPECT_EQ(stats.ghost_hits, 260u);
  const auto ghost = pool->ghost();
  ASSERT_TRUE(ghost.has_value());
  EXPECT_EQ(ghost->hits, 260u);
  // 3,000 more bytes (the 30 entries beyond the budget) would have kept every one.
  EXPECT_GE(ghost->depths.quantile_bytes(0.9), 3000u);
  EXPECT_LE(ghost->depths.quantile_bytes(1.0), 3600u);
  EXPECT_EQ(nlohmann::json(stats).at("ghostHits"), 260u);
  pool->clear();
  EXPECT_EQ(pool->stats().ghost_hits, 0u);
}

TEST(PoolGhost, AFittingWorkingSetHasNoGhostHitsAndAPoolWithoutAGhostSaysSo) {
  auto pool = make_pool("fitting");
  cycle(*pool, 90, 3);
  EXPECT_EQ(pool->stats().ghost_hits, 0u);
  EXPECT_EQ(pool->ghost()->hits, 0u);
  EXPECT_FALSE(make_pool("none", 0)->ghost().has_value());
}

TEST(PoolGhost, TheGhostIsBounded) {
  auto pool = make_pool("small-ghost", 16);  // remembers 16 evictions: fewer than the 30 needed
  cycle(*pool, 130, 3);
  EXPECT_EQ(pool->stats().ghost_hits, 0u);
}

BrokerConfig thrash_config() {
  BrokerConfig config;
  config.thrash_window_misses = 100;
  return config;
}

TEST(BrokerThrashing, ACycledWorkingSetPastTheBudgetRaisesOneAlertThatSaysHowMuchMoreBudget) {
  auto pool = make_pool("thrashing");
  PressureBroker broker(thrash_config());
  std::vector<PressureAlert> alerts;
  broker.add_alert_sink([&](const PressureAlert& a) { alerts.push_back(a); });
  broker.register_pool(pool);
  cycle(*pool, 130, 1);  // the first round loads every key once
  broker.relieve();      // the first reading
  for (int pass = 0; pass < 8; ++pass) {
    cycle(*pool, 130, 1);
    broker.relieve();
  }
  // Passes 1..8 all thrash: delivered at the 1st, 2nd, 4th and 8th (backoff).
  ASSERT_EQ(alerts.size(), 4u);
  const PressureAlert& first = alerts.front();
  EXPECT_EQ(first.cause, PressureAlert::Cause::thrashing);
  EXPECT_EQ(first.tier_name, "thrashing");
  EXPECT_FALSE(first.cleared);
  EXPECT_GE(first.budget_wanted_bytes, 3000u);
  EXPECT_LE(first.budget_wanted_bytes, 3600u);
  EXPECT_NE(first.message.find("thrashing"), std::string::npos) << first.message;
  EXPECT_NE(first.message.find("more budget"), std::string::npos) << first.message;
  EXPECT_EQ(alerts.back().occurrences, 8u);
  const nlohmann::json j = first;
  EXPECT_EQ(j.at("cause"), "thrashing");
  EXPECT_EQ(j.at("budgetWantedBytes"), first.budget_wanted_bytes);
  EXPECT_EQ(j.get<PressureAlert>().cause, PressureAlert::Cause::thrashing);
  // Thrashing is reported, never relieved: the pool is within its budget.
  EXPECT_EQ(broker.snapshot().evictions_fired, 0u);

  // The working set shrinks to fit: once a window finds no re-loads, one "cleared".
  alerts.clear();
  for (int pass = 0; pass < 4; ++pass) {
    cycle(*pool, 60, 2);
    for (int i = 0; i < 200; ++i) pool->get("missing-" + std::to_string(pass * 1000 + i));
    broker.relieve();
  }
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_TRUE(alerts[0].cleared);
  EXPECT_EQ(alerts[0].cause, PressureAlert::Cause::thrashing);
}

// The window opens at registration: a burst that cycles the pool before the broker's first
// pass (a fast embedder against a 100 ms tick) is judged by that first pass.
TEST(BrokerThrashing, ABurstBeforeTheFirstPassIsJudgedByIt) {
  auto pool = make_pool("burst");
  PressureBroker broker(thrash_config());
  std::vector<PressureAlert> alerts;
  broker.add_alert_sink([&](const PressureAlert& a) { alerts.push_back(a); });
  broker.register_pool(pool);
  cycle(*pool, 130, 3);
  broker.relieve();
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].cause, PressureAlert::Cause::thrashing);
  EXPECT_NEAR(alerts[0].pressure, 260.0 / 390.0, 1e-9);
}

TEST(BrokerThrashing, AFittingWorkingSetRaisesNothing) {
  auto pool = make_pool("fits");
  PressureBroker broker(thrash_config());
  std::vector<PressureAlert> alerts;
  broker.add_alert_sink([&](const PressureAlert& a) { alerts.push_back(a); });
  broker.register_pool(pool);
  for (int pass = 0; pass < 6; ++pass) {
    cycle(*pool, 95, 1);
    for (int i = 0; i < 50; ++i) pool->get("never-" + std::to_string(pass * 100 + i));
    broker.relieve();
  }
  EXPECT_TRUE(alerts.empty());
  EXPECT_EQ(pool->stats().ghost_hits, 0u);
}

TEST(BrokerThrashing, ConfigIsValidated) {
  BrokerConfig config;
  config.thrash_ghost_share = 1.5;
  EXPECT_THROW(config.validate(), PressureConfigError);
  config.thrash_ghost_share = 0.2;
  config.thrash_window_misses = 0;
  EXPECT_THROW(config.validate(), PressureConfigError);
}

// A loader that takes at least `duration` of steady-clock time (it waits on the clock, so the
// figure is a lower bound whatever the machine's load).
Vector slow_vector(std::chrono::microseconds duration, std::size_t floats) {
  const auto until = std::chrono::steady_clock::now() + duration;
  while (std::chrono::steady_clock::now() < until) {
  }
  return Vector(floats, 1.0f);
}

TEST(PoolMissCost, MeasuredFromTheLoaderPerByteSoDifferentPoolsCompare) {
  auto cheap = make_pool("cheap");
  auto dear = make_pool("dear");
  EXPECT_EQ(cheap->miss_cost_seconds(), 0.0);  // nothing measured yet
  for (int i = 0; i < 5; ++i) {
    cheap->load_or_share("c" + std::to_string(i),
                         [] { return slow_vector(std::chrono::microseconds(200), 25); });
  }
  // The dear pool loads in batches: 4 keys of 100 bytes in at least 8 ms.
  for (int i = 0; i < 2; ++i) {
    const std::vector<std::string> keys{"a" + std::to_string(i), "b" + std::to_string(i),
                                        "c" + std::to_string(i), "d" + std::to_string(i)};
    dear->load_many(keys, [](const std::vector<std::string>& ks) {
      std::vector<Vector> out;
      out.push_back(slow_vector(std::chrono::microseconds(8000), 25));
      for (std::size_t k = 1; k < ks.size(); ++k) out.emplace_back(25, 1.0f);
      return out;
    });
  }
  EXPECT_GE(cheap->miss_cost_seconds(), 200e-6);
  EXPECT_GE(cheap->loader_seconds_per_byte(), 2e-6);
  EXPECT_GE(dear->miss_cost_seconds(), 2e-3);  // 8 ms over 4 keys
  // Loads are counted, hits are not: a hit leaves the figures alone.
  const double before = cheap->miss_cost_seconds();
  cheap->load_or_share("c0", [] { return Vector(25, 0.0f); });
  EXPECT_EQ(cheap->miss_cost_seconds(), before);
}

}  // namespace
}  // namespace pagekeeper
