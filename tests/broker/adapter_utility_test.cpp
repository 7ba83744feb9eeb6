// The adapter pager as a PoolUtility beside the embedding cache: under one global budget the
// broker moves bytes to the pager whose re-used adapters cost far more per byte to load than
// the cache's scanned texts, monotonically, and settles; under critical host memory it takes
// bytes first from whichever pool's curve says they are worth least, the pager included.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "adapter/adapter_test_support.hpp"
#include "pagekeeper/adapter_pager.hpp"
#include "pagekeeper/broker.hpp"
#include "pagekeeper/embedding_service.hpp"
#include "pagekeeper/host_memory.hpp"
#include "support/critical_host.hpp"

namespace pagekeeper {
namespace {

using adapter_test::ScratchDir;

constexpr std::uint64_t kAdapterBytes = 4096;

// Reads the adapter file like FileAdapterLoader, then takes at least 1 ms in all, as an
// upload to a device would: an adapter miss costs far more per byte than an embedding.
class DeviceUploadLoader final : public AdapterLoader {
 public:
  explicit DeviceUploadLoader(std::filesystem::path dir) : files_(std::move(dir)) {}
  std::string kind() const override { return "device-upload"; }
  std::shared_ptr<const LoadedAdapter> load(const AdapterInfo& info) override {
    const auto done = std::chrono::steady_clock::now() + std::chrono::milliseconds(1);
    auto weights = files_.load(info);
    std::this_thread::sleep_until(done);
    return weights;
  }

 private:
  FileAdapterLoader files_;
};

// A pager of `count` registered adapters of kAdapterBytes each, files on disk, curve on.
std::shared_ptr<AdapterPager> make_pager(const ScratchDir& dir, int count, std::uint64_t budget) {
  AdapterPagerConfig config;
  config.persona_id = "persona";
  config.budget_bytes = budget;
  config.curve_sampling_rate = 1.0;
  auto pager = std::make_shared<AdapterPager>(config, nullptr,
                                              std::make_shared<DeviceUploadLoader>(dir.path()));
  for (int i = 0; i < count; ++i) {
    const std::string name = "adapter-" + std::to_string(i);
    AdapterInfo info = adapter_test::adapter(name, "domain", kAdapterBytes);
    info.path = dir.write_file(name + ".bin", kAdapterBytes);
    pager->register_adapter(info);
  }
  return pager;
}

std::shared_ptr<EmbeddingService> make_cache(std::uint64_t budget) {
  EmbeddingServiceConfig config;
  config.max_bytes = budget;
  config.curve_sampling_rate = 1.0;
  config.map_storage_ahead = false;
  return std::make_shared<EmbeddingService>(config);
}

const PoolUtility& utility_of(const EmbeddingService& service) {
  return dynamic_cast<const PoolUtility&>(*service.resource_pool());
}

void embed_texts(EmbeddingService& service, const std::string& prefix, int first, int count) {
  std::vector<std::string> texts;
  for (int i = first; i < first + count; ++i) texts.push_back(prefix + " text " + std::to_string(i));
  service.embed_batch(texts);
}

TEST(AdapterUtility, APagerWithoutALoaderKnowsNoCurve) {
  AdapterPagerConfig config;
  config.persona_id = "decisions";
  config.budget_bytes = 1 << 20;
  config.curve_sampling_rate = 1.0;
  const AdapterPager pager(config, nullptr, nullptr);
  EXPECT_FALSE(pager.curve_known());  // nothing to time: the caller loads
  config.curve_sampling_rate = 1.5;
  EXPECT_THROW(AdapterPager(config, nullptr, nullptr), std::invalid_argument);
}

TEST(AdapterUtility, RegistryPagersSampleTheirCurvesAndTheBrokerWeighsThem) {
  // As pagekeeperd builds them under [broker] memory_budget_mb.
  ScratchDir dir;
  BrokerConfig config;
  config.memory_budget_bytes = 1 << 20;
  auto broker = std::make_shared<PressureBroker>(config);
  AdapterPagerDefaults defaults;
  defaults.budget_bytes = 4 * kAdapterBytes;
  defaults.curve_sampling_rate = 1.0;
  AdapterPagerRegistry registry(defaults, nullptr, std::make_shared<DeviceUploadLoader>(dir.path()),
                                broker);
  const auto pager = registry.get_or_create("persona");
  ASSERT_TRUE(pager->curve_known());
  AdapterInfo info = adapter_test::adapter("only", "domain", kAdapterBytes);
  info.path = dir.write_file("only.bin", kAdapterBytes);
  pager->register_adapter(info);
  pager->activate_skill("only");
  pager->activate_skill("only");
  broker->relieve();
  const auto snapshot = broker->snapshot();
  ASSERT_EQ(snapshot.pools.size(), 1u);
  EXPECT_EQ(snapshot.pools[0].name, "adapters:persona");
  ASSERT_TRUE(snapshot.pools[0].utility.has_value());
  EXPECT_EQ(snapshot.pools[0].utility->accesses_last_pass, 2u);
  EXPECT_GE(snapshot.pools[0].utility->miss_cost_seconds, 1e-3);
  // The pager's state reports the budget it has now (the broker's to change).
  EXPECT_EQ(pager->state()["memory_budget_bytes"].get<std::uint64_t>(), pager->capacity_bytes());
}

TEST(AdapterUtility, SetBudgetEvictsDownToItAndLoadsAreTimed) {
  ScratchDir dir;
  auto pager = make_pager(dir, 4, 4 * kAdapterBytes);
  for (int i = 0; i < 4; ++i) pager->activate_skill("adapter-" + std::to_string(i));
  EXPECT_EQ(pager->accesses(), 4u);
  EXPECT_GE(pager->miss_cost_seconds(), 1e-3);  // a 1 ms load of one adapter
  EXPECT_EQ(pager->usage_bytes(), 4 * kAdapterBytes);
  pager->set_budget(2 * kAdapterBytes);
  EXPECT_EQ(pager->capacity_bytes(), 2 * kAdapterBytes);
  EXPECT_EQ(pager->usage_bytes(), 2 * kAdapterBytes);
  EXPECT_EQ(pager->resident_names().size(), 2u);
  // The next activation evicts against the new budget.
  pager->activate_skill("adapter-0");
  EXPECT_LE(pager->usage_bytes(), 2 * kAdapterBytes);
  EXPECT_THROW(pager->set_budget(0), std::invalid_argument);
}

TEST(AdapterUtility, AGlobalBudgetMovesTowardTheCostlyAdaptersAndSettles) {
  ScratchDir dir;
  // 8 adapters re-used at random (32 KiB) in a pager given half of them; an embedding cache
  // of 64 KiB fed texts it never sees again.
  auto pager = make_pager(dir, 8, 4 * kAdapterBytes);
  auto cache = make_cache(64 * 1024);
  constexpr std::uint64_t kTotal = 4 * kAdapterBytes + 64 * 1024;
  BrokerConfig config;
  config.memory_budget_bytes = kTotal;
  PressureBroker broker(config);
  broker.register_pool(pager);
  broker.register_pool(cache->resource_pool());
  std::mt19937 random(11);
  std::uniform_int_distribution<int> pick(0, 7);
  int next_text = 0;
  std::vector<std::uint64_t> budgets;
  for (int pass = 0; pass < 12; ++pass) {
    for (int i = 0; i < 48; ++i) pager->activate_skill("adapter-" + std::to_string(pick(random)));
    embed_texts(*cache, "scanned", next_text, 48);
    next_text += 48;
    broker.relieve();
    budgets.push_back(pager->capacity_bytes());
    EXPECT_EQ(pager->capacity_bytes() + cache->resource_pool()->capacity_bytes(), kTotal) << pass;
  }
  // Both costs are measured, in one unit; an adapter miss costs far more.
  EXPECT_GT(utility_of(*cache).miss_cost_seconds(), 0.0);
  EXPECT_GT(pager->miss_cost_seconds(), 10 * utility_of(*cache).miss_cost_seconds());
  // The pager grew to about its working set, and only ever grew.
  EXPECT_GE(pager->capacity_bytes(), 7 * kAdapterBytes);
  EXPECT_LE(pager->capacity_bytes(), 10 * kAdapterBytes);
  for (std::size_t i = 1; i < budgets.size(); ++i) EXPECT_GE(budgets[i], budgets[i - 1]) << i;
  const std::uint64_t settled = pager->capacity_bytes();
  for (int pass = 0; pass < 4; ++pass) {
    for (int i = 0; i < 48; ++i) pager->activate_skill("adapter-" + std::to_string(pick(random)));
    embed_texts(*cache, "scanned", next_text, 48);
    next_text += 48;
    broker.relieve();
  }
  EXPECT_LE(std::max(pager->capacity_bytes(), settled) - std::min(pager->capacity_bytes(), settled),
            kTotal / 64);
  // The pager's curve and moves are in the broker's snapshot.
  for (const auto& p : broker.snapshot().pools) {
    if (p.name != pager->tier_name()) continue;
    ASSERT_TRUE(p.utility.has_value());
    EXPECT_FALSE(p.utility->budget_history.empty());
    EXPECT_GE(p.utility->miss_cost_seconds, 1e-3);
  }
}

TEST(AdapterUtility, CriticalHostMemoryTakesBytesFirstFromThePagerWhenItsBytesAreWorthLeast) {
  ScratchDir dir;
  // The pager cycles through 16 adapters with room for 8: every activation misses whatever
  // its budget, so its bytes save nothing. The cache re-uses 60 texts in room for about 40:
  // each byte it loses costs misses.
  auto pager = make_pager(dir, 16, 8 * kAdapterBytes);
  auto cache = make_cache(40 * 1632);
  auto host = std::make_shared<SimulatedHostMemory>(1'000'000, 500'000);
  // A pool may give all it has in a pass, the episode a quarter of what the pools hold: the
  // order alone decides who gives.
  const BrokerConfig config = test_support::shedding_config(1.0, 0.25);
  PressureBroker broker(config, host);
  broker.register_pool(cache->resource_pool());
  broker.register_pool(pager);
  std::mt19937 random(5);
  std::uniform_int_distribution<int> pick(0, 59);
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 16; ++i) pager->activate_skill("adapter-" + std::to_string(i));
    for (int i = 0; i < 120; ++i) embed_texts(*cache, "reused", pick(random), 1);
  }
  const std::uint64_t cache_before = cache->resource_pool()->usage_bytes();
  const std::uint64_t pager_before = pager->usage_bytes();
  ASSERT_EQ(pager_before, 8 * kAdapterBytes);

  host->set_used(990'000);  // critical, and far more over than both pools hold
  const auto report = broker.relieve();
  ASSERT_TRUE(report.shed.has_value());
  EXPECT_EQ(report.shed->host_tier, PressureTier::critical);
  // The episode may take a quarter of both pools: all of it from the pager.
  ASSERT_EQ(report.shed->pools_shed.size(), 1u);
  EXPECT_EQ(report.shed->pools_shed[0].name, pager->tier_name());
  EXPECT_GE(report.shed->bytes_shed, (cache_before + pager_before) / 4);
  EXPECT_EQ(cache->resource_pool()->usage_bytes(), cache_before);
  EXPECT_LT(pager->usage_bytes(), pager_before);
}

}  // namespace
}  // namespace pagekeeper
