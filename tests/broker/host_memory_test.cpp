#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "pagekeeper/host_memory.hpp"

namespace pagekeeper {
namespace {

const std::filesystem::path kFixtures =
    std::filesystem::path(PAGEKEEPER_SOURCE_DIR) / "tests/broker/fixtures";

HostMemoryReading read_with(const std::string& cgroup, const std::string& meminfo) {
  HostMemoryPaths paths;
  paths.cgroup_dir = cgroup.empty() ? std::filesystem::path{} : kFixtures / cgroup;
  paths.meminfo = kFixtures / "meminfo" / meminfo;
  return HostMemory(paths).read();
}

TEST(HostMemory, CgroupLimitSubtractsInactiveFileFromCurrent) {
  const auto r = read_with("cgroup_limited", "normal");
  ASSERT_TRUE(r.known()) << r.reason;
  EXPECT_EQ(r.source, HostMemoryReading::Source::cgroup_v2);
  EXPECT_EQ(r.limit_bytes, 1073741824u);
  EXPECT_EQ(r.used_bytes, 966367641u - 107374182u);
  EXPECT_DOUBLE_EQ(r.pressure, (966367641.0 - 107374182.0) / 1073741824.0);
  EXPECT_TRUE(r.reason.empty()) << r.reason;
}

TEST(HostMemory, CgroupLimitWithoutMemoryStatUsesCurrentAndSaysSo) {
  const auto r = read_with("cgroup_limited_no_stat", "normal");
  ASSERT_TRUE(r.known()) << r.reason;
  EXPECT_EQ(r.source, HostMemoryReading::Source::cgroup_v2);
  EXPECT_EQ(r.used_bytes, 536870912u);
  EXPECT_DOUBLE_EQ(r.pressure, 0.5);
}

TEST(HostMemory, CgroupMaxMeansUnlimitedAndFallsBackToMeminfo) {
  const auto r = read_with("cgroup_unlimited", "normal");
  ASSERT_TRUE(r.known()) << r.reason;
  EXPECT_EQ(r.source, HostMemoryReading::Source::meminfo);
  EXPECT_EQ(r.limit_bytes, 16384000ull * 1024);
  EXPECT_EQ(r.used_bytes, (16384000ull - 12288000ull) * 1024);
  EXPECT_DOUBLE_EQ(r.pressure, 0.25);
  EXPECT_NE(r.reason.find("'max'"), std::string::npos) << r.reason;
}

TEST(HostMemory, NoCgroupReadsMeminfo) {
  const auto direct = read_with("", "normal");
  ASSERT_TRUE(direct.known()) << direct.reason;
  EXPECT_EQ(direct.source, HostMemoryReading::Source::meminfo);
  EXPECT_DOUBLE_EQ(direct.pressure, 0.25);
  EXPECT_TRUE(direct.reason.empty());

  // A cgroup directory without memory.max (cgroup v1 host, or no memory controller).
  const auto absent = read_with("no_such_cgroup", "normal");
  ASSERT_TRUE(absent.known()) << absent.reason;
  EXPECT_EQ(absent.source, HostMemoryReading::Source::meminfo);
  EXPECT_NE(absent.reason.find("no cgroup v2 limit"), std::string::npos) << absent.reason;
}

struct UnknownCase {
  const char* cgroup;
  const char* meminfo;
  const char* reason_mentions;
};

class HostMemoryUnknown : public ::testing::TestWithParam<UnknownCase> {};

TEST_P(HostMemoryUnknown, ReportsUnknownWithAReasonNeverThrows) {
  const auto& c = GetParam();
  HostMemoryReading r;
  ASSERT_NO_THROW(r = read_with(c.cgroup, c.meminfo));
  EXPECT_FALSE(r.known());
  EXPECT_EQ(r.source, HostMemoryReading::Source::unknown);
  EXPECT_EQ(r.pressure, 0.0);
  EXPECT_EQ(r.limit_bytes, 0u);
  EXPECT_NE(r.reason.find(c.reason_mentions), std::string::npos) << r.reason;
}

INSTANTIATE_TEST_SUITE_P(
    MissingOrMalformed, HostMemoryUnknown,
    ::testing::Values(UnknownCase{"cgroup_malformed_max", "normal", "malformed limit 'lots'"},
                      UnknownCase{"cgroup_malformed_current", "normal", "malformed usage '12abc'"},
                      UnknownCase{"cgroup_missing_current", "normal", "memory.current"},
                      UnknownCase{"cgroup_zero_max", "normal", "limit is 0 bytes"},
                      UnknownCase{"", "does_not_exist", "cannot read"},
                      UnknownCase{"cgroup_unlimited", "does_not_exist", "does_not_exist"},
                      UnknownCase{"", "no_available", "no MemAvailable"},
                      UnknownCase{"", "malformed_total", "malformed MemTotal"},
                      UnknownCase{"", "available_exceeds_total", "exceeds MemTotal"},
                      UnknownCase{"", "empty", "no MemTotal"}));

TEST(HostMemory, ReadsThisMachine) {
  const auto r = HostMemory().read();
  ASSERT_TRUE(r.known()) << r.reason;
  EXPECT_GT(r.limit_bytes, 0u);
  EXPECT_GT(r.pressure, 0.0);
  EXPECT_LE(r.used_bytes, r.limit_bytes);
}

TEST(HostMemory, JsonIsCamelCase) {
  const nlohmann::json j = read_with("cgroup_limited_no_stat", "normal");
  EXPECT_EQ(j.at("source"), "cgroupV2");
  EXPECT_EQ(j.at("limitBytes"), 1073741824u);
  EXPECT_EQ(j.at("usedBytes"), 536870912u);
  EXPECT_DOUBLE_EQ(j.at("pressure").get<double>(), 0.5);
  EXPECT_TRUE(j.contains("reason"));
  const nlohmann::json unknown = read_with("", "does_not_exist");
  EXPECT_EQ(unknown.at("source"), "unknown");
}

}  // namespace
}  // namespace pagekeeper
