// Shared fixtures of the adapter tests: a manual clock and adapter files on disk.

#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "pagekeeper/adapter_loader.hpp"
#include "support/manual_clock.hpp"

namespace pagekeeper::adapter_test {

inline constexpr std::uint64_t kMiB = 1024 * 1024;

using test_support::ManualClock;

inline AdapterInfo adapter(std::string name, std::string domain, std::uint64_t size_bytes,
                           double priority = 0.5, std::int64_t last_used_ms = 0) {
  AdapterInfo a;
  a.name = std::move(name);
  a.domain = std::move(domain);
  a.size_bytes = size_bytes;
  a.priority = priority;
  a.last_used_ms = last_used_ms;
  return a;
}

// A scratch folder removed when the object dies.
class ScratchDir {
 public:
  ScratchDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("pk-adapter-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  // Writes `bytes` deterministic bytes to <dir>/<name>; returns the path.
  std::string write_file(const std::string& name, std::uint64_t bytes) const {
    const auto p = path_ / name;
    std::ofstream out(p, std::ios::binary);
    for (std::uint64_t i = 0; i < bytes; ++i) out.put(static_cast<char>(i * 31 + 7));
    return p.string();
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace pagekeeper::adapter_test
