// pagekeeper/host_memory.hpp
//
// HostMemory: the machine's (or the container's) real memory pressure, so the broker reacts
// to what the host has left and not only to budgets it was told. The anchor is CacheLib's
// MemoryMonitor (shared/docs/anchors.md §A).
//
// Where the figure comes from, in order:
//   1. cgroup v2, when the process's cgroup has a limit: `memory.max` (a byte count; the word
//      "max" means unlimited) and `memory.current`. The used figure is memory.current minus
//      `inactive_file` from `memory.stat` when that file has it (the "working set", as
//      kubelet and `docker stats` count it: inactive page cache is reclaimed before OOM).
//   2. Otherwise `/proc/meminfo`: limit = MemTotal, used = MemTotal - MemAvailable.
// Only the process's own cgroup directory is read, not its ancestors: a limit set only on a
// parent cgroup is not seen (the meminfo fallback then applies).
//
// A missing, unreadable or malformed file never throws and never crashes: the reading comes
// back with source `unknown` and a `reason` naming the file and the problem. The one
// exception is memory.max being absent or unreadable, which means "no cgroup v2 limit here"
// and falls back to /proc/meminfo (the reason then says so).
//
// Every path is injectable (HostMemoryPaths) so tests read fixture files.
//
// Thread safety: HostMemory holds only immutable paths; read() may be called from any thread
// concurrently. Each read() opens the files afresh (a few µs).

#pragma once

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace pagekeeper {

struct HostMemoryReading {
  enum class Source { cgroup_v2, meminfo, simulated, unknown };
  Source source = Source::unknown;
  // Bytes the host (or cgroup) allows: memory.max, or MemTotal. 0 when unknown.
  std::uint64_t limit_bytes = 0;
  // Bytes in use as defined above. 0 when unknown.
  std::uint64_t used_bytes = 0;
  // used / limit, uncapped; 0 when unknown.
  double pressure = 0.0;
  // Why the source is unknown, or a note on a fallback (e.g. "memory.max is 'max'"); empty
  // when the first choice worked without remark.
  std::string reason;

  bool known() const noexcept { return source != Source::unknown; }
};

// "cgroupV2", "meminfo", "simulated" or "unknown".
const char* source_label(HostMemoryReading::Source source) noexcept;

// camelCase JSON: {source, limitBytes, usedBytes, pressure, reason}.
void to_json(nlohmann::json& j, const HostMemoryReading& r);

// Anything that reports host memory pressure. The broker consumes this interface.
// Implementations must allow concurrent read() calls and must not throw.
class HostMemorySource {
 public:
  virtual ~HostMemorySource() = default;
  virtual HostMemoryReading read() const = 0;
};

struct HostMemoryPaths {
  // Directory holding memory.max / memory.current / memory.stat. Empty: no cgroup is
  // consulted and /proc/meminfo is used directly.
  std::filesystem::path cgroup_dir;
  std::filesystem::path meminfo = "/proc/meminfo";

  // This process's cgroup v2 directory (from the "0::<path>" line of /proc/self/cgroup,
  // under /sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid v1/v2 host) and
  // /proc/meminfo. cgroup_dir is empty when the process has no cgroup v2 membership.
  static HostMemoryPaths for_this_process();
};

// A host whose figures its owner sets (tests, simulations, what-if runs): read() reports
// source `simulated` with the last limit and usage given. Thread safety: set() and read() may
// run concurrently from any thread (one mutex).
class SimulatedHostMemory final : public HostMemorySource {
 public:
  // Throws std::invalid_argument when limit_bytes is 0.
  SimulatedHostMemory(std::uint64_t limit_bytes, std::uint64_t used_bytes);
  void set(std::uint64_t limit_bytes, std::uint64_t used_bytes);
  void set_used(std::uint64_t used_bytes);
  HostMemoryReading read() const override;

 private:
  mutable std::mutex mutex_;
  std::uint64_t limit_bytes_;  // guarded by mutex_
  std::uint64_t used_bytes_;   // guarded by mutex_
};

class HostMemory final : public HostMemorySource {
 public:
  explicit HostMemory(HostMemoryPaths paths = HostMemoryPaths::for_this_process());

  // Reads the files now. Never throws.
  HostMemoryReading read() const override;

  const HostMemoryPaths& paths() const noexcept { return paths_; }

 private:
  HostMemoryPaths paths_;
};

}  // namespace pagekeeper
