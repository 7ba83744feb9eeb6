// MemoryBudget: total resolution (explicit, host RAM with cgroup limits, NVML absent), the
// sub-budget split, priority gates, RAII guards and the ResourcePool surface.

#include "pagekeeper/memory_budget.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pagekeeper/errors.hpp"
#include "pagekeeper/core_json.hpp"

namespace pagekeeper {
namespace {

namespace fs = std::filesystem;

constexpr std::uint64_t kMiB = 1024 * 1024;

MemoryBudgetConfig explicit_config(std::uint64_t total) {
  MemoryBudgetConfig c;
  c.name = "test-budget";
  c.explicit_total_bytes = total;
  return c;
}

// A scratch directory holding fake /proc and /sys/fs/cgroup files.
class HostFiles {
 public:
  HostFiles() {
    dir_ = fs::temp_directory_path() /
           ("pk-budget-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    fs::create_directories(dir_);
  }
  ~HostFiles() { fs::remove_all(dir_); }
  std::string write(const std::string& rel, const std::string& text) {
    const fs::path p = dir_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }
  std::string path(const std::string& rel) const { return (dir_ / rel).string(); }

 private:
  static inline int counter_ = 0;
  fs::path dir_;
};

TEST(MemoryBudgetTest, ExplicitTotalSplitsIntoDefaultShares) {
  MemoryBudget budget(explicit_config(1000 * kMiB));
  EXPECT_EQ(budget.total_source(), MemoryTotalSource::kExplicit);
  EXPECT_EQ(budget.total_bytes(), 1000 * kMiB);
  EXPECT_EQ(budget.subsystem_budget_bytes(Subsystem::kInference), 750 * kMiB);
  EXPECT_EQ(budget.subsystem_budget_bytes(Subsystem::kTts), 100 * kMiB);
  EXPECT_EQ(budget.subsystem_budget_bytes(Subsystem::kRender), 100 * kMiB);
  EXPECT_EQ(budget.reserve_bytes(), 50 * kMiB);
  // The broker sees total - reserve as capacity.
  EXPECT_EQ(budget.capacity_bytes(), 950 * kMiB);
  EXPECT_EQ(budget.tier_name(), "test-budget");
  EXPECT_EQ(budget.per_persona_inference_bytes(3), 250 * kMiB);
  EXPECT_EQ(budget.per_persona_inference_bytes(0), 750 * kMiB);
}

TEST(MemoryBudgetTest, GuardReleasesOnDestructionAndMove) {
  MemoryBudget budget(explicit_config(1000));
  {
    auto g = budget.allocate(100, Subsystem::kInference, AllocationPriority::kInteractive);
    EXPECT_TRUE(g.holds());
    EXPECT_EQ(g.bytes(), 100u);
    EXPECT_EQ(budget.usage_bytes(), 100u);
    EXPECT_EQ(budget.subsystem_usage_bytes(Subsystem::kInference), 100u);
    MemoryBudget::Guard moved = std::move(g);
    EXPECT_FALSE(g.holds());  // NOLINT(bugprone-use-after-move): documented moved-from state
    EXPECT_EQ(budget.usage_bytes(), 100u);
    EXPECT_EQ(budget.live_guards(), 1u);
    auto other = budget.allocate(50, Subsystem::kTts, AllocationPriority::kRealtime);
    EXPECT_EQ(budget.usage_bytes(), 150u);
    // Move-assigning over a live guard releases what it held.
    moved = std::move(other);
    EXPECT_EQ(budget.usage_bytes(), 50u);
    EXPECT_EQ(budget.subsystem_usage_bytes(Subsystem::kInference), 0u);
    moved.release();
    moved.release();  // idempotent
    EXPECT_EQ(budget.usage_bytes(), 0u);
    auto last = budget.allocate(10, Subsystem::kRender, AllocationPriority::kBatch);
    EXPECT_EQ(budget.usage_bytes(), 10u);
  }
  EXPECT_EQ(budget.usage_bytes(), 0u);
  EXPECT_EQ(budget.live_guards(), 0u);
}

TEST(MemoryBudgetTest, GuardOutlivesBudget) {
  MemoryBudget::Guard g;
  {
    MemoryBudget budget(explicit_config(1000));
    g = budget.allocate(100, Subsystem::kInference, AllocationPriority::kRealtime);
  }
  EXPECT_EQ(g.bytes(), 100u);
  g.release();  // the ledger is shared; no use-after-free (checked under ASan)
}

// Capacity = 950 of 1000. Gates in bytes: realtime ceil(.95*950)=903, interactive 760,
// background 570, batch 475. Refused when usage after the request would be >= the gate.
TEST(MemoryBudgetTest, PriorityGatesRefuseAtOrPastTheGate) {
  MemoryBudget budget(explicit_config(1000));
  EXPECT_EQ(budget.gate_limit_bytes(AllocationPriority::kRealtime), 903u);
  EXPECT_EQ(budget.gate_limit_bytes(AllocationPriority::kInteractive), 760u);
  EXPECT_EQ(budget.gate_limit_bytes(AllocationPriority::kBackground), 570u);
  EXPECT_EQ(budget.gate_limit_bytes(AllocationPriority::kBatch), 475u);

  // Batch may go up to 474 and no further.
  auto batch = budget.allocate(474, Subsystem::kInference, AllocationPriority::kBatch);
  EXPECT_THROW(budget.allocate(1, Subsystem::kInference, AllocationPriority::kBatch),
               TierExhausted);
  // Background still fits below 570, interactive below 760.
  auto background = budget.allocate(95, Subsystem::kInference, AllocationPriority::kBackground);
  EXPECT_EQ(budget.usage_bytes(), 569u);
  EXPECT_THROW(budget.allocate(1, Subsystem::kTts, AllocationPriority::kBackground),
               TierExhausted);
  auto interactive = budget.allocate(100, Subsystem::kTts, AllocationPriority::kInteractive);
  // 669 + 91 = 760 reaches the interactive gate exactly: refused ("to or past").
  try {
    (void)budget.allocate(91, Subsystem::kRender, AllocationPriority::kInteractive);
    FAIL() << "reaching the gate must be refused";
  } catch (const TierExhausted& e) {
    EXPECT_EQ(e.tier, "test-budget/render");
    EXPECT_EQ(e.requested_bytes, 91u);
    EXPECT_EQ(e.available_bytes, 90u);
    EXPECT_EQ(e.evicted_bytes, 0u);
    EXPECT_EQ(nlohmann::json(e).at("kind"), "tierExhausted");
  }
  auto realtime = budget.allocate(90, Subsystem::kRender, AllocationPriority::kRealtime);
  EXPECT_EQ(budget.usage_bytes(), 759u);
  EXPECT_GE(budget.refusals(), 3u);
  // Releasing lower-class memory reopens the lower gates.
  batch.release();
  EXPECT_NO_THROW(budget.allocate(100, Subsystem::kInference, AllocationPriority::kBatch));
}

TEST(MemoryBudgetTest, SubsystemShareIsAHardCap) {
  MemoryBudget budget(explicit_config(1000));
  // TTS owns 100 bytes: exactly the share is allowed, one more is refused even at realtime.
  auto tts = budget.allocate(100, Subsystem::kTts, AllocationPriority::kRealtime);
  try {
    (void)budget.allocate(1, Subsystem::kTts, AllocationPriority::kRealtime);
    FAIL() << "past the tts share must be refused";
  } catch (const TierExhausted& e) {
    EXPECT_EQ(e.tier, "test-budget/tts");
    EXPECT_EQ(e.available_bytes, 0u);
  }
  // Other subsystems are unaffected.
  EXPECT_NO_THROW(budget.allocate(1, Subsystem::kRender, AllocationPriority::kRealtime));
  // A request larger than the whole share counts as oversize.
  EXPECT_THROW(budget.allocate(101, Subsystem::kRender, AllocationPriority::kRealtime),
               TierExhausted);
  EXPECT_EQ(budget.stats().rejected_oversize, 1u);
}

TEST(MemoryBudgetTest, HugeRequestSaturatesInsteadOfWrapping) {
  MemoryBudget budget(explicit_config(1000));
  auto g = budget.allocate(10, Subsystem::kInference, AllocationPriority::kRealtime);
  EXPECT_THROW(budget.allocate(std::numeric_limits<std::uint64_t>::max() - 5,
                               Subsystem::kInference, AllocationPriority::kRealtime),
               TierExhausted);
  EXPECT_EQ(budget.usage_bytes(), 10u);
}

TEST(MemoryBudgetTest, ResourcePoolSurface) {
  MemoryBudget budget(explicit_config(1000));
  auto a = budget.allocate(300, Subsystem::kInference, AllocationPriority::kRealtime);
  auto b = budget.allocate(50, Subsystem::kInference, AllocationPriority::kRealtime);
  auto c = budget.allocate(25, Subsystem::kRender, AllocationPriority::kRealtime);
  ResourcePool& pool = budget;
  EXPECT_EQ(pool.usage_bytes(), 375u);
  EXPECT_DOUBLE_EQ(pool.pressure(), 375.0 / 950.0);
  // Guards from allocate() are never evicted by the budget.
  EXPECT_EQ(pool.evict_at_least(100), 0u);
  EXPECT_EQ(pool.usage_bytes(), 375u);
  const auto snap = pool.snapshot();
  ASSERT_EQ(snap.size(), 3u);
  EXPECT_EQ(snap[0].key, "inference");
  EXPECT_EQ(snap[0].size_bytes, 350u);
  EXPECT_EQ(snap[0].pin_count, 2u);
  EXPECT_EQ(snap[2].key, "render");
  EXPECT_EQ(snap[2].size_bytes, 25u);
  const auto st = pool.stats();
  EXPECT_EQ(st.name, "test-budget");
  EXPECT_EQ(st.entry_count, 3u);
  EXPECT_EQ(st.pinned_count, 3u);
  EXPECT_EQ(st.total_bytes, 375u);
  EXPECT_EQ(st.max_bytes, 950u);
  EXPECT_DOUBLE_EQ(st.pressure, 375.0 / 950.0);
  EXPECT_EQ(nlohmann::json(st)["totalBytes"], 375);
}

TEST(MemoryBudgetTest, EvictsByClassWeightLowestFirstOldestFirstAndNeverRealtime) {
  MemoryBudget budget(explicit_config(1000 * kMiB));
  std::vector<std::string> order;
  std::map<std::string, MemoryBudget::Guard> guards;
  const auto add = [&](const std::string& name, AllocationPriority p) {
    guards[name] = budget.allocate_evictable(10 * kMiB, Subsystem::kInference, p, [&, name] {
      order.push_back(name);
      guards[name].release();  // the owner frees its memory and lets go of the bytes
    });
  };
  EXPECT_FALSE(budget.can_free());
  add("interactive", AllocationPriority::kInteractive);
  add("batch-old", AllocationPriority::kBatch);
  add("background", AllocationPriority::kBackground);
  add("batch-new", AllocationPriority::kBatch);
  add("realtime", AllocationPriority::kRealtime);
  auto plain = budget.allocate(10 * kMiB, Subsystem::kInference, AllocationPriority::kBatch);
  EXPECT_TRUE(budget.can_free());
  EXPECT_EQ(budget.stats().pinned_count, 2u);  // realtime and the plain guard

  EXPECT_EQ(budget.evict_at_least(15 * kMiB), 20 * kMiB);
  EXPECT_EQ(order, (std::vector<std::string>{"batch-old", "batch-new"}));
  EXPECT_EQ(budget.evict_at_least(100 * kMiB), 20 * kMiB);
  EXPECT_EQ(order, (std::vector<std::string>{"batch-old", "batch-new", "background",
                                             "interactive"}));
  EXPECT_EQ(budget.usage_bytes(), 20 * kMiB);  // realtime and the plain guard stay
  EXPECT_FALSE(budget.can_free());
  EXPECT_EQ(budget.evict_at_least(100 * kMiB), 0u);
  EXPECT_EQ(budget.stats().evictions, 4u);
  EXPECT_EQ(budget.stats().pinned_count, 2u);

  EXPECT_EQ(eviction_weight(AllocationPriority::kRealtime), std::nullopt);
  EXPECT_EQ(eviction_weight(AllocationPriority::kInteractive), 0.7);
  EXPECT_EQ(eviction_weight(AllocationPriority::kBackground), 0.4);
  EXPECT_EQ(eviction_weight(AllocationPriority::kBatch), 0.2);
}

TEST(MemoryBudgetTest, AnEvictorThatKeepsItsGuardFreesNothing) {
  MemoryBudget budget(explicit_config(1000 * kMiB));
  int calls = 0;
  auto stubborn = budget.allocate_evictable(10 * kMiB, Subsystem::kTts,
                                            AllocationPriority::kBatch, [&] { ++calls; });
  auto throwing = budget.allocate_evictable(10 * kMiB, Subsystem::kTts,
                                            AllocationPriority::kBatch,
                                            [] { throw std::runtime_error("busy"); });
  EXPECT_EQ(budget.evict_at_least(kMiB), 0u);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(budget.usage_bytes(), 20 * kMiB);
  EXPECT_THROW(budget.allocate_evictable(1, Subsystem::kTts, AllocationPriority::kBatch, {}),
               std::invalid_argument);
  stubborn.release();
  throwing.release();
  EXPECT_FALSE(budget.can_free());
  EXPECT_EQ(budget.usage_bytes(), 0u);
}

TEST(MemoryBudgetTest, InvalidConfigurationIsTierUnavailable) {
  auto bad_share = explicit_config(1000);
  bad_share.tts_share = 1.5;
  EXPECT_THROW(MemoryBudget{bad_share}, TierUnavailable);
  auto sum_past_one = explicit_config(1000);
  sum_past_one.render_share = 0.5;
  try {
    MemoryBudget b(sum_past_one);
    FAIL();
  } catch (const TierUnavailable& e) {
    EXPECT_NE(e.reason.find("sum"), std::string::npos) << e.reason;
  }
  auto zero_gate = explicit_config(1000);
  zero_gate.gates[2] = 0.0;
  EXPECT_THROW(MemoryBudget{zero_gate}, TierUnavailable);
  auto nan_gate = explicit_config(1000);
  nan_gate.gates[0] = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THROW(MemoryBudget{nan_gate}, TierUnavailable);
}

TEST(MemoryBudgetTest, NamesRoundTrip) {
  for (auto s : {Subsystem::kInference, Subsystem::kTts, Subsystem::kRender}) {
    EXPECT_EQ(subsystem_from_string(to_string(s)), s);
  }
  for (auto p : {AllocationPriority::kRealtime, AllocationPriority::kInteractive,
                 AllocationPriority::kBackground, AllocationPriority::kBatch}) {
    EXPECT_EQ(allocation_priority_from_string(to_string(p)), p);
  }
  EXPECT_FALSE(subsystem_from_string("reserve"));
  EXPECT_FALSE(allocation_priority_from_string("urgent"));
}

// ---- total resolution ----

TEST(HostMemoryBytesTest, MemTotalWithoutCgroupLimit) {
  HostFiles files;
  const auto meminfo = files.write("meminfo", "MemFree: 10 kB\nMemTotal:  4096 kB\n");
  const auto self = files.write("self_cgroup", "0::/\n");
  files.write("cg/memory.max", "max\n");
  EXPECT_EQ(host_memory_bytes(meminfo, files.path("cg"), self), std::uint64_t{4096} * 1024);
}

TEST(HostMemoryBytesTest, CgroupV2LimitOnPathOrAncestorWins) {
  HostFiles files;
  const auto meminfo = files.write("meminfo", "MemTotal: 8388608 kB\n");  // 8 GiB
  const auto self = files.write("self_cgroup", "0::/app/worker\n");
  files.write("cg/app/worker/memory.max", "max\n");
  files.write("cg/app/memory.max", "1073741824\n");  // 1 GiB on the parent
  EXPECT_EQ(host_memory_bytes(meminfo, files.path("cg"), self), 1073741824u);
  files.write("cg/app/worker/memory.max", "536870912\n");
  EXPECT_EQ(host_memory_bytes(meminfo, files.path("cg"), self), 536870912u);
}

TEST(HostMemoryBytesTest, CgroupV1LimitAndUnlimitedSentinel) {
  HostFiles files;
  const auto meminfo = files.write("meminfo", "MemTotal: 8388608 kB\n");
  const auto self = files.write("self_cgroup", "4:memory:/job\n0::/\n");
  files.write("cg/memory/job/memory.limit_in_bytes", "9223372036854771712\n");
  EXPECT_EQ(host_memory_bytes(meminfo, files.path("cg"), self), std::uint64_t{8388608} * 1024);
  files.write("cg/memory/job/memory.limit_in_bytes", "2147483648\n");
  EXPECT_EQ(host_memory_bytes(meminfo, files.path("cg"), self), 2147483648u);
}

TEST(HostMemoryBytesTest, UnreadableMemInfoIsZero) {
  HostFiles files;
  EXPECT_EQ(host_memory_bytes(files.path("missing"), files.path("cg"), files.path("none")), 0u);
}

TEST(MemoryBudgetTest, FallsBackToHostRamShareWhenNvmlIsMissing) {
  HostFiles files;
  auto c = MemoryBudgetConfig{};
  c.nvml_library = files.path("no-such-libnvidia-ml.so.1");
  c.meminfo_path = files.write("meminfo", "MemTotal: 4000000 kB\n");
  c.self_cgroup_path = files.write("self_cgroup", "0::/svc\n");
  c.cgroup_root = files.path("cg");
  files.write("cg/svc/memory.max", "2000000000\n");
  EXPECT_FALSE(nvml_total_memory_bytes(c.nvml_library, 0).has_value());
  MemoryBudget budget(c);
  EXPECT_EQ(budget.total_source(), MemoryTotalSource::kHostRam);
  EXPECT_EQ(budget.total_bytes(), 500000000u);  // 25% of the cgroup's 2e9
  c.host_ram_fraction = 0.5;
  EXPECT_EQ(MemoryBudget(c).total_bytes(), 1000000000u);
  c.host_ram_fraction = 0.0;
  EXPECT_THROW(MemoryBudget{c}, TierUnavailable);
}

TEST(MemoryBudgetTest, UnknownTotalIsTierUnavailable) {
  HostFiles files;
  auto c = MemoryBudgetConfig{};
  c.use_nvml = false;
  c.meminfo_path = files.path("missing-meminfo");
  EXPECT_THROW(MemoryBudget{c}, TierUnavailable);
}

TEST(MemoryBudgetTest, DefaultConfigurationResolvesOnThisHost) {
  // Whatever this machine is (GPU or not), the default budget has a positive total.
  MemoryBudget budget;
  EXPECT_GT(budget.total_bytes(), 0u);
  if (budget.total_source() == MemoryTotalSource::kHostRam) {
    EXPECT_LE(budget.total_bytes(),
              host_memory_bytes("/proc/meminfo", "/sys/fs/cgroup", "/proc/self/cgroup"));
  }
}

}  // namespace
}  // namespace pagekeeper
