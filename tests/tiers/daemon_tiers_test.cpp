// The fleet targets with real pagekeeperd processes, a real redis-server and a real LMDB
// directory: daemon A (--tier-dir and --redis) embeds 2,000 texts; daemon B (only --redis,
// empty memory) answers them with 0 texts embedded; A restarted with only its --tier-dir
// answers them with 0 embedded; with Redis killed, B keeps answering 200 for old and new
// texts.

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "support/daemon_process.hpp"
#include "tiers/redis_test_support.hpp"

namespace pagekeeper {
namespace {

using testing::RedisServer;
using testing::TempDir;

// A pagekeeperd process on a free port with four threads and no host-memory watch, stopped
// with SIGTERM (killed if the test fails first).
class DaemonProcess : public test_support::PagekeeperdProcess {
 public:
  explicit DaemonProcess(const std::vector<std::string>& flags)
      : PagekeeperdProcess(with_defaults(flags)) {}

  struct Answer {
    int status = 0;
    std::size_t misses = 0;
    std::size_t tier_hits = 0;
    std::string by_tier;
    nlohmann::json body;
  };
  Answer embed(const std::vector<std::string>& texts) const {
    httplib::Client client("127.0.0.1", port());
    client.set_read_timeout(30, 0);
    auto r = client.Post("/v1/embeddings", nlohmann::json{{"input", texts}}.dump(), "application/json");
    Answer a;
    if (!r) return a;
    a.status = r->status;
    a.misses = std::stoul("0" + r->get_header_value("X-Pagekeeper-Cache-Misses"));
    a.tier_hits = std::stoul("0" + r->get_header_value("X-Pagekeeper-Cache-Tier-Hits"));
    a.by_tier = r->get_header_value("X-Pagekeeper-Cache-Tier-Hits-By-Tier");
    a.body = nlohmann::json::parse(r->body, nullptr, false);
    return a;
  }
  nlohmann::json stats() const {
    httplib::Client client("127.0.0.1", port());
    auto r = client.Post("/api/embedding/cache/stats", "{}", "application/json");
    return r ? nlohmann::json::parse(r->body, nullptr, false) : nlohmann::json();
  }
  std::string metrics() const {
    httplib::Client client("127.0.0.1", port());
    auto r = client.Get("/metrics");
    return r ? r->body : std::string();
  }
  std::uint64_t embedded(const std::string& model = "lexical") const {
    const nlohmann::json s = stats();
    return s.contains("embedderTexts") && s["embedderTexts"].contains(model) ? s["embedderTexts"][model].get<std::uint64_t>()
                                                                          : 0;
  }

 private:
  static std::vector<std::string> with_defaults(const std::vector<std::string>& flags) {
    std::vector<std::string> all = {"--no-host-memory", "--threads", "4"};
    all.insert(all.end(), flags.begin(), flags.end());
    return all;
  }
};

std::vector<std::vector<std::string>> batches(std::size_t n, std::size_t per_batch, const std::string& salt) {
  std::vector<std::vector<std::string>> out;
  for (std::size_t i = 0; i < n; ++i) {
    if (i % per_batch == 0) out.emplace_back();
    out.back().push_back("fleet text " + std::to_string(i) + salt + " shared by every host of the fleet");
  }
  return out;
}

// Polls the daemon's stats until every tier has written `records` (or the deadline passes).
// Each poll is a request the daemon answers, so polls are paced to leave it the cores.
bool written_down(const DaemonProcess& d, std::uint64_t records) {
  return test_support::eventually(
      [&] {
        const nlohmann::json s = d.stats();
        bool all = s.contains("tiers") && !s["tiers"].empty();
        for (const auto& t : s.value("tiers", nlohmann::json::array())) all = all && t["writes"].get<std::uint64_t>() >= records;
        return all;
      },
      std::chrono::milliseconds(10));
}

// Every batch answered from `tier` alone, with the vectors first computed (`reference`).
void expect_all_from_tier(const DaemonProcess& d, const std::vector<std::vector<std::string>>& texts,
                          const std::vector<nlohmann::json>& reference, const std::string& tier) {
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const auto r = d.embed(texts[i]);
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.tier_hits, texts[i].size());
    EXPECT_EQ(r.by_tier, tier + "=" + std::to_string(texts[i].size()));
    EXPECT_EQ(r.body["data"], reference[i]);
  }
}

// A configuration file that gives Redis replies testing::kRedisReplyTimeout: the daemon's
// 50 ms default would turn a redis-server that a loaded machine left without a core for a
// moment into misses, and the test expects every text from Redis.
std::string patient_redis_config(const TempDir& dir) {
  const std::filesystem::path path = dir.path() / "patient-redis.toml";
  std::ofstream(path) << "[tiers]\nredis_timeout_ms = " << testing::kRedisReplyTimeout.count() << "\n";
  return path.string();
}

TEST(DaemonTiers, FleetAndRestartTargets) {
  RedisServer redis;
  TempDir dir;
  TempDir config_dir;
  const std::string config = patient_redis_config(config_dir);
  const auto texts = batches(2000, 500, "");
  std::vector<nlohmann::json> reference;
  {
    DaemonProcess a({"--config", config, "--tier-dir", dir.path().string(), "--tier-disk-mb", "64", "--redis",
                     redis.url()});
    for (const auto& batch : texts) {
      const auto r = a.embed(batch);
      ASSERT_EQ(r.status, 200);
      EXPECT_EQ(r.misses, batch.size());
      EXPECT_EQ(r.tier_hits, 0u);
      reference.push_back(r.body["data"]);
    }
    EXPECT_EQ(a.embedded(), 2000u);
    ASSERT_TRUE(written_down(a, 2000));
    const std::string metrics = a.metrics();
    EXPECT_NE(metrics.find("pagekeeper_embedder_texts_total{model=\"lexical\"} 2000"), std::string::npos);
    EXPECT_NE(metrics.find("pagekeeper_tier_writes_total{tier=\"redis\"} 2000"), std::string::npos);
    EXPECT_NE(metrics.find("pagekeeper_tier_lookup_duration_seconds_count{tier=\"tier-disk\"}"), std::string::npos);
    EXPECT_EQ(a.stop(), 0);
  }
  DaemonProcess b({"--config", config, "--redis", redis.url()});
  ASSERT_NO_FATAL_FAILURE(expect_all_from_tier(b, texts, reference, "redis"));
  EXPECT_EQ(b.embedded(), 0u);
  {
    DaemonProcess a2({"--tier-dir", dir.path().string(), "--tier-disk-mb", "64"});
    ASSERT_NO_FATAL_FAILURE(expect_all_from_tier(a2, texts, reference, "tier-disk"));
    EXPECT_EQ(a2.embedded(), 0u);
    EXPECT_EQ(a2.stop(), 0);
  }
  redis.kill();
  for (const auto& batch : {texts[0], batches(100, 100, " new after Redis died")[0]}) {
    const auto r = b.embed(batch);
    EXPECT_EQ(r.status, 200);
  }
  EXPECT_EQ(b.embedded(), 100u);
  const nlohmann::json s = b.stats();
  EXPECT_GE(s["tiers"][0]["errors"].get<std::uint64_t>(), 1u);
  EXPECT_EQ(b.stop(), 0);
}

}  // namespace
}  // namespace pagekeeper
