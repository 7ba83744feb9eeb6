#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

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
  EXPECT_NE(absent.reason.find("no cgroup limit"), std::string::npos) << absent.reason;
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

// A fake /proc/self/cgroup, /sys/fs/cgroup and /proc/meminfo in a fresh temporary folder.
class CgroupTree {
 public:
  // `self_cgroup`: the membership file's text ("" for none).
  explicit CgroupTree(const std::string& self_cgroup = "") {
    dir_ = std::filesystem::temp_directory_path() /
           ("pagekeeper-cgtree-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    // 16 GiB host with 12 GiB available: 0.25.
    write("meminfo", "MemTotal: 16777216 kB\nMemAvailable: 12582912 kB\n");
    if (!self_cgroup.empty()) write("self_cgroup", self_cgroup);
  }
  ~CgroupTree() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  void write(const std::string& relative, const std::string& text) {
    const auto path = dir_ / relative;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path, std::ios::trunc) << text;
  }
  // A version 2 cgroup at `dir` with its memory.max and memory.current.
  void v2(const std::string& dir, const std::string& max, const std::string& current) {
    write(dir + "/memory.max", max + "\n");
    write(dir + "/memory.current", current + "\n");
  }
  HostMemory memory() const {
    HostMemoryPaths paths;
    paths.self_cgroup = dir_ / "self_cgroup";
    paths.cgroup_root = dir_ / "cg";
    paths.meminfo = dir_ / "meminfo";
    return HostMemory(paths);
  }

 private:
  std::filesystem::path dir_;
};

TEST(HostMemoryTree, ALimitOnAnAncestorBindsItsChildren) {
  CgroupTree t("0::/app/worker\n");
  t.v2("cg/app/worker", "max", "100");
  t.v2("cg/app", "1000000", "900000");
  t.write("cg/app/memory.stat", "anon 1\ninactive_file 100000\n");
  const auto r = t.memory().read();
  ASSERT_TRUE(r.known()) << r.reason;
  EXPECT_EQ(r.source, HostMemoryReading::Source::cgroup_v2);
  EXPECT_EQ(r.limit_bytes, 1000000u);
  EXPECT_EQ(r.used_bytes, 800000u);
  EXPECT_EQ(t.memory().limit_bytes(), 1000000u);
}

TEST(HostMemoryTree, TheTighterOfTwoLimitsBindsByPressureAndTheSmallerIsTheLimit) {
  CgroupTree t("0::/a/b\n");
  t.v2("cg/a/b", "500000", "100000");  // smaller, but only 0.2 used
  t.v2("cg/a", "1000000", "900000");  // larger, 0.9 used by the siblings too
  const auto r = t.memory().read();
  ASSERT_TRUE(r.known()) << r.reason;
  EXPECT_EQ(r.limit_bytes, 1000000u);
  EXPECT_DOUBLE_EQ(r.pressure, 0.9);
  EXPECT_EQ(t.memory().limit_bytes(), 500000u);
}

TEST(HostMemoryTree, CgroupV1LimitWithTotalInactiveFile) {
  CgroupTree t("5:cpu,memory:/job\n0::/\n");
  t.write("cg/memory/job/memory.limit_in_bytes", "2000000\n");
  t.write("cg/memory/job/memory.usage_in_bytes", "1800000\n");
  t.write("cg/memory/job/memory.stat", "cache 5\ntotal_inactive_file 200000\n");
  t.write("cg/memory/memory.limit_in_bytes", "9223372036854771712\n");  // v1's "no limit"
  const auto r = t.memory().read();
  ASSERT_TRUE(r.known()) << r.reason;
  EXPECT_EQ(r.source, HostMemoryReading::Source::cgroup_v1);
  EXPECT_EQ(r.limit_bytes, 2000000u);
  EXPECT_EQ(r.used_bytes, 1600000u);
  EXPECT_EQ(t.memory().limit_bytes(), 2000000u);
  const nlohmann::json j = r;
  EXPECT_EQ(j.at("source"), "cgroupV1");
}

TEST(HostMemoryTree, TheHostBindsWhenItIsFullerThanTheCgroup) {
  CgroupTree t("0::/svc\n");
  t.v2("cg/svc", "8589934592", "858993459");  // 8 GiB, 0.1 used
  t.write("meminfo", "MemTotal: 16777216 kB\nMemAvailable: 1677721 kB\n");  // 0.9 used
  const auto r = t.memory().read();
  ASSERT_TRUE(r.known()) << r.reason;
  EXPECT_EQ(r.source, HostMemoryReading::Source::meminfo);
  EXPECT_NEAR(r.pressure, 0.9, 1e-6);
  EXPECT_EQ(t.memory().limit_bytes(), 8589934592u);
}

TEST(HostMemoryTree, HybridHostsKeepVersion2UnderUnified) {
  CgroupTree t("0::/svc\n");
  t.v2("cg/unified/svc", "1000", "500");
  t.write("cg/svc/memory.max", "10\n");  // not where a hybrid host keeps v2
  const auto r = t.memory().read();
  ASSERT_TRUE(r.known()) << r.reason;
  EXPECT_EQ(r.limit_bytes, 1000u);
}

TEST(HostMemoryTree, AnUnreadableLimitOnThePathIsUnknownNotIgnored) {
  CgroupTree t("0::/a/b\n");
  t.v2("cg/a/b", "1000000", "1");
  t.write("cg/a/memory.max", "lots\n");
  const auto r = t.memory().read();
  EXPECT_FALSE(r.known());
  EXPECT_NE(r.reason.find("malformed limit 'lots'"), std::string::npos) << r.reason;
  EXPECT_EQ(t.memory().limit_bytes(), 1000000u);  // the limits that could be read
}

TEST(HostMemoryTree, NoMembershipFileMeansTheHostAlone) {
  CgroupTree t;
  const auto r = t.memory().read();
  ASSERT_TRUE(r.known()) << r.reason;
  EXPECT_EQ(r.source, HostMemoryReading::Source::meminfo);
  EXPECT_DOUBLE_EQ(r.pressure, 0.25);
  EXPECT_EQ(t.memory().limit_bytes(), std::uint64_t{16777216} * 1024);
}

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
