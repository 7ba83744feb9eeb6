#include "cli/sim.hpp"

#include <chrono>
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "cli/belady.hpp"
#include "pagekeeper/pool.hpp"

namespace pagekeeper::cli {

namespace {

constexpr const char* kPolicyNames = "lru, size-lru, wtinylfu or opt";

EvictionPolicy<std::uint64_t> policy_named(const std::string& name) {
  if (name == "lru") return EvictionPolicy<std::uint64_t>::lru();
  if (name == "size-lru") return EvictionPolicy<std::uint64_t>::size_aware_lru();
  if (name == "wtinylfu") return EvictionPolicy<std::uint64_t>::tiny_lfu();
  throw std::invalid_argument(std::string("--policy must be ") + kPolicyNames + ", got '" + name + "'");
}

void take_counts(SimResult& r, std::uint64_t hits, std::uint64_t misses, std::uint64_t evictions,
                 std::uint64_t rejected_oversize, std::uint64_t resident_entries, std::uint64_t resident_bytes) {
  r.hits = hits;
  r.misses = misses;
  r.evictions = evictions;
  r.rejected_oversize = rejected_oversize;
  r.resident_entries = resident_entries;
  r.resident_bytes = resident_bytes;
}

// Belady's MIN with bypass over the whole trace, read into memory first (keys as dense ids).
SimResult run_optimal(const SimOptions& options) {
  TraceReader reader = TraceReader::open_file(options.trace_path, options.format);
  SimResult result;
  result.format = reader.format();
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::uint32_t> ids;
  std::vector<std::uint64_t> sizes;
  bool unit_sizes = true;
  std::unordered_map<std::uint64_t, std::uint32_t> id_of;
  TraceRequest request;
  while (reader.next(request)) {
    const auto [it, added] = id_of.try_emplace(request.key, static_cast<std::uint32_t>(id_of.size()));
    if (added && id_of.size() > UINT32_MAX) throw std::invalid_argument("--policy opt: more than 2^32 distinct keys");
    ids.push_back(it->second);
    if (request.size != 1 && unit_sizes) {
      unit_sizes = false;
      sizes.assign(ids.size() - 1, 1);
    }
    if (!unit_sizes) sizes.push_back(request.size);
  }
  const BeladyResult opt = belady_min(ids, sizes, options.capacity);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.requests = ids.size();
  result.shards = 1;
  take_counts(result, opt.hits, opt.misses, opt.evictions, opt.rejected_oversize, opt.resident_entries,
              opt.resident_bytes);
  return result;
}

}  // namespace

std::vector<std::string> parse_policy_list(const std::string& text) {
  std::vector<std::string> names;
  std::stringstream in(text);
  std::string name;
  while (std::getline(in, name, ',')) {
    if (name != "lru" && name != "size-lru" && name != "wtinylfu" && name != "opt") {
      throw std::invalid_argument(std::string("--policy must be ") + kPolicyNames +
                                  " (or a comma-separated list of them), got '" + name + "'");
    }
    names.push_back(name);
  }
  if (names.empty() || text.back() == ',') {
    throw std::invalid_argument("--policy must name at least one policy, got '" + text + "'");
  }
  return names;
}

SimResult run_simulation(const SimOptions& options) {
  if (options.capacity == 0) throw std::invalid_argument("--capacity must be at least 1");
  if (!(options.watermark > 0.0 && options.watermark <= 1.0)) {
    throw std::invalid_argument("--watermark must be in (0, 1]");
  }
  if (options.shards && *options.shards == 0) {
    throw std::invalid_argument("--shards must be at least 1");
  }

  if (options.policy == "opt") return run_optimal(options);

  // The value stored for a key is its size, and the sizer reports it as the entry's bytes.
  PoolConfig<std::uint64_t, std::uint64_t> config;
  config.name = "sim";
  config.max_bytes = options.capacity;
  config.sizer = [](const std::uint64_t& size) { return size; };
  config.policy = policy_named(options.policy);
  config.low_watermark = options.watermark;
  config.shards = options.shards.value_or(0);  // 0: the pool chooses
  PagedResourcePool<std::uint64_t, std::uint64_t> pool(std::move(config));

  TraceReader reader = TraceReader::open_file(options.trace_path, options.format);
  SimResult result;
  result.format = reader.format();
  result.shards = pool.shard_count();

  const auto start = std::chrono::steady_clock::now();
  TraceRequest request;
  while (reader.next(request)) {
    ++result.requests;
    std::optional<std::uint64_t> cached = pool.get(request.key);
    if (!cached || *cached != request.size) pool.insert(request.key, request.size);
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const PoolStats stats = pool.stats();
  take_counts(result, stats.hits, stats.misses, stats.evictions, stats.rejected_oversize, stats.entry_count,
              stats.total_bytes);
  return result;
}

double hit_ratio_percent(const SimResult& result) {
  if (result.requests == 0) return 0.0;
  double percent = 100.0 * static_cast<double>(result.hits) / static_cast<double>(result.requests);
  return std::round(percent * 100.0) / 100.0;
}

nlohmann::ordered_json sim_report(const SimOptions& options, const SimResult& result) {
  nlohmann::ordered_json config = {
      {"trace", options.trace_path},
      {"format", std::string(trace_format_name(result.format))},
      {"capacity", options.capacity},
      {"policy", options.policy},
      {"watermark", options.watermark},
  };
  // The shard count the pool actually used (the pool's choice when --shards is absent).
  config["shards"] = result.shards;
  const double ops_per_sec =
      result.seconds > 0.0 ? static_cast<double>(result.requests) / result.seconds : 0.0;
  return {
      {"config", config},
      {"requests", result.requests},
      {"hits", result.hits},
      {"misses", result.misses},
      {"evictions", result.evictions},
      {"hit_ratio", hit_ratio_percent(result)},
      {"ops_per_sec", std::llround(ops_per_sec)},
      {"seconds", std::round(result.seconds * 1000.0) / 1000.0},
      {"rejected_oversize", result.rejected_oversize},
      {"resident_entries", result.resident_entries},
      {"resident_bytes", result.resident_bytes},
  };
}

}  // namespace pagekeeper::cli
