// The broker against the real PagedResourcePool (not a test double): relief through
// evict_at_least honours the pool's LRU order and its pins, and the background thread relieves
// a real pool without help.

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "broker/vector_pool.hpp"
#include "pagekeeper/broker.hpp"
#include "pagekeeper/pool.hpp"
#include "support/patience.hpp"

namespace pagekeeper {
namespace {

using Vector = std::vector<float>;
using EmbeddingPool = testing::VectorPool;

// 25 floats = 100 bytes per vector.
std::shared_ptr<EmbeddingPool> make_embedding_pool(std::string name, std::uint64_t max_bytes) {
  return std::make_shared<EmbeddingPool>(testing::vector_pool_config(std::move(name), max_bytes));
}

void load_vectors(EmbeddingPool& pool, int count) {
  for (int i = 0; i < count; ++i) {
    pool.load_or_share("text-" + std::to_string(i), [] { return Vector(25, 0.5f); });
  }
}

TEST(BrokerWithRealPool, AFullRealPoolIsLeftAlone) {
  auto pool = make_embedding_pool("full", 1000);
  load_vectors(*pool, 10);
  ASSERT_EQ(pool->usage_bytes(), 1000u);
  PressureBroker broker;
  broker.register_pool(pool);
  const auto report = broker.relieve();
  EXPECT_FALSE(report.triggered);
  EXPECT_EQ(report.global_tier_before, PressureTier::normal);
  EXPECT_EQ(pool->usage_bytes(), 1000u);
}

// A budget cut while pins held the entries leaves the pool past its budget once they are
// released, until something evicts: the broker does, in the pool's LRU order.
TEST(BrokerWithRealPool, RelievesARealPoolPastItsBudget) {
  auto pool = make_embedding_pool("real-embeddings", 1000);
  load_vectors(*pool, 9);
  ASSERT_EQ(pool->usage_bytes(), 900u);
  {
    std::vector<EmbeddingPool::PinHandle> pins;
    for (int i = 0; i < 9; ++i) pins.push_back(pool->pin("text-" + std::to_string(i)));
    pool->set_max_bytes(500);  // the pins keep it at 1.8 of the budget
  }
  ASSERT_EQ(pool->usage_bytes(), 900u);
  PressureBroker broker;
  std::vector<PressureAlert> alerts;
  broker.add_alert_sink([&](const PressureAlert& a) { alerts.push_back(a); });
  broker.register_pool(pool);
  pool->get("text-0");  // the oldest load is now the most recently used

  const auto report = broker.relieve();
  EXPECT_TRUE(report.triggered);
  ASSERT_EQ(report.pools_acted.size(), 1u);
  EXPECT_EQ(report.pools_acted[0].name, "real-embeddings");
  EXPECT_EQ(pool->usage_bytes(), 300u);  // 0.60 of 500 in whole 100-byte entries
  EXPECT_DOUBLE_EQ(report.pools_acted[0].pressure_after, 0.60);
  // LRU order: the six least recently used went, the refreshed one stayed.
  EXPECT_TRUE(pool->contains("text-0"));
  for (const char* gone : {"text-1", "text-2", "text-3", "text-4", "text-5", "text-6"}) {
    EXPECT_FALSE(pool->contains(gone)) << gone;
  }
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].bytes_freed, 600u);
  const auto snap = broker.snapshot();
  EXPECT_EQ(snap.pools[0].stats.evictions, 6u);
  EXPECT_EQ(snap.pools[0].stats.entry_count, 3u);
}

TEST(BrokerWithRealPool, APoolHeldPastItsBudgetByPinsIsHotAndStuck) {
  auto pool = make_embedding_pool("pinned", 1000);
  load_vectors(*pool, 10);
  std::vector<EmbeddingPool::PinHandle> pins;
  for (int i = 0; i < 10; ++i) pins.push_back(pool->pin("text-" + std::to_string(i)));
  PressureBroker broker;
  std::vector<PressureAlert> alerts;
  broker.add_alert_sink([&](const PressureAlert& a) { alerts.push_back(a); });
  broker.register_pool(pool);
  EXPECT_FALSE(broker.relieve().triggered);  // pinned but within its budget: normal
  EXPECT_TRUE(alerts.empty());

  pool->set_max_bytes(800);  // the pins now hold it past its budget
  const auto report = broker.relieve();
  EXPECT_FALSE(report.triggered);
  ASSERT_EQ(report.pools_stuck.size(), 1u);
  EXPECT_EQ(pool->usage_bytes(), 1000u);
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].tier, PressureTier::critical);
  EXPECT_EQ(alerts[0].bytes_freed, 0u);

  pins.clear();  // unpinned: the next pass can act, down to 0.60 of 800
  EXPECT_EQ(broker.relieve().bytes_freed, 600u);
}

TEST(BrokerWithRealPool, BackgroundThreadRelievesARealPool) {
  auto pool = make_embedding_pool("background", 1000);
  PressureBroker broker;
  broker.register_pool(pool);
  broker.start(std::chrono::milliseconds(20));
  load_vectors(*pool, 9);  // 0.9 full: normal
  {
    std::vector<EmbeddingPool::PinHandle> pins;
    for (int i = 0; i < 9; ++i) pins.push_back(pool->pin("text-" + std::to_string(i)));
    pool->set_max_bytes(500);  // past its budget, and evictable once the pins go
  }
  test_support::eventually([&] { return pool->usage_bytes() <= 300; });
  EXPECT_LE(pool->usage_bytes(), 300u);
  broker.stop();
}

}  // namespace
}  // namespace pagekeeper
