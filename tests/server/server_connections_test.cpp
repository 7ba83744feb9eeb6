// Many connections at once: with 2,000 idle keep-alive connections and 100 slowloris
// connections (trickling a header a byte at a time) open, a fresh client still gets each of
// 200 answers quickly, and the idle connections are still served after. The test prints the
// p50 and p99 (the target is a p99 under 20 ms, see docs/PERFORMANCE.md) and fails at a p99
// of 1 s: CI runs it under sanitizers on a loaded two-core machine (two busy loops beside it
// took the p99 to 268 ms), while a server that queued the fresh client behind the others
// would take the slowloris' read timeout, 30 s.

#include <gtest/gtest.h>

#include <sys/resource.h>

#include <algorithm>
#include <atomic>

#include "server_test_util.hpp"

namespace pagekeeper::test {
namespace {

using Clock = std::chrono::steady_clock;

// The limit of a read that ends at its answer: a passing test does not wait it out.
constexpr std::chrono::milliseconds kAnswerWait{20000};
constexpr int kIdle = 2000;
constexpr int kSlowloris = 100;
constexpr int kRequests = 200;

// Reads one response with a Content-Length body; its status, or 0.
int read_response(int fd, std::chrono::milliseconds timeout) {
  std::string in;
  const auto deadline = Clock::now() + timeout;
  char buf[8192];
  while (true) {
    if (has_complete_response(in)) return status_of(in);
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return 0;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) return 0;
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return 0;
    in.append(buf, static_cast<std::size_t>(n));
  }
}

const std::string kHealth = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

TEST(ManyConnections, FreshClientIsServedQuicklyBesideIdleAndSlowlorisConnections) {
  // Client and server sockets live in this process: 2 x 2,100 descriptors and some.
  rlimit limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &limit), 0);
  const rlim_t wanted = 2 * (kIdle + kSlowloris) + 512;
  if (limit.rlim_cur < wanted) {
    // The soft limit up to what is needed; a hard limit below that too is raised where the
    // process may (root, as in CI), else the soft limit goes as high as the hard one allows.
    rlimit raised = limit;
    raised.rlim_cur = wanted;
    if (raised.rlim_max != RLIM_INFINITY && raised.rlim_max < wanted) raised.rlim_max = wanted;
    if (::setrlimit(RLIMIT_NOFILE, &raised) != 0) {
      limit.rlim_cur = limit.rlim_max == RLIM_INFINITY ? wanted : std::min(wanted, limit.rlim_max);
      ::setrlimit(RLIMIT_NOFILE, &limit);
    }
    ::getrlimit(RLIMIT_NOFILE, &limit);
  }
  // Too few descriptors is a machine this test cannot vouch for: a failure, not a skip.
  ASSERT_GE(limit.rlim_cur, wanted) << "open-file hard limit " << limit.rlim_max << " is below " << wanted
                                    << " and cannot be raised (run as root or raise `ulimit -Hn`)";

  ServerConfig config = small_config();
  config.max_connections = kIdle + kSlowloris + 64;
  config.read_timeout = std::chrono::milliseconds(30000);  // the slowloris stay for the whole test
  TestServer server(config);

  std::vector<int> idle;
  for (int i = 0; i < kIdle; ++i) {
    const int fd = connect_loopback(server.port());
    ASSERT_GE(fd, 0) << "connection " << i;
    idle.push_back(fd);
    ASSERT_TRUE(send_all(fd, kHealth));
    ASSERT_EQ(read_response(fd, kAnswerWait), 200) << "idle connection " << i;
  }
  std::vector<int> slow;
  for (int i = 0; i < kSlowloris; ++i) {
    const int fd = connect_loopback(server.port());
    ASSERT_GE(fd, 0);
    slow.push_back(fd);
    ASSERT_TRUE(send_all(fd, "POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Trickle: "));
  }
  // The slowloris keep trickling a byte each while the fresh client works.
  std::atomic<bool> done{false};
  std::thread trickler([&] {
    while (!done.load()) {
      for (int fd : slow) send_all(fd, "a");
      pollfd p{slow.front(), POLLIN, 0};  // paces the trickle: a byte each per 50 ms
      ::poll(&p, 1, 50);
    }
  });

  std::vector<double> ms;
  for (int i = 0; i < kRequests; ++i) {
    const auto t0 = Clock::now();
    const int fd = connect_loopback(server.port());
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(send_all(fd, kHealth));
    const int status = read_response(fd, kAnswerWait);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    ::close(fd);
    ASSERT_EQ(status, 200) << "request " << i;
  }
  done = true;
  trickler.join();
  std::sort(ms.begin(), ms.end());
  const double p50 = ms[ms.size() / 2];
  const double p99 = ms[ms.size() * 99 / 100];
  std::printf("fresh client over %d requests beside %d idle and %d slowloris connections: p50 %.2f ms, p99 %.2f ms\n",
              kRequests, kIdle, kSlowloris, p50, p99);
  EXPECT_LT(p99, 1000.0);

  // The idle connections were kept, and still work.
  for (int i = 0; i < kIdle; i += 97) {
    ASSERT_TRUE(send_all(idle[static_cast<std::size_t>(i)], kHealth));
    EXPECT_EQ(read_response(idle[static_cast<std::size_t>(i)], kAnswerWait), 200) << i;
  }
  for (int fd : idle) ::close(fd);
  for (int fd : slow) ::close(fd);
}

}  // namespace
}  // namespace pagekeeper::test
