// LlamaModelPool: loaded models live in a PagedResourcePool charged at their tensor bytes,
// loaded once under concurrent demand, pinned while an embedder uses them and evictable (the
// llama_model freed) once idle, by the pool's budget or by the PressureBroker.

#include "llama/llama_model_pool.hpp"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "embedding/llama_test_support.hpp"
#include "pagekeeper/broker.hpp"
#include "pagekeeper/llama_embedder.hpp"
#include "support/critical_host.hpp"

namespace pagekeeper {
namespace {

using test_support::critical_host;

class LlamaModelPoolTest : public ::testing::Test {
 protected:
  void SetUp() override { PAGEKEEPER_REQUIRE_LLAMA(); }
};

#ifdef PAGEKEEPER_HAVE_LLAMA

TEST_F(LlamaModelPoolTest, ConcurrentAcquiresShareOneLoadedModel) {
  LlamaModelPool pool({});
  const auto path = llama_test::tiny_model();
  std::vector<std::shared_ptr<LlamaModelLease>> leases(4);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < leases.size(); ++i) {
    threads.emplace_back([&, i] { leases[i] = pool.acquire(path); });
  }
  for (auto& t : threads) t.join();
  for (const auto& lease : leases) {
    ASSERT_TRUE(lease);
    EXPECT_TRUE(lease->pinned());
    EXPECT_EQ(lease->model(), leases[0]->model());
  }
  const PoolStats stats = pool.resource_pool()->stats();
  EXPECT_EQ(stats.entry_count, 1u);
  EXPECT_EQ(stats.total_bytes, leases[0]->model()->size_bytes());
  EXPECT_EQ(stats.pinned_count, 1u);
  // The same file through another spelling of its path is the same entry.
  const auto again = pool.acquire(path.parent_path() / "." / path.filename());
  EXPECT_EQ(again->model(), leases[0]->model());
}

TEST_F(LlamaModelPoolTest, PinnedWhileAnEmbedderUsesItEvictableWhenIdle) {
  LlamaModelPool pool({});
  const auto cache = pool.resource_pool();
  LlamaEmbedderConfig config;
  config.model_path = llama_test::tiny_model();
  config.threads = 1;
  std::weak_ptr<LlamaModel> watched;
  {
    auto embedder = LlamaEmbedder::create(pool, config);
    watched = embedder->model();
    const std::vector<std::string> texts = {"in use"};
    EXPECT_EQ(embedder->embed(texts).size(), 1u);
    EXPECT_EQ(cache->evict_at_least(std::uint64_t{1} << 40), 0u) << "evicted a model in use";
    EXPECT_EQ(cache->stats().entry_count, 1u);
    // A second embedder on the same file reuses the loaded model.
    auto second = LlamaEmbedder::create(pool, config);
    EXPECT_EQ(second->model(), embedder->model());
  }
  EXPECT_FALSE(watched.expired()) << "the idle model should stay cached";
  const std::uint64_t size = watched.lock()->size_bytes();
  EXPECT_EQ(cache->evict_at_least(1), size);
  EXPECT_EQ(cache->usage_bytes(), 0u);
  EXPECT_TRUE(watched.expired()) << "eviction must free the llama_model";
}

TEST_F(LlamaModelPoolTest, BrokerReliefFreesAnIdleModelButNotOneInUse) {
  const auto path = llama_test::tiny_model();
  const std::uint64_t size = LlamaModel::load(path)->size_bytes();
  LlamaModelPool pool({.name = "llama-models", .max_bytes = size + size / 50});
  // A host at critical pressure, and a broker allowed to shed a whole pool in one pass.
  const BrokerConfig broker_config = test_support::shedding_config(1.0, 1.0);
  PressureBroker broker(broker_config, critical_host());
  broker.register_pool(pool.resource_pool());
  LlamaEmbedderConfig config;
  config.model_path = path;
  config.threads = 1;
  auto embedder = LlamaEmbedder::create(pool, config);
  ReliefReport busy = broker.relieve();
  EXPECT_EQ(busy.bytes_freed, 0u) << "the broker evicted a model in use";
  ASSERT_TRUE(busy.shed.has_value());
  ASSERT_EQ(busy.shed->pools_shed.size(), 1u);
  EXPECT_EQ(busy.shed->pools_shed[0].bytes_freed, 0u);
  const std::vector<std::string> texts = {"still running"};
  EXPECT_EQ(embedder->embed(texts).size(), 1u);
  embedder.reset();
  ReliefReport idle = broker.relieve();
  EXPECT_EQ(idle.bytes_freed, size);
  EXPECT_EQ(pool.resource_pool()->usage_bytes(), 0u);
}

TEST_F(LlamaModelPoolTest, FailedLoadCachesNothing) {
  LlamaModelPool pool({});
  const auto missing = llama_test::scratch_dir() / "absent.gguf";
  EXPECT_THROW(pool.acquire(missing), LlamaError);
  EXPECT_THROW(pool.acquire(missing), LlamaError);
  EXPECT_EQ(pool.resource_pool()->stats().entry_count, 0u);
  EXPECT_EQ(pool.resource_pool()->stats().inflight, 0u);
  LlamaEmbedderConfig config;
  config.model_path = missing;
  EXPECT_THROW(LlamaEmbedder::create(pool, config), EmbedderError);
}

TEST_F(LlamaModelPoolTest, ModelLargerThanTheBudgetStillServesUnpinned) {
  LlamaModelPool pool({.name = "tiny-budget", .max_bytes = 1024});
  const auto lease = pool.acquire(llama_test::tiny_model());
  EXPECT_FALSE(lease->pinned());
  EXPECT_EQ(pool.resource_pool()->stats().entry_count, 0u);
  auto embedder = LlamaEmbedder::create(lease, {});
  const std::vector<std::string> texts = {"uncached model"};
  EXPECT_EQ(embedder->embed(texts)[0].size(), 32u);
}

TEST_F(LlamaModelPoolTest, WithCurveSamplingThePoolIsAUtilityPoolTheBrokerWeighs) {
  const auto path = llama_test::tiny_model();
  LlamaModelPool pool({.name = "models", .max_bytes = std::uint64_t{1} << 30, .curve_sampling_rate = 1.0});
  const auto cache = pool.resource_pool();
  ASSERT_TRUE(cache->curve_known());
  BrokerConfig config;
  config.memory_budget_bytes = std::uint64_t{2} << 30;
  PressureBroker broker(config);
  broker.register_pool(cache);
  std::uint64_t size = 0;
  for (int i = 0; i < 4; ++i) size = pool.acquire(path)->model()->size_bytes();  // leases dropped
  EXPECT_EQ(cache->accesses(), 4u);
  // One load, timed: the miss cost is LlamaModel::load's seconds for the model's bytes.
  EXPECT_GT(cache->miss_cost_seconds(), 0.0);
  EXPECT_NEAR(cache->loader_seconds_per_byte() * static_cast<double>(size), cache->miss_cost_seconds(),
              cache->miss_cost_seconds() * 1e-9);
  // The curve: misses below the model's size, only the first (cold) one a little above it
  // (distances are counted in buckets of about 9%).
  EXPECT_DOUBLE_EQ(cache->miss_ratio(size / 2), 1.0);
  EXPECT_NEAR(cache->miss_ratio(size + size / 10), 0.25, 0.01);
  broker.relieve();
  const auto snapshot = broker.snapshot();
  ASSERT_EQ(snapshot.pools.size(), 1u);
  ASSERT_TRUE(snapshot.pools[0].utility.has_value());
  EXPECT_EQ(snapshot.pools[0].utility->accesses_last_pass, 4u);
  EXPECT_GT(snapshot.pools[0].utility->miss_cost_seconds, 0.0);
}

#endif  // PAGEKEEPER_HAVE_LLAMA

}  // namespace
}  // namespace pagekeeper
