// The real pagekeeperd binary as a child process on a free loopback port, for tests that need
// the whole program (its resident memory, its exit status, several daemons sharing tiers).
// The port comes from the daemon's "listening on" stdout line; destruction kills a daemon the
// test did not stop.
//
// Thread safety: owned by one test; port() and pid() may be read from any thread.

#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

namespace pagekeeper::test_support {

class PagekeeperdProcess {
 public:
  // Starts PAGEKEEPER_BINARY_DIR/bin/pagekeeperd --port 0 `flags...` and waits until it
  // listens. Throws std::runtime_error when it cannot start or exits before listening.
  explicit PagekeeperdProcess(const std::vector<std::string>& flags) {
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe failed");
    pid_ = ::fork();
    if (pid_ < 0) {
      ::close(out[0]);
      ::close(out[1]);
      throw std::runtime_error("fork failed");
    }
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      ::close(out[0]);
      ::close(out[1]);
      std::vector<std::string> args = {std::string(PAGEKEEPER_BINARY_DIR) + "/bin/pagekeeperd", "--port", "0"};
      args.insert(args.end(), flags.begin(), flags.end());
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    // Log lines may come first; the port is on the "listening on" line.
    std::string line;
    char c = 0;
    while (::read(out[0], &c, 1) == 1) {
      if (c != '\n') {
        line += c;
        continue;
      }
      if (line.find("listening on") != std::string::npos) break;
      line.clear();
    }
    ::close(out[0]);
    const auto colon = line.rfind(':');
    if (line.find("listening on") == std::string::npos || colon == std::string::npos) {
      stop();
      throw std::runtime_error("pagekeeperd did not start");
    }
    port_ = std::atoi(line.c_str() + colon + 1);
  }
  ~PagekeeperdProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  PagekeeperdProcess(const PagekeeperdProcess&) = delete;
  PagekeeperdProcess& operator=(const PagekeeperdProcess&) = delete;

  // SIGTERM, then waits: the exit status (0 for a clean stop, 128 when a signal ended it).
  // Requires: not stopped yet.
  int stop() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  }

  int port() const { return port_; }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace pagekeeper::test_support
