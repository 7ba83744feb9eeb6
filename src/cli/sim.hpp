// The trace simulator behind `pagekeeper sim`: replays a trace through a real
// PagedResourcePool and reports hits, misses and evictions.
//
// Replay rule, per request (key, size): get(key); a miss inserts the key with its size as
// both value and byte size (so `capacity` is in the trace's size units: keys, for arc traces
// whose sizes are all 1). A hit whose stored size differs from the request's (a kv trace may
// resize an object) re-inserts it with the new size; it still counts as a hit.
// Policy "opt" is not a pool: it is Belady's MIN with bypass computed offline from the whole
// trace (cli/belady.hpp), the most hits any policy can get at that capacity (exact when all
// sizes are equal), so that every report can say what fraction of it a policy reaches.
//
// Thread safety: run_simulation is reentrant; each call owns its pool and reader.

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/trace.hpp"

namespace pagekeeper::cli {

struct SimOptions {
  std::string trace_path;
  TraceFormat format = TraceFormat::kAuto;
  std::uint64_t capacity = 0;   // the pool's max_bytes, in trace size units; must be > 0
  std::string policy = "lru";   // "lru", "size-lru", "wtinylfu" or "opt"
  double watermark = 1.0;       // the pool's low_watermark, in (0, 1]
  std::optional<std::uint32_t> shards;  // unset: the pool's default
};

struct SimResult {
  TraceFormat format = TraceFormat::kAuto;  // the resolved format of the trace
  std::uint32_t shards = 0;                 // the pool's shard count
  std::uint64_t requests = 0;
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t evictions = 0;
  std::uint64_t rejected_oversize = 0;  // misses whose size alone exceeded the capacity
  std::uint64_t resident_entries = 0;   // at the end of the replay
  std::uint64_t resident_bytes = 0;
  double seconds = 0.0;  // wall time of the replay, reading included
};

// Replays the trace. Throws std::invalid_argument for invalid options (naming the option),
// TraceError for unreadable or malformed traces.
SimResult run_simulation(const SimOptions& options);

// The policies of a --policy value: one name or a comma-separated list, in order. Throws
// std::invalid_argument naming --policy for an unknown or empty name.
std::vector<std::string> parse_policy_list(const std::string& text);

// hits / requests in percent, rounded to two decimals (0 for an empty trace).
double hit_ratio_percent(const SimResult& result);

// The one JSON object `pagekeeper sim` prints: the configuration echoed, then requests,
// hits, misses, evictions, hit_ratio (percent, two decimals), ops_per_sec and the rest.
nlohmann::ordered_json sim_report(const SimOptions& options, const SimResult& result);

}  // namespace pagekeeper::cli
