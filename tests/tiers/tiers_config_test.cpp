// [tiers] in pagekeeperd's TOML and open_tiers(): what is configured is what is built, and a
// bad value is an error naming the key.

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "pagekeeper/server_config.hpp"
#include "pagekeeper/tiers_config.hpp"
#include "support/config_error.hpp"
#include "tiers/tier_test_support.hpp"

namespace pagekeeper {
namespace {

TEST(TiersConfig, ReadFromToml) {
  const ServerConfig c = parse_server_config(R"(
[tiers]
dir = "/var/cache/pagekeeper"
disk_mb = 512
redis = ["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]
redis_timeout_ms = 20
redis_ttl_s = 86400
redis_namespace = "fleet-a:"
)",
                                             "test.toml");
  EXPECT_EQ(c.tiers.dir, "/var/cache/pagekeeper");
  EXPECT_EQ(c.tiers.disk_bytes, std::uint64_t{512} << 20);
  EXPECT_EQ(c.tiers.redis, (std::vector<std::string>{"redis://10.0.0.1:7000", "redis://10.0.0.2:7000"}));
  EXPECT_EQ(c.tiers.redis_timeout, std::chrono::milliseconds(20));
  EXPECT_EQ(c.tiers.redis_ttl, std::chrono::hours(24));
  EXPECT_EQ(c.tiers.redis_namespace, "fleet-a:");
  EXPECT_TRUE(c.tiers.enabled());
  EXPECT_FALSE(ServerConfig().tiers.enabled());
}

TEST(TiersConfig, BadValuesNameTheirKey) {
  const auto error_of = [](const std::string& toml) { return test_support::config_error(toml); };
  EXPECT_NE(error_of("[tiers]\nredis = [\"redis://h:notaport\"]\n").find("port"), std::string::npos);
  EXPECT_NE(error_of("[tiers]\ndisk_mb = 0\n").find("tiers.disk_mb"), std::string::npos);
  EXPECT_NE(error_of("[tiers]\nredis_timeout_ms = 0\n").find("tiers.redis_timeout_ms"), std::string::npos);
  EXPECT_NE(error_of("[tiers]\nsize = 3\n").find("unknown key 'tiers.size'"), std::string::npos);
  EXPECT_NE(error_of("[tiers]\nredis = \"redis://h:1\"\n").find("tiers.redis"), std::string::npos);
}

TEST(TiersConfig, OpensWhatIsConfigured) {
  EXPECT_EQ(open_tiers(TiersConfig{}).chain, nullptr);
  testing::TempDir dir;
  TiersConfig config;
  config.dir = dir.path() / "tier";
  config.disk_bytes = 8 << 20;
  config.redis = {"redis://127.0.0.1:1"};  // not contacted until a lookup
  const Tiers t = open_tiers(config);
  ASSERT_NE(t.chain, nullptr);
  ASSERT_EQ(t.chain->size(), 2u);
  EXPECT_EQ(t.chain->tiers()[0]->name(), "tier-disk");
  EXPECT_EQ(t.chain->tiers()[1]->name(), "redis");
  EXPECT_EQ(t.disk->tier_stats().max_bytes, std::uint64_t{8} << 20);
  const nlohmann::json j = tiers_json(t);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["maxBytes"], std::uint64_t{8} << 20);
  EXPECT_EQ(j[1]["name"], "redis");
}

}  // namespace
}  // namespace pagekeeper
