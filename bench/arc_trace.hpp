// The keys of an ARC trace for the benchmarks that replay one (bench/*.cpp). The traces are
// not in the repository: PAGEKEEPER_TRACE_DIR names the directory that holds them, and a
// benchmark without it (or without the file) gets no keys and skips itself.
//
// Thread safety: call from the benchmark's main thread (Google Benchmark runs the setup of
// each benchmark there); the returned vector stays valid and unchanged for the process.

#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "cli/trace.hpp"

namespace pagekeeper::bench {

// The first `cap` request keys of trace file `name` in PAGEKEEPER_TRACE_DIR, read once per
// process for each name and cap; empty when the directory is unset or the file is missing
// or unreadable.
inline const std::vector<std::uint64_t>& arc_trace_keys(const std::string& name, std::size_t cap = SIZE_MAX) {
  static std::map<std::pair<std::string, std::size_t>, std::vector<std::uint64_t>> loaded;
  const auto [it, added] = loaded.try_emplace({name, cap});
  const char* dir = std::getenv("PAGEKEEPER_TRACE_DIR");  // NOLINT(concurrency-mt-unsafe)
  if (!added || dir == nullptr) return it->second;
  try {
    auto reader = TraceReader::open_file(std::string(dir) + "/" + name);
    TraceRequest r;
    while (it->second.size() < cap && reader.next(r)) it->second.push_back(r.key);
  } catch (const TraceError&) {
    it->second.clear();
  }
  return it->second;
}

}  // namespace pagekeeper::bench
