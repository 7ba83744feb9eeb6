// pagekeeper/resource_pool.hpp
//
// ResourcePool is the interface the PressureBroker consumes: anything that holds bytes
// against a budget and can give some back. PagedResourcePool implements it; so do the
// adapter pager and the memory budget.
//
// Thread safety: every method of every implementation must be safe to call from any
// thread, concurrently with the implementation's own operations.

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pagekeeper/detail/ghost_keys.hpp"

namespace pagekeeper {

// Counters and gauges of one pool at one instant. Each field is read atomically, but the
// fields together are not one atomic snapshot: under concurrent traffic they may disagree
// by the operations in flight.
struct PoolStats {
  std::string name;
  std::uint64_t entry_count = 0;
  // Entries that have at least one live pin (not the sum of pins).
  std::uint64_t pinned_count = 0;
  std::uint64_t total_bytes = 0;
  std::uint64_t max_bytes = 0;
  // total_bytes / max_bytes, uncapped (can exceed 1.0); 0 when max_bytes is 0.
  double pressure = 0.0;
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t evictions = 0;
  // Loads currently running (single-flight slots).
  std::uint64_t inflight = 0;
  // Values refused because they were larger than max_bytes on their own.
  std::uint64_t rejected_oversize = 0;
  // Re-loads of entries evicted shortly before (found in the pool's ghost of evicted keys;
  // 0 when it keeps none). Each is also a miss.
  std::uint64_t ghost_hits = 0;
};

// Re-loads of recently evicted entries, counted since the pool was created or cleared, with
// how deep in the eviction history each was found: the bytes evicted after it plus its own,
// which is the extra budget that would have kept it resident.
struct GhostReading {
  std::uint64_t hits = 0;
  pool_detail::GhostDepths depths;  // hits by depth in bytes
};

// One resident entry as seen from outside. Times are milliseconds on the process's
// monotonic clock (see pagekeeper::monotonic_ms), not wall-clock time; loaded_at_ms has
// 1 s resolution, last_access_at_ms the clock's few ms.
struct EntrySnapshot {
  std::string key;
  std::uint64_t size_bytes = 0;
  std::uint32_t pin_count = 0;
  std::int64_t loaded_at_ms = 0;
  std::int64_t last_access_at_ms = 0;
  std::uint64_t access_count = 0;
};

// Their JSON wire form is the server's (pagekeeper/core_json.hpp).

class ResourcePool {
 public:
  virtual ~ResourcePool() = default;

  // Stable name of this tier; the broker deduplicates registrations by it.
  virtual std::string tier_name() const = 0;
  // Budget in bytes. 0 means "not managed": the broker never acts on or alerts about it.
  virtual std::uint64_t capacity_bytes() const = 0;
  // Bytes currently held.
  virtual std::uint64_t usage_bytes() const = 0;
  // usage / capacity, uncapped; 0 when capacity is 0.
  virtual double pressure() const {
    const auto cap = capacity_bytes();
    return cap == 0 ? 0.0 : static_cast<double>(usage_bytes()) / static_cast<double>(cap);
  }
  // Frees at least `bytes` if it can, evicting whole unpinned entries in policy order, and
  // returns the bytes actually freed (may overshoot; less when only pinned entries remain).
  // Never frees anything when `bytes` is 0.
  virtual std::uint64_t evict_at_least(std::uint64_t bytes) = 0;
  virtual std::vector<EntrySnapshot> snapshot() const = 0;
  virtual PoolStats stats() const = 0;
  // The pool's ghost of evicted keys; nullopt when it keeps none (the default).
  virtual std::optional<GhostReading> ghost() const { return std::nullopt; }
};

}  // namespace pagekeeper
