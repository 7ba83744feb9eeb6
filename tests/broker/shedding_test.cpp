// Host-memory shedding: a simulated host (cgroup fixture files rewritten by the test) at high
// or critical pressure makes the broker shed from pools in proportion to their usage, within
// the per-pass and per-episode bounds.

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "broker/fake_tier.hpp"
#include "pagekeeper/broker.hpp"
#include "support/critical_host.hpp"

namespace pagekeeper {
namespace {

using testing::FakeTier;

// A cgroup v2 directory in a fresh temporary folder, removed at the end of the test.
class SimulatedCgroup {
 public:
  explicit SimulatedCgroup(std::uint64_t limit) {
    dir_ = std::filesystem::temp_directory_path() /
           ("pagekeeper-shed-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    write("memory.max", std::to_string(limit));
    set_used(0);
  }
  ~SimulatedCgroup() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  void set_used(std::uint64_t bytes) { write("memory.current", std::to_string(bytes)); }
  void write(const std::string& file, const std::string& text) {
    std::ofstream(dir_ / file, std::ios::trunc) << text << "\n";
  }
  std::shared_ptr<HostMemory> source() const {
    HostMemoryPaths paths;
    paths.cgroup_dir = dir_;
    paths.meminfo = dir_ / "no-meminfo";
    return std::make_shared<HostMemory>(paths);
  }

 private:
  std::filesystem::path dir_;
};

constexpr std::uint64_t kHostLimit = 1'000'000;

std::vector<std::string> names_of_acted(const ReliefReport& report) {
  std::vector<std::string> names;
  for (const auto& a : report.pools_acted) names.push_back(a.name);
  return names;
}

struct Fixture {
  SimulatedCgroup host{kHostLimit};
  std::shared_ptr<FakeTier> small = FakeTier::make("small", 100'000, 10'000);
  std::shared_ptr<FakeTier> medium = FakeTier::make("medium", 100'000, 20'000);
  std::shared_ptr<FakeTier> large = FakeTier::make("large", 100'000, 30'000);
  std::vector<std::shared_ptr<FakeTier>> pools() const { return {small, medium, large}; }
  std::unique_ptr<PressureBroker> broker;
  explicit Fixture(BrokerConfig config = {}) {
    broker = std::make_unique<PressureBroker>(config, host.source());
    for (const auto& p : pools()) broker->register_pool(p);
  }
};

TEST(HostShedding, CriticalHostShedsInProportionWithinThePerPassBound) {
  Fixture f;
  std::vector<PressureAlert> alerts;
  f.broker->add_alert_sink([&](const PressureAlert& a) { alerts.push_back(a); });
  f.host.set_used(990'000);  // 0.99: critical

  const auto report = f.broker->relieve();
  ASSERT_TRUE(report.shed.has_value());
  const auto& host = *report.shed;
  EXPECT_EQ(host.reading.source, HostMemoryReading::Source::cgroup_v2);
  EXPECT_EQ(host.tier, PressureTier::critical);
  EXPECT_TRUE(host.episode_active);
  EXPECT_EQ(host.bytes_wanted, 190'000u);  // down to 0.80 of the limit
  // Per pass: 5% of each pool; 500 + 1000 + 1500, in proportion 1:2:3.
  EXPECT_EQ(f.small->requests(), std::vector<std::uint64_t>{500});
  EXPECT_EQ(f.medium->requests(), std::vector<std::uint64_t>{1000});
  EXPECT_EQ(f.large->requests(), std::vector<std::uint64_t>{1500});
  EXPECT_EQ(host.bytes_shed, 3000u);
  EXPECT_EQ(host.episode_budget_bytes, 12'000u);  // 20% of the 60,000 managed bytes
  EXPECT_EQ(host.episode_shed_bytes, 3000u);
  EXPECT_EQ(host.pools_shed.size(), 3u);
  EXPECT_TRUE(report.triggered);
  EXPECT_EQ(report.bytes_freed, 3000u);
  EXPECT_TRUE(report.pools_acted.empty());  // no pool was hot on its own

  ASSERT_EQ(alerts.size(), 3u);
  for (const auto& a : alerts) {
    EXPECT_EQ(a.cause, PressureAlert::Cause::host_pressure);
    EXPECT_EQ(a.tier, PressureTier::critical);
    EXPECT_DOUBLE_EQ(a.pressure, 0.99);
  }
}

TEST(HostShedding, EpisodeStopsAtTheTotalBoundAndResetsWhenTheHostRecovers) {
  Fixture f;
  f.host.set_used(990'000);  // stays critical: the pools are not what holds host memory
  std::uint64_t shed_total = 0;
  int passes = 0;
  while (passes < 100) {
    std::vector<std::uint64_t> before;
    for (const auto& p : f.pools()) before.push_back(p->usage_bytes());
    const auto report = f.broker->relieve();
    ++passes;
    if (report.shed->bytes_shed == 0) break;
    shed_total += report.shed->bytes_shed;
    // Every pool within 5% of its usage at the start of the pass, and all pools asked for
    // the same fraction of their usage (up to the rounding of whole bytes).
    const double fraction = static_cast<double>(report.shed->bytes_requested) /
                            static_cast<double>(before[0] + before[1] + before[2]);
    for (const auto& shed : report.shed->pools_shed) {
      std::size_t i = 0;
      while (f.pools()[i]->tier_name() != shed.name) ++i;
      EXPECT_LE(shed.bytes_requested, before[i] / 20) << "pass " << passes << " " << shed.name;
      EXPECT_NEAR(static_cast<double>(shed.bytes_requested), fraction * before[i], 2.0);
    }
  }
  EXPECT_LT(passes, 100);
  EXPECT_LE(shed_total, 12'000u);
  EXPECT_GE(shed_total, 12'000u - 3u);  // the budget is used up, bar rounding
  auto snap = f.broker->snapshot();
  EXPECT_TRUE(snap.host_shedding.episode_active);
  EXPECT_EQ(snap.host_shedding.episode_shed_bytes, shed_total);
  EXPECT_EQ(snap.host_tier, PressureTier::critical);

  // Recovery below high ends the episode; nothing is shed.
  f.host.set_used(700'000);
  auto report = f.broker->relieve();
  EXPECT_FALSE(report.shed->episode_active);
  EXPECT_EQ(report.shed->bytes_shed, 0u);
  snap = f.broker->snapshot();
  EXPECT_FALSE(snap.host_shedding.episode_active);
  EXPECT_EQ(snap.host_shedding.shed_bytes_total, shed_total);

  // A new episode gets a fresh budget of 20% of what the pools hold now.
  std::uint64_t held = 0;
  for (const auto& p : f.pools()) held += p->usage_bytes();
  f.host.set_used(960'000);
  report = f.broker->relieve();
  EXPECT_TRUE(report.shed->episode_active);
  EXPECT_EQ(report.shed->episode_budget_bytes, held / 5);
  EXPECT_GT(report.shed->bytes_shed, 0u);
}

TEST(HostShedding, AskOnlyForTheHostsExcessOverHigh) {
  Fixture f;
  f.host.set_used(801'000);  // 1,000 bytes above the high threshold
  const auto report = f.broker->relieve();
  EXPECT_EQ(report.shed->tier, PressureTier::high);
  EXPECT_EQ(report.shed->bytes_wanted, 1000u);
  EXPECT_EQ(f.small->requests(), std::vector<std::uint64_t>{166});
  EXPECT_EQ(f.medium->requests(), std::vector<std::uint64_t>{333});
  EXPECT_EQ(f.large->requests(), std::vector<std::uint64_t>{500});
}

TEST(HostShedding, PoolReliefInTheSamePassCountsAgainstTheHostExcess) {
  Fixture f;
  auto hot = FakeTier::make("hot", 100'000, 120'000);  // past its budget
  f.broker->register_pool(hot);
  f.host.set_used(801'000);
  const auto report = f.broker->relieve();
  EXPECT_EQ(names_of_acted(report), std::vector<std::string>{"hot"});
  EXPECT_EQ(report.shed->bytes_wanted, 0u);
  EXPECT_TRUE(report.shed->pools_shed.empty());
  EXPECT_TRUE(f.small->requests().empty());
}

TEST(HostShedding, NormalHostShedsNothing) {
  Fixture f;
  f.host.set_used(500'000);
  const auto report = f.broker->relieve();
  ASSERT_TRUE(report.shed.has_value());
  EXPECT_EQ(report.shed->tier, PressureTier::normal);
  EXPECT_FALSE(report.shed->episode_active);
  EXPECT_FALSE(report.triggered);
  for (const auto& p : f.pools()) EXPECT_TRUE(p->requests().empty());
}

TEST(HostShedding, UnknownHostShedsNothingAndSaysWhy) {
  Fixture f;
  f.host.write("memory.current", "garbage");
  const auto report = f.broker->relieve();
  ASSERT_TRUE(report.shed.has_value());
  EXPECT_FALSE(report.shed->reading.known());
  EXPECT_NE(report.shed->reading.reason.find("malformed usage"), std::string::npos);
  EXPECT_FALSE(report.triggered);
  for (const auto& p : f.pools()) EXPECT_TRUE(p->requests().empty());
  const nlohmann::json snap = f.broker->snapshot();
  EXPECT_EQ(snap.at("hostMemory").at("source"), "unknown");
  EXPECT_EQ(snap.at("hostMemory").at("tier"), "normal");
}

TEST(HostShedding, BoundsAreConfigurable) {
  const BrokerConfig config = test_support::shedding_config(0.10, 0.10);
  Fixture f(config);
  f.host.set_used(990'000);
  auto report = f.broker->relieve();
  EXPECT_EQ(report.shed->bytes_shed, 6000u);  // 10% of each pool
  EXPECT_EQ(report.shed->episode_budget_bytes, 6000u);
  report = f.broker->relieve();
  EXPECT_EQ(report.shed->bytes_shed, 0u);  // budget spent in one pass
  const nlohmann::json j = report;
  EXPECT_EQ(j.at("shed").at("episodeShedBytes"), 6000);
  EXPECT_EQ(j.at("shed").at("reading").at("source"), "cgroupV2");
}

}  // namespace
}  // namespace pagekeeper
