// Tests of the trace simulator (`pagekeeper sim`): the reference LRU hit ratios of the ARC
// README through the real pool, the replay rule on hand-computed kv traces, option
// validation, and the installed command end to end (exit codes, one JSON object).

#include "cli/sim.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/trace_dir.hpp"

namespace pagekeeper::cli {
namespace {

std::string oltp_path() {
  std::string path = testing_support::bundled_trace_path("OLTP.lis.zst");
  EXPECT_TRUE(std::filesystem::exists(path)) << path << " is missing from the repository";
  return path;
}

// A kv trace in a temporary file, removed with the object.
class TempTrace {
 public:
  explicit TempTrace(const std::string& text) {
    static int counter = 0;
    path_ = std::filesystem::path(::testing::TempDir()) /
            ("pagekeeper_sim_test_" + std::to_string(::getpid()) + "_" +
             std::to_string(counter++) + ".trace");
    std::ofstream(path_) << text;
  }
  ~TempTrace() { std::filesystem::remove(path_); }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

SimOptions lru_one_shard(std::string path, std::uint64_t capacity) {
  SimOptions options;
  options.trace_path = std::move(path);
  options.capacity = capacity;
  options.policy = "lru";
  options.watermark = 1.0;
  options.shards = 1;
  return options;
}

// The acceptance figures: exact LRU, evicting only what is needed, over the whole trace.
TEST(SimTest, OltpReproducesReferenceLruHitRatios) {
  const std::string path = oltp_path();
  ASSERT_TRUE(std::filesystem::exists(path));
  const struct {
    std::uint64_t capacity;
    double hit_ratio;
  } reference[] = {{1000, 32.83}, {2000, 42.47}};
  for (const auto& row : reference) {
    SimResult result = run_simulation(lru_one_shard(path, row.capacity));
    EXPECT_EQ(result.requests, 914145u);
    EXPECT_EQ(result.hits + result.misses, result.requests);
    EXPECT_DOUBLE_EQ(hit_ratio_percent(result), row.hit_ratio) << "capacity " << row.capacity;
    // Size-1 keys and watermark 1.0: every miss after the cache fills evicts exactly one key.
    EXPECT_EQ(result.evictions, result.misses - row.capacity);
    EXPECT_EQ(result.resident_entries, row.capacity);
    EXPECT_EQ(result.shards, 1u);
  }
}

// A large trace, when PAGEKEEPER_TRACE_DIR provides it: the ARC README's LRU figure for P3.
TEST(SimTest, P3ReproducesReferenceLruHitRatio) {
  PAGEKEEPER_LARGE_TRACE_OR_SKIP(path, "P3.lis.zst");
  const SimResult result = run_simulation(lru_one_shard(path, 8192));
  EXPECT_EQ(result.requests, 3912296u);
  EXPECT_DOUBLE_EQ(hit_ratio_percent(result), 1.62);
}

TEST(SimTest, KvReplayFollowsLruOrderAndSizes) {
  // Capacity 10, sizes 4: at most two resident. a b a c b a:
  // a miss, b miss, a hit, c miss (evicts b), b miss (evicts a), a miss (evicts c).
  TempTrace trace("a,4\nb,4\na,4\nc,4\nb,4\na,4\n");
  SimResult result = run_simulation(lru_one_shard(trace.path(), 10));
  EXPECT_EQ(result.format, TraceFormat::kKeySize);
  EXPECT_EQ(result.requests, 6u);
  EXPECT_EQ(result.hits, 1u);
  EXPECT_EQ(result.misses, 5u);
  EXPECT_EQ(result.evictions, 3u);
  EXPECT_EQ(result.resident_bytes, 8u);
  EXPECT_DOUBLE_EQ(hit_ratio_percent(result), 16.67);
}

TEST(SimTest, OversizeRequestIsCountedNotCached) {
  TempTrace trace("big,11\nbig,11\nsmall,3\n");
  SimResult result = run_simulation(lru_one_shard(trace.path(), 10));
  EXPECT_EQ(result.misses, 3u);
  EXPECT_EQ(result.rejected_oversize, 2u);
  EXPECT_EQ(result.resident_entries, 1u);
  EXPECT_EQ(result.resident_bytes, 3u);
}

TEST(SimTest, ResizedHitReplacesTheEntry) {
  TempTrace trace("a,4\na,6\n");
  SimResult result = run_simulation(lru_one_shard(trace.path(), 10));
  EXPECT_EQ(result.hits, 1u);
  EXPECT_EQ(result.resident_bytes, 6u);
}

TEST(SimTest, LowWatermarkEvictsInBatches) {
  // Ten size-1 keys then an eleventh: watermark 0.5 evicts down to 5 bytes.
  std::string text;
  for (int i = 0; i <= 10; ++i) text += "k" + std::to_string(i) + ",1\n";
  TempTrace trace(text);
  SimOptions options = lru_one_shard(trace.path(), 10);
  options.watermark = 0.5;
  SimResult result = run_simulation(options);
  EXPECT_EQ(result.resident_bytes, 5u);
  EXPECT_EQ(result.evictions, 6u);
}

TEST(SimTest, SizeAwarePolicyReplaysTheWholeTrace) {
  SimOptions options = lru_one_shard(oltp_path(), 1000);
  options.policy = "size-lru";
  options.shards.reset();  // the pool's choice
  SimResult result = run_simulation(options);
  EXPECT_EQ(result.requests, 914145u);
  EXPECT_EQ(result.hits + result.misses, result.requests);
  EXPECT_GE(result.shards, 1u);
  EXPECT_LE(result.resident_bytes, 1000u);
}

TEST(SimTest, InvalidOptionsNameTheOption) {
  TempTrace trace("a,1\n");
  const struct {
    void (*mutate)(SimOptions&);
    const char* option;
  } cases[] = {
      {[](SimOptions& o) { o.capacity = 0; }, "--capacity"},
      {[](SimOptions& o) { o.watermark = 0.0; }, "--watermark"},
      {[](SimOptions& o) { o.watermark = 1.5; }, "--watermark"},
      {[](SimOptions& o) { o.policy = "lfu"; }, "--policy"},
      {[](SimOptions& o) { o.shards = 0; }, "--shards"},
  };
  for (const auto& c : cases) {
    SimOptions options = lru_one_shard(trace.path(), 10);
    c.mutate(options);
    try {
      run_simulation(options);
      ADD_FAILURE() << "accepted invalid " << c.option;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(c.option), std::string::npos) << e.what();
    }
  }
}

TEST(SimTest, MalformedTraceRaisesTraceError) {
  TempTrace trace("a,1\nb;2\n");
  try {
    run_simulation(lru_one_shard(trace.path(), 10));
    FAIL() << "expected TraceError";
  } catch (const TraceError& e) {
    EXPECT_EQ(e.line, 2u);
  }
}

TEST(SimTest, ReportHasTheDocumentedFields) {
  TempTrace trace("a,1\na,1\n");
  SimOptions options = lru_one_shard(trace.path(), 10);
  nlohmann::ordered_json report = sim_report(options, run_simulation(options));
  for (const char* field : {"requests", "hits", "misses", "evictions", "hit_ratio",
                            "ops_per_sec", "config"}) {
    EXPECT_TRUE(report.contains(field)) << field;
  }
  EXPECT_EQ(report["hit_ratio"], 50.0);
  EXPECT_EQ(report["config"]["policy"], "lru");
  EXPECT_EQ(report["config"]["capacity"], 10);
  EXPECT_EQ(report["config"]["shards"], 1);
  EXPECT_EQ(report["config"]["format"], "kv");
}

// Runs the built `pagekeeper` binary; returns its exit status, stdout and stderr.
struct CommandResult {
  int status = -1;
  std::string out;
  std::string err;
};

CommandResult run_cli(const std::string& args) {
  const auto dir = std::filesystem::path(::testing::TempDir());
  const auto out_path = dir / ("pagekeeper_cli_out_" + std::to_string(::getpid()));
  const auto err_path = dir / ("pagekeeper_cli_err_" + std::to_string(::getpid()));
  const std::string command = std::string("'") + PAGEKEEPER_CLI_PATH + "' " + args + " >'" +
                              out_path.string() + "' 2>'" + err_path.string() + "'";
  CommandResult result;
  int raw = std::system(command.c_str());
  result.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  auto slurp = [](const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  };
  result.out = slurp(out_path);
  result.err = slurp(err_path);
  std::filesystem::remove(out_path);
  std::filesystem::remove(err_path);
  return result;
}

TEST(SimCliTest, PrintsOneJsonObjectWithTheReferenceRatio) {
  CommandResult r = run_cli("sim --trace '" + oltp_path() +
                            "' --capacity 1000 --policy lru --watermark 1.0 --shards 1");
  ASSERT_EQ(r.status, 0) << r.err;
  nlohmann::json report = nlohmann::json::parse(r.out);  // throws unless exactly one value
  EXPECT_EQ(report["hit_ratio"], 32.83);
  EXPECT_EQ(report["requests"], 914145);
  EXPECT_GT(report["ops_per_sec"].get<double>(), 0.0);
  EXPECT_EQ(report["config"]["watermark"], 1.0);
}

TEST(SimCliTest, MalformedTraceExitsWithTheLineNumber) {
  TempTrace trace("1 1 0 0\n2 x 0 1\n");
  CommandResult r = run_cli("sim --format arc --capacity 5 --trace '" + trace.path() + "'");
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_NE(r.err.find("pagekeeper sim: error: " + trace.path() + ":2: n_blocks is not"),
            std::string::npos)
      << r.err;
}

TEST(SimCliTest, UsageErrorsAreRejected) {
  EXPECT_NE(run_cli("sim --capacity 5").status, 0);                             // no --trace
  EXPECT_NE(run_cli("sim --trace x --capacity 0").status, 0);                   // not positive
  EXPECT_NE(run_cli("sim --trace x --capacity 5 --policy lfu").status, 0);      // unknown
  EXPECT_NE(run_cli("sim --trace x --capacity 5 --watermark 2").status, 0);     // out of range
  EXPECT_NE(run_cli("sim --trace x --capacity 5 --format csv").status, 0);      // unknown
  EXPECT_NE(run_cli("").status, 0);                                             // no subcommand
  CommandResult help = run_cli("sim --help");
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("--watermark"), std::string::npos);
}

}  // namespace
}  // namespace pagekeeper::cli
