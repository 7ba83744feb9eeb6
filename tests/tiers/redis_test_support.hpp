// Real redis-server processes for tests, on 127.0.0.1 and free ports: a standalone server
// (killed with SIGKILL and restarted on its port at will) and a three-master Cluster built
// with `redis-cli --cluster create`. Readiness is polled with a deadline, never slept for;
// each poll is a redis-cli process, so polls are paced to leave the cores to the servers.

#pragma once

#include <array>
#include <memory>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "support/patience.hpp"
#include "tiers/tier_test_support.hpp"

namespace pagekeeper::testing {

// How often a wait polls with a redis-cli process: forking one back to back would take a core
// from the redis-server processes the wait is for.
inline constexpr std::chrono::milliseconds kRedisPollPeriod{20};

// The reply timeout of the tiers in tests that are not about timeouts. The tier's default
// (50 ms) suits an idle network, but a loaded CI machine can leave a redis-server without a
// core for longer, and such a test would then fail on a call that was merely slow.
inline constexpr std::chrono::milliseconds kRedisReplyTimeout{10'000};

inline bool port_is_free(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

// A port that is free, and whose Cluster bus port (port + 10000) is free too. Both lie below
// the kernel's ephemeral range (32768 and up by default), so no outgoing connection can take
// them between this check and redis-server's bind, or while a test has the server down.
inline int free_redis_port() {
  static std::mt19937 rng(static_cast<unsigned>(::getpid()) ^
                          static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count()));
  std::uniform_int_distribution<int> pick(20000, 22767);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const int port = pick(rng);
    if (port_is_free(port) && port_is_free(port + 10000)) return port;
  }
  throw std::runtime_error("no free port for redis-server");
}

// Runs a command, returns its standard output.
inline std::string run_command(const std::string& command) {
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("popen failed: " + command);
  std::array<char, 4096> buffer{};
  std::size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) out.append(buffer.data(), n);
  ::pclose(pipe);
  return out;
}

class RedisServer {
 public:
  // Another test process (ctest runs two at once) may bind the free port first: then this
  // server exits at start and another port is tried.
  explicit RedisServer(std::vector<std::string> extra_args = {})
      : port_(free_redis_port()), extra_(std::move(extra_args)) {
    for (int attempt = 1;; ++attempt) {
      try {
        start();
        return;
      } catch (const PortTaken&) {
        if (attempt == 5) throw;
        port_ = free_redis_port();
      }
    }
  }
  ~RedisServer() { kill(); }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string url() const { return "redis://" + address(); }
  bool running() const { return pid_ > 0; }

  // Starts (again) on the same port, and waits until it answers (it, not another test's
  // server on a port taken meanwhile: the answer names its process id).
  void start() {
    if (pid_ > 0) return;
    std::vector<std::string> args = {"redis-server", "--port", std::to_string(port_), "--bind",
                                      "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
                                      dir_.path().string(), "--loglevel", "warning"};
    args.insert(args.end(), extra_.begin(), extra_.end());
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      // Its start-up banner and warnings would bury the test's own output.
      const int null_fd = ::open("/dev/null", O_WRONLY);
      if (null_fd >= 0) ::dup2(null_fd, 1);
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execvp("redis-server", argv.data());
      ::_exit(127);
    }
    const std::string own_pid = "process_id:" + std::to_string(pid_) + "\r";
    bool exited = false;
    const bool answering = test_support::eventually(
        [&] {
          if (cli("INFO server").find(own_pid) != std::string::npos) return true;
          exited = ::waitpid(pid_, nullptr, WNOHANG) == pid_;
          return exited;
        },
        kRedisPollPeriod);
    if (exited) {
      pid_ = -1;
      throw PortTaken("redis-server exited at start (port " + std::to_string(port_) + " taken?)");
    }
    if (!answering) {
      kill();
      throw std::runtime_error("redis-server did not answer within " +
                               std::to_string(test_support::kPatience.count()) + " s");
    }
  }

  // SIGSTOP: the server accepts connections and requests (the kernel queues them) and answers
  // nothing until resume(). Requires: running.
  void pause() const { ::kill(pid_, SIGSTOP); }
  // SIGCONT: it goes on with what was queued.
  void resume() const { ::kill(pid_, SIGCONT); }

  // SIGKILL, and waits for the process to be gone.
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  // redis-cli against this server; returns what it prints.
  std::string cli(const std::string& args) const {
    return run_command("redis-cli -h 127.0.0.1 -p " + std::to_string(port_) + " " + args + " 2>&1");
  }

 private:
  struct PortTaken : std::runtime_error {
    using std::runtime_error::runtime_error;
  };

  TempDir dir_;
  int port_;
  std::vector<std::string> extra_;
  pid_t pid_ = -1;
};

// Three masters (with `replicas` replicas each), all 16384 slots assigned, every node
// agreeing the cluster is ok.
class RedisCluster {
 public:
  explicit RedisCluster(std::size_t replicas = 0) {
    nodes_.resize(3 * (1 + replicas));
    for (auto& node : nodes_) {
      node = std::make_unique<RedisServer>(std::vector<std::string>{
          "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"});
    }
    std::string create = "redis-cli --cluster create";
    for (const auto& node : nodes_) create += " " + node->address();
    create += " --cluster-replicas " + std::to_string(replicas) + " --cluster-yes 2>&1";
    const std::string out = run_command(create);
    if (out.find("[OK] All 16384 slots covered") == std::string::npos) {
      throw std::runtime_error("redis-cli --cluster create failed: " + out);
    }
    wait_ok();
  }

  RedisServer& node(std::size_t i) { return *nodes_.at(i); }
  std::size_t size() const { return nodes_.size(); }

  // Polls (with a deadline generous enough for a loaded two-core machine) until every running
  // node reports cluster_state:ok and knows all slots.
  void wait_ok() {
    const bool ok = test_support::eventually(
        [&] {
          for (const auto& node : nodes_) {
            if (!node->running()) continue;
            const std::string info = node->cli("CLUSTER INFO");
            if (info.find("cluster_state:ok") == std::string::npos ||
                info.find("cluster_slots_assigned:16384") == std::string::npos) {
              return false;
            }
          }
          return true;
        },
        kRedisPollPeriod);
    if (!ok) {
      throw std::runtime_error("Redis Cluster did not become ok within " +
                               std::to_string(test_support::kPatience.count()) + " s");
    }
  }

  std::string node_id(std::size_t i) {
    std::string id = node(i).cli("CLUSTER MYID");
    while (!id.empty() && (id.back() == '\n' || id.back() == '\r')) id.pop_back();
    return id;
  }

 private:
  std::vector<std::unique_ptr<RedisServer>> nodes_;
};

}  // namespace pagekeeper::testing
