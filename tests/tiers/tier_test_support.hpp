// Helpers for the tier tests: a temporary directory removed at the end, and deterministic
// vectors (a key's vector is a function of the key, so a reader can check what it reads).

#pragma once

#include <cstdlib>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace pagekeeper::testing {

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "pagekeeper-tier-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// The vector written for key number `i`: every float depends on i and the position.
inline std::vector<float> vector_for(std::size_t i, std::size_t dimensions) {
  std::vector<float> v(dimensions);
  for (std::size_t d = 0; d < dimensions; ++d) {
    v[d] = static_cast<float>(i % 9973) * 0.001f + static_cast<float>(d) * 0.5f;
  }
  return v;
}

}  // namespace pagekeeper::testing
