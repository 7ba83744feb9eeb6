// Helpers for the tier tests: a temporary directory removed at the end, and deterministic
// keys, vectors and records (a key's vector is a function of the key, so a reader can check
// what it reads).

#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "pagekeeper/tier_record.hpp"

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

// Key number `i`. Fixed width, so every record of one dimension count has the same size.
inline std::string key_of(std::size_t i) {
  char buffer[48];  // room for any size_t
  std::snprintf(buffer, sizeof(buffer), "model|digest|%08zu", i);
  return buffer;
}

// Keys `first` to `first + count - 1`.
inline std::vector<std::string> keys_for(std::size_t first, std::size_t count) {
  std::vector<std::string> out;
  for (std::size_t i = first; i < first + count; ++i) out.push_back(key_of(i));
  return out;
}

// Those keys with their vectors of `dims` as tier records.
inline std::vector<std::pair<std::string, std::string>> records_for(std::size_t first, std::size_t count,
                                                                    std::size_t dims) {
  std::vector<std::pair<std::string, std::string>> out;
  for (std::size_t i = first; i < first + count; ++i) {
    out.emplace_back(key_of(i), encode_vector_record(key_of(i), vector_for(i, dims)));
  }
  return out;
}

}  // namespace pagekeeper::testing
