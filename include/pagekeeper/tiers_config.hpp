// pagekeeper/tiers_config.hpp
//
// TiersConfig: which tiers sit below a process's embedding cache (`--tier-dir`,
// `--tier-disk-mb`, `--redis` on pagekeeperd and on the pagekeeper CLI's in-process mode,
// `[tiers]` in pagekeeperd's TOML), and open_tiers(), which builds them: the local LMDB tier
// first, then Redis, in one TierChain.
//
// Thread safety: plain values and a factory; the objects built state their own rules.

#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "pagekeeper/lmdb_tier.hpp"
#include "pagekeeper/redis_tier.hpp"
#include "pagekeeper/tier_chain.hpp"

namespace pagekeeper {

struct TiersConfig {
  // Directory of the local durable tier; empty: none.
  std::filesystem::path dir{};
  // Its byte budget.
  std::uint64_t disk_bytes = std::uint64_t{1} << 30;
  // Redis seeds ("redis://HOST:PORT"); empty: no fleet tier. Several seeds: a Cluster's.
  std::vector<std::string> redis{};
  std::chrono::milliseconds redis_timeout{50};
  std::chrono::milliseconds redis_ttl{0};
  std::string redis_namespace = "pagekeeper:";

  bool enabled() const { return !dir.empty() || !redis.empty(); }
  // Throws std::invalid_argument naming the field for a zero budget or timeout, a negative
  // TTL or a malformed Redis address.
  void validate() const;
};

struct Tiers {
  std::shared_ptr<TierChain> chain;  // null when no tier is configured
  std::shared_ptr<LmdbTier> disk;    // null without a directory
  std::shared_ptr<RedisTier> redis;  // null without Redis
};

// Opens the configured tiers. Throws TierUnavailable when the directory cannot be opened,
// std::invalid_argument for an invalid configuration. Redis is not contacted here (a Redis
// that is down at start is retried by every lookup).
Tiers open_tiers(const TiersConfig& config);

// Per-tier statistics as JSON: [{"name", "hits", "misses", "errors", "corrupt", "skipped",
// "writes", "dropped", "bytesRead", "bytesWritten", "open", "lookups",
// "lookupSecondsSum"}...], plus "usedBytes"/"maxBytes"/"entries" for the local tier.
nlohmann::json tiers_json(const Tiers& tiers);

}  // namespace pagekeeper
