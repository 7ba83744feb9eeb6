// The eviction policy of the daemon's caches: W-TinyLFU by default, "lru" from the TOML file
// ([embedding] policy) or the --cache-policy flag, a bad value refused naming the key.

#include <CLI/CLI.hpp>
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "pagekeeper/embedding_service.hpp"
#include "llama/llama_model_pool.hpp"
#include "pagekeeper/server_config.hpp"
#include "server/server_flags.hpp"
#include "support/config_error.hpp"

namespace pagekeeper {
namespace {

TEST(CachePolicyConfig, TinyLfuByDefaultAndLruFromTheFile) {
  EXPECT_EQ(ServerConfig{}.cache_policy, CachePolicy::kTinyLfu);
  EXPECT_EQ(parse_server_config("[embedding]\npolicy = \"lru\"\n", "t.toml").cache_policy, CachePolicy::kLru);
  EXPECT_EQ(parse_server_config("[embedding]\npolicy = \"tinylfu\"\n", "t.toml").cache_policy, CachePolicy::kTinyLfu);
  const std::string refused = test_support::config_error("[embedding]\npolicy = \"arc\"\n");
  EXPECT_NE(refused.find("embedding.policy = 'arc' is not one of 'tinylfu', 'lru'"), std::string::npos) << refused;
}

TEST(CachePolicyConfig, TheFlagOverridesTheFile) {
  CLI::App app;
  auto flags = server::add_server_flags(app);
  std::vector<std::string> args = {"--cache-policy", "lru"};
  std::reverse(args.begin(), args.end());  // CLI11 takes them last first
  app.parse(args);
  EXPECT_EQ(server::resolve_server_config(*flags).cache_policy, CachePolicy::kLru);

  CLI::App bad;
  server::add_server_flags(bad);
  std::vector<std::string> wrong = {"arc", "--cache-policy"};
  EXPECT_THROW(bad.parse(wrong), CLI::ValidationError);
}

TEST(CachePolicyConfig, TheCachesUseTheChosenPolicy) {
  EmbeddingService tiny{EmbeddingServiceConfig{}};
  EXPECT_EQ(tiny.pool()->config().policy->kind(), EvictionPolicy<EmbeddingVector>::Kind::kTinyLfu);
  EmbeddingServiceConfig lru_config;
  lru_config.policy = CachePolicy::kLru;
  EmbeddingService lru{lru_config};
  EXPECT_EQ(lru.pool()->config().policy->kind(), EvictionPolicy<EmbeddingVector>::Kind::kSizeAwareLru);

  LlamaModelPool::Config models;
  EXPECT_EQ(LlamaModelPool(models).resource_pool()->config().policy->kind(),
            EvictionPolicy<std::shared_ptr<LlamaModel>>::Kind::kTinyLfu);
  models.policy = CachePolicy::kLru;
  EXPECT_EQ(LlamaModelPool(models).resource_pool()->config().policy->kind(),
            EvictionPolicy<std::shared_ptr<LlamaModel>>::Kind::kSizeAwareLru);
}

}  // namespace
}  // namespace pagekeeper
