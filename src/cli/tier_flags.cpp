// Tier flags of the CLI's in-process mode (see tier_flags.hpp).

#include "cli/tier_flags.hpp"

#include <CLI/CLI.hpp>

#include "pagekeeper/embedding_service.hpp"

namespace pagekeeper::cli {

std::shared_ptr<TierFlags> add_tier_flags(CLI::App& cmd) {
  auto f = std::make_shared<TierFlags>();
  cmd.add_option("--tier-dir", f->dir, "In-process: directory of the local durable tier (LMDB)");
  cmd.add_option("--tier-disk-mb", f->disk_mb, "In-process: byte budget of the local tier in MiB")
      ->check(CLI::Range(1, 1 << 24))
      ->capture_default_str();
  cmd.add_option("--redis", f->redis, "In-process: redis://HOST:PORT of the fleet tier (repeatable)")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  return f;
}

Tiers init_in_process_tiers(const TierFlags& flags) {
  TiersConfig config;
  config.dir = flags.dir;
  config.disk_bytes = flags.disk_mb << 20;
  config.redis = flags.redis;
  if (!config.enabled()) return {};
  Tiers tiers = open_tiers(config);
  EmbeddingServiceConfig ec;
  ec.tiers = tiers.chain;
  EmbeddingService::init_process_default(std::move(ec));
  return tiers;
}

}  // namespace pagekeeper::cli
