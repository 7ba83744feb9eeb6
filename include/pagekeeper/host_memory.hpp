// pagekeeper/host_memory.hpp
//
// HostMemory: the one reading of this process's memory limits on Linux, for the broker (what
// the host or container has left) and for MemoryBudget (how much RAM this process may use), so
// the two never disagree about cgroups.
//
// The limits that apply to a process:
//   * every cgroup v2 `memory.max` that is a number on the process's cgroup path, from its own
//     directory up to the root (a limit on a parent binds its children too); used = that
//     directory's `memory.current` minus `inactive_file` from its `memory.stat` when that file
//     has it (the "working set", as kubelet and `docker stats` count it: inactive page cache is
//     reclaimed before OOM);
//   * every cgroup v1 `memory.limit_in_bytes` below 2^62 (v1 writes "no limit" as about 2^63)
//     on the process's v1 memory-controller path and its ancestors; used = `memory.usage_in_bytes`
//     minus `total_inactive_file` (or `inactive_file`) from `memory.stat`;
//   * the host: limit = MemTotal, used = MemTotal - MemAvailable (/proc/meminfo).
// read() reports the one that binds: the highest pressure (used / limit) among them. limit_bytes()
// is the smallest limit, the RAM this process can have at most.
//
// Where the cgroups are: HostMemoryPaths::for_this_process() reads /proc/self/cgroup ("0::<path>"
// is v2; a line whose controllers include "memory" is v1) and finds v2 under /sys/fs/cgroup (or
// /sys/fs/cgroup/unified on a hybrid host) and v1 under /sys/fs/cgroup/memory. A default
// HostMemoryPaths consults no cgroup (meminfo only); `cgroup_dir` names one v2 directory to read
// alone (no walk), for fixtures.
//
// A missing, unreadable or malformed file never throws and never crashes. A cgroup directory
// without a limit file, or whose limit is "max" / the v1 sentinel, sets no limit (the reason
// says so when the host's figure is reported for want of one). A limit that is set but cannot
// be read (a malformed limit or usage) makes the reading unknown, with a reason naming the file
// and the problem: it might be the one that binds. An unreadable /proc/meminfo makes the
// reading unknown only when no cgroup limit was read.
//
// Every path is injectable (HostMemoryPaths) so tests read fixture files.
//
// Thread safety: HostMemory holds only immutable paths; read() and limit_bytes() may be called
// from any thread concurrently. Each call opens the files afresh (a few µs per directory).

#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "pagekeeper/detail/mutex.hpp"

namespace pagekeeper {

struct HostMemoryReading {
  enum class Source { cgroup_v2, cgroup_v1, meminfo, simulated, unknown };
  Source source = Source::unknown;
  // Bytes the binding limit allows: memory.max, memory.limit_in_bytes or MemTotal. 0 when
  // unknown.
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

// "cgroupV2", "cgroupV1", "meminfo", "simulated" or "unknown".
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
  // One cgroup v2 directory holding memory.max / memory.current / memory.stat, read alone
  // (fixtures). Empty: the walk below (or no cgroup when self_cgroup is empty too).
  std::filesystem::path cgroup_dir;
  // The membership file ("/proc/self/cgroup") and the cgroup mount; empty self_cgroup: no
  // cgroup is consulted.
  std::filesystem::path self_cgroup;
  std::filesystem::path cgroup_root = "/sys/fs/cgroup";
  std::filesystem::path meminfo = "/proc/meminfo";

  // This process: /proc/self/cgroup under /sys/fs/cgroup, and /proc/meminfo.
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
  mutable Mutex mutex_;
  std::uint64_t limit_bytes_ PAGEKEEPER_GUARDED_BY(mutex_);
  std::uint64_t used_bytes_ PAGEKEEPER_GUARDED_BY(mutex_);
};

class HostMemory final : public HostMemorySource {
 public:
  explicit HostMemory(HostMemoryPaths paths = HostMemoryPaths::for_this_process());

  // The binding limit now (see the file comment). Never throws.
  HostMemoryReading read() const override;
  // The smallest limit in bytes: min(MemTotal, every readable cgroup limit on the path). 0
  // when MemTotal cannot be read. Never throws.
  std::uint64_t limit_bytes() const;

  const HostMemoryPaths& paths() const noexcept { return paths_; }

 private:
  HostMemoryPaths paths_;
};

}  // namespace pagekeeper
