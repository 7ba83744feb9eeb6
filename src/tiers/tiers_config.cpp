// TiersConfig: building the tiers a process was configured with.

#include "pagekeeper/tiers_config.hpp"

#include <stdexcept>

#include <nlohmann/json.hpp>

namespace pagekeeper {

void TiersConfig::validate() const {
  if (!dir.empty() && disk_bytes == 0) throw std::invalid_argument("tiers.disk_mb: must be > 0");
  if (redis_timeout.count() <= 0) throw std::invalid_argument("tiers.redis_timeout_ms: must be > 0");
  if (redis_ttl.count() < 0) throw std::invalid_argument("tiers.redis_ttl_s: must be >= 0");
  if (!redis.empty()) {
    // Parses every seed (RedisTier refuses malformed ones) without connecting.
    RedisTier check(RedisTierOptions{.seeds = redis, .timeout = redis_timeout});
  }
}

Tiers open_tiers(const TiersConfig& config) {
  config.validate();
  Tiers t;
  std::vector<std::shared_ptr<TierStore>> stores;
  if (!config.dir.empty()) {
    t.disk = std::make_shared<LmdbTier>(LmdbTierOptions{.directory = config.dir, .max_bytes = config.disk_bytes});
    stores.push_back(t.disk);
  }
  if (!config.redis.empty()) {
    t.redis = std::make_shared<RedisTier>(RedisTierOptions{.seeds = config.redis,
                                                           .timeout = config.redis_timeout,
                                                           .key_prefix = config.redis_namespace,
                                                           .ttl = config.redis_ttl});
    stores.push_back(t.redis);
  }
  if (!stores.empty()) t.chain = std::make_shared<TierChain>(std::move(stores));
  return t;
}

nlohmann::json tiers_json(const Tiers& tiers) {
  nlohmann::json out = nlohmann::json::array();
  if (!tiers.chain) return out;
  for (const TierChain::TierStats& s : tiers.chain->stats()) {
    nlohmann::json j = {
        {"name", s.name},           {"hits", s.hits},
        {"misses", s.misses},       {"errors", s.errors},
        {"corrupt", s.corrupt},     {"skipped", s.skipped},
        {"writes", s.writes},       {"dropped", s.dropped},
        {"bytesRead", s.bytes_read}, {"bytesWritten", s.bytes_written},
        {"open", s.open},           {"lookups", s.lookups},
        {"lookupSecondsSum", s.latency_sum_seconds},
    };
    if (tiers.disk && s.name == tiers.disk->name()) {
      const LmdbTier::Stats d = tiers.disk->tier_stats();
      j["usedBytes"] = d.bytes;
      j["maxBytes"] = d.max_bytes;
      j["entries"] = d.entries;
      j["evictions"] = d.evictions;
      j["refusedDisk"] = d.refused_disk;
    }
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace pagekeeper
