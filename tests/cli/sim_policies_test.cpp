// `pagekeeper sim` with the frequency-aware policy and the optimum: W-TinyLFU through the
// real pool reaches the published W-TinyLFU figures on OLTP and beats LRU on it; opt is an
// upper bound of every policy; a comma-separated list prints one object per policy.

#include "cli/sim.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <stdexcept>
#include <string>

#include "cli/trace_dir.hpp"

namespace pagekeeper::cli {
namespace {

SimOptions one_shard(const std::string& policy, std::uint64_t capacity) {
  SimOptions options;
  options.trace_path = testing_support::bundled_trace_path("OLTP.lis.zst");
  options.capacity = capacity;
  options.policy = policy;
  options.watermark = 1.0;
  options.shards = 1;
  return options;
}

TEST(SimPolicies, TinyLfuReachesThePublishedFiguresOnOltp) {
  ASSERT_TRUE(std::filesystem::exists(one_shard("lru", 1).trace_path));
  const struct {
    std::uint64_t capacity;
    double published;  // W-TinyLFU, from ports of Caffeine's simulator
  } rows[] = {{250, 24.73}, {500, 33.70}, {1000, 39.95}, {2000, 46.07}};
  for (const auto& row : rows) {
    const SimResult tiny = run_simulation(one_shard("wtinylfu", row.capacity));
    const SimResult opt = run_simulation(one_shard("opt", row.capacity));
    EXPECT_EQ(tiny.requests, 914145u);
    EXPECT_EQ(opt.requests, 914145u);
    EXPECT_GE(hit_ratio_percent(tiny), row.published) << "capacity " << row.capacity;
    EXPECT_LE(tiny.hits, opt.hits) << "capacity " << row.capacity;
    EXPECT_LE(tiny.resident_entries, row.capacity);
  }
}

// Caffeine 2.6.2 (maximumSize = capacity) replaying the same trace: scripts/caffeine-replay.sh
// (the higher of two runs: its sketch's seed and admission jitter are random per run).
TEST(SimPolicies, TinyLfuBeatsLruAndCaffeineOnOltp) {
  const struct {
    std::uint64_t capacity;
    double caffeine;
  } rows[] = {{250, 22.67}, {500, 29.24}, {1000, 35.62}, {2000, 42.03}, {8192, 57.49}, {32768, 67.58}};
  for (const auto& row : rows) {
    const SimResult tiny = run_simulation(one_shard("wtinylfu", row.capacity));
    EXPECT_GE(hit_ratio_percent(tiny), row.caffeine) << "capacity " << row.capacity;
    EXPECT_GE(tiny.hits, run_simulation(one_shard("lru", row.capacity)).hits) << "capacity " << row.capacity;
  }
}

TEST(SimPolicies, OptBoundsLruAndKeepsToTheCapacity) {
  const SimResult lru = run_simulation(one_shard("lru", 1000));
  const SimResult opt = run_simulation(one_shard("opt", 1000));
  EXPECT_GT(opt.hits, lru.hits);
  EXPECT_EQ(opt.hits + opt.misses, opt.requests);
  EXPECT_LE(opt.resident_entries, 1000u);
}

TEST(SimPolicies, PolicyListsAreParsedAndChecked) {
  EXPECT_EQ(parse_policy_list("lru,wtinylfu,opt"), (std::vector<std::string>{"lru", "wtinylfu", "opt"}));
  EXPECT_EQ(parse_policy_list("size-lru"), (std::vector<std::string>{"size-lru"}));
  for (const char* bad : {"", "lru,", "lru,,opt", "lfu", "lru,arc"}) {
    try {
      parse_policy_list(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("--policy"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace pagekeeper::cli
