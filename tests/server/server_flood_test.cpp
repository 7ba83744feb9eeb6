// Flood test: the real pagekeeperd binary with a small embedding budget, many keep-alive
// connections sending unique texts for a bounded time. No answer may be 5xx, and the daemon's
// resident memory (VmRSS from /proc/<pid>/status) must stay under
//   embedding budget + kFixedOverheadBytes
// where the fixed overhead (documented in docs/PERFORMANCE.md, "## pagekeeperd") covers the
// binary and its libraries, worker thread stacks, the allocator's arenas, request and
// response buffers of the connections in flight, and the pool's per-entry bookkeeping that
// the budget does not count. Sanitizer builds multiply memory use (shadow memory, quarantine),
// so they get a larger overhead.

#include <gtest/gtest.h>

#include <sys/types.h>

#include <atomic>
#include <fstream>

#include "server_test_util.hpp"
#include "support/daemon_process.hpp"

namespace pagekeeper::test {
namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr std::uint64_t kFixedOverheadBytes = 768ull << 20;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr std::uint64_t kFixedOverheadBytes = 768ull << 20;
#else
constexpr std::uint64_t kFixedOverheadBytes = 64ull << 20;
#endif
#else
constexpr std::uint64_t kFixedOverheadBytes = 64ull << 20;
#endif
constexpr std::uint64_t kBudgetBytes = 8ull << 20;

std::uint64_t rss_bytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

TEST(ServerFlood, UniqueTextsFromManyConnectionsNo5xxAndBoundedMemory) {
  test_support::PagekeeperdProcess daemon({"--embedding-budget-mb", "8", "--no-host-memory", "--threads", "32",
                                           "--broker-tick-ms", "200"});
  const pid_t pid = daemon.pid();
  const int port = daemon.port();

  constexpr int kConnections = 24;
  constexpr auto kDuration = std::chrono::seconds(4);
  std::atomic<std::uint64_t> ok{0}, server_errors{0}, other{0}, transport_errors{0};
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> max_rss{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < kConnections; ++t) {
    clients.emplace_back([&, t] {
      httplib::Client c("127.0.0.1", port);
      c.set_keep_alive(true);
      c.set_read_timeout(10, 0);
      std::uint64_t n = 0;
      while (!stop.load()) {
        nlohmann::json texts = nlohmann::json::array();
        for (int i = 0; i < 16; ++i)
          texts.push_back("flood text from connection " + std::to_string(t) + " number " + std::to_string(n++) +
                          " with some padding words to make it realistic");
        const std::string body = nlohmann::json{{"input", texts}}.dump();
        auto r = c.Post("/v1/embeddings", body, "application/json");
        if (!r) {
          // A reused keep-alive connection can be closed by the server (idle timeout) just as
          // the next request goes out; HTTP clients retry such a request once on a new
          // connection. A second failure is a real transport error.
          r = c.Post("/v1/embeddings", body, "application/json");
        }
        if (!r) {
          if (transport_errors++ == 0) std::printf("first transport error: %s\n", httplib::to_string(r.error()).c_str());
        }
        else if (r->status >= 500) ++server_errors;
        else if (r->status == 200) ++ok;
        else ++other;
      }
    });
  }
  // The flood lasts kDuration, and on until the cache has evicted: the pool must have been
  // saturated for the memory bound to mean anything, and a sanitizer build on a loaded machine
  // may need longer to fill it.
  httplib::Client c("127.0.0.1", port);
  const auto evicted = [&] {
    auto r = c.Post("/api/embedding/cache/stats", "{}", "application/json");
    const auto j = r ? nlohmann::json::parse(r->body, nullptr, false) : nlohmann::json();
    return j.is_object() && j.value("evictions", std::uint64_t{0}) > 0;
  };
  const auto start = std::chrono::steady_clock::now();
  test_support::eventually(
      [&] {
        max_rss = std::max<std::uint64_t>(max_rss.load(), rss_bytes(pid));
        return std::chrono::steady_clock::now() - start >= kDuration && evicted();
      },
      std::chrono::milliseconds(50));  // the RSS sampling period
  stop = true;
  for (auto& client : clients) client.join();
  max_rss = std::max<std::uint64_t>(max_rss.load(), rss_bytes(pid));

  auto stats = c.Post("/api/embedding/cache/stats", "{}", "application/json");
  ASSERT_TRUE(stats);
  const auto s = nlohmann::json::parse(stats->body);

  const int exit_status = daemon.stop();

  EXPECT_EQ(server_errors.load(), 0u);
  EXPECT_EQ(other.load(), 0u);
  EXPECT_EQ(transport_errors.load(), 0u);
  EXPECT_GT(ok.load(), 50u);
  EXPECT_GT(s["evictions"].get<std::uint64_t>(), 0u) << s.dump();
  EXPECT_LE(s["totalBytes"].get<std::uint64_t>(), kBudgetBytes);
  EXPECT_LE(max_rss.load(), kBudgetBytes + kFixedOverheadBytes)
      << "max RSS " << (max_rss.load() >> 20) << " MiB";
  std::printf("flood: %llu ok requests (16 unique texts each), max RSS %llu MiB, evictions %llu\n",
              static_cast<unsigned long long>(ok.load()), static_cast<unsigned long long>(max_rss.load() >> 20),
              static_cast<unsigned long long>(s["evictions"].get<std::uint64_t>()));
  EXPECT_EQ(exit_status, 0) << "pagekeeperd did not exit cleanly on SIGTERM";
}

}  // namespace
}  // namespace pagekeeper::test
