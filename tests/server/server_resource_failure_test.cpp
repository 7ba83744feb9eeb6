// The real pagekeeperd binary under an address-space limit (RLIMIT_AS), so that creating a
// thread (its stack) or allocating fails at every point of startup in turn, and then while
// it reads large requests. Whatever fails, the daemon either serves or exits with status 1
// and a message naming what failed; it never dies of a signal (std::terminate aborts).
// Sanitizer builds reserve terabytes of shadow memory and cannot run under such a limit.

#include <gtest/gtest.h>

#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>

#include "server_test_util.hpp"

namespace pagekeeper::test {
namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

using namespace std::chrono_literals;

struct LimitedDaemon {
  pid_t pid = -1;
  int output = -1;     // the daemon's stdout and stderr
  std::string text;    // what it wrote so far
  int port = 0;        // from its "listening on" line; 0 until then
};

// Starts pagekeeperd on a free port with its address space limited to `limit_bytes`.
LimitedDaemon start_limited(rlim_t limit_bytes) {
  int out[2];
  LimitedDaemon run;
  if (::pipe(out) != 0) return run;
  run.pid = ::fork();
  if (run.pid == 0) {
    ::dup2(out[1], 1);
    ::dup2(out[1], 2);
    ::close(out[0]);
    ::close(out[1]);
    const rlimit limit{limit_bytes, limit_bytes};
    ::setrlimit(RLIMIT_AS, &limit);
    const std::string bin = std::string(PAGEKEEPER_BINARY_DIR) + "/bin/pagekeeperd";
    ::execl(bin.c_str(), bin.c_str(), "--port", "0", "--no-host-memory", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(out[1]);
  run.output = out[0];
  return run;
}

// Reads the daemon's output until it is listening or has closed its output (exited), for at
// most `within`. Returns whether it is listening.
bool wait_listening(LimitedDaemon& run, std::chrono::milliseconds within) {
  const auto deadline = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{run.output, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(run.output, buf, sizeof buf);
    if (n <= 0) return false;
    run.text.append(buf, static_cast<std::size_t>(n));
    const auto at = run.text.find("listening on http://127.0.0.1:");
    const auto end = at == std::string::npos ? std::string::npos : run.text.find('\n', at);
    if (end != std::string::npos) {
      run.port = std::atoi(run.text.c_str() + run.text.rfind(':', end) + 1);
      return true;
    }
  }
  return false;
}

// Waits for the daemon to exit (SIGKILL after `within`) and returns its wait status.
int reap(LimitedDaemon& run, std::chrono::milliseconds within) {
  const auto deadline = std::chrono::steady_clock::now() + within;
  int status = 0;
  while (::waitpid(run.pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(run.pid, SIGKILL);
      ::waitpid(run.pid, &status, 0);
      break;
    }
    // Drain the output so the daemon never blocks writing its log.
    pollfd p{run.output, POLLIN, 0};
    if (::poll(&p, 1, 20) > 0) {
      char buf[4096];
      const ssize_t n = ::read(run.output, buf, sizeof buf);
      if (n > 0) run.text.append(buf, static_cast<std::size_t>(n));
    }
  }
  char buf[4096];
  for (ssize_t n; (n = ::read(run.output, buf, sizeof buf)) > 0;) run.text.append(buf, static_cast<std::size_t>(n));
  ::close(run.output);
  return status;
}

TEST(ServerResourceFailure, ThreadAndMemoryFailuresAreAClearErrorNeverAnAbort) {
  if (kSanitized) GTEST_SKIP() << "sanitizers reserve more address space than any limit allows";
  constexpr rlim_t kMiB = 1u << 20;
  int refused_naming_a_thread = 0;
  rlim_t starts_at = 0;
  // From too small to start at all, upward until the daemon starts: every limit on the way
  // fails somewhere else in startup.
  for (rlim_t limit = 48 * kMiB; limit <= 1024 * kMiB && starts_at == 0; limit += 3 * kMiB) {
    SCOPED_TRACE("RLIMIT_AS " + std::to_string(limit / kMiB) + " MiB");
    LimitedDaemon run = start_limited(limit);
    ASSERT_GT(run.pid, 0);
    const bool listening = wait_listening(run, test_support::kPatience);
    if (listening) {
      starts_at = limit;
      ::kill(run.pid, SIGTERM);
    }
    const int status = reap(run, test_support::kPatience);
    ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status) << "; output:\n" << run.text;
    if (listening) {
      EXPECT_EQ(WEXITSTATUS(status), 0) << run.text;
      continue;
    }
    if (WEXITSTATUS(status) == 127 && run.text.find("error while loading shared libraries") != std::string::npos)
      continue;  // too small for the dynamic loader: pagekeeperd never ran
    EXPECT_EQ(WEXITSTATUS(status), 1) << run.text;
    const auto error = run.text.find("pagekeeperd: error: ");
    ASSERT_NE(error, std::string::npos) << run.text;
    const std::string message = run.text.substr(error);
    EXPECT_TRUE(message.find("thread") != std::string::npos || message.find("out of memory") != std::string::npos)
        << "the message does not say what failed: " << message;
    if (message.find("thread") != std::string::npos) ++refused_naming_a_thread;
  }
  ASSERT_GT(starts_at, 0u) << "pagekeeperd did not start under 1 GiB of address space";
  EXPECT_GT(refused_naming_a_thread, 0) << "no limit made a thread fail to start";

  // Just above the smallest limit it starts with, requests with bodies of several MiB make
  // reading them fail to allocate: those connections are closed or answered, the daemon
  // lives on and stops cleanly.
  const std::string body = R"({"input":[")" + std::string(6u << 20, 'x') + R"("]})";
  for (rlim_t limit = starts_at; limit < starts_at + 24 * kMiB; limit += 3 * kMiB) {
    SCOPED_TRACE("RLIMIT_AS " + std::to_string(limit / kMiB) + " MiB, large requests");
    LimitedDaemon run = start_limited(limit);
    ASSERT_GT(run.pid, 0);
    if (!wait_listening(run, test_support::kPatience)) {
      reap(run, test_support::kPatience);
      continue;
    }
    // Whatever comes back (or nothing, within 3 s): what counts is how the daemon ends.
    for (int i = 0; i < 3; ++i) raw_exchange(run.port, http_request("POST", "/v1/embeddings", body), 3000);
    ::kill(run.pid, SIGTERM);
    const int status = reap(run, test_support::kPatience);
    ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status) << "; output:\n" << run.text;
    EXPECT_EQ(WEXITSTATUS(status), 0) << run.text;
  }
}

}  // namespace
}  // namespace pagekeeper::test
