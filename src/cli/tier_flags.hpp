// The tier flags of the CLI's in-process mode (`pagekeeper embed` and `pagekeeper index`
// without --server): the same --tier-dir, --tier-disk-mb and --redis as pagekeeperd, so a
// command run on a host reads what its daemons and earlier commands embedded.

#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "pagekeeper/tiers_config.hpp"

namespace CLI {
class App;
}

namespace pagekeeper::cli {

struct TierFlags {
  std::string dir;
  std::uint64_t disk_mb = 1024;
  std::vector<std::string> redis;
};

// Adds --tier-dir, --tier-disk-mb and --redis to `cmd`.
std::shared_ptr<TierFlags> add_tier_flags(CLI::App& cmd);

// Creates the process's embedding service over the tiers the flags name (the default one
// when they name none) and returns them; flush the chain before exiting so what this
// process embedded is written down. Throws std::invalid_argument or TierUnavailable.
Tiers init_in_process_tiers(const TierFlags& flags);

}  // namespace pagekeeper::cli
