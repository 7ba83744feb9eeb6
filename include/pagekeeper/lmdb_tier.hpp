// pagekeeper/lmdb_tier.hpp
//
// LmdbTier: the local durable tier, an LMDB environment in one directory that keeps records
// across restarts of the process (docs/ARCHITECTURE.md says why LMDB rather than RocksDB).
//
//   - Layout: three named databases in one environment: `records` (key -> 8-byte sequence
//     number then the record), `age` (big-endian sequence number -> key, i.e. write order)
//     and `meta` (the byte total and the next sequence number). Every put_many() is one write
//     transaction that updates all three, so the byte total always matches the records.
//   - Budget: the bytes of keys and records held (max_bytes). A write that would exceed it
//     first evicts the oldest records (write order; a rewrite of a key makes it young again).
//     A record larger than the budget on its own is refused and counted.
//   - Disk guard: before each write transaction the projected growth is checked against the
//     filesystem (ensure_projected_disk_capacity: refused past 95% of the filesystem by
//     default); a refused write is dropped and counted, never an error to a request.
//   - Crashes: LMDB is copy-on-write with a two-meta-page commit, so a process killed at any
//     moment (kill -9) leaves the last committed transaction intact. The environment is
//     opened with MDB_NOSYNC: commits reach the page cache, not the platter, so an operating
//     system crash may lose the newest writes (a cache can afford that); every record is also
//     checksummed (tier_record.hpp), so a damaged one is a miss, never a wrong vector.
//   - Several processes may open one directory (LMDB's lock file coordinates them); readers a
//     killed process left behind are cleared at open.
//   - Broker: it is a ResourcePool (tier_name() is the configured name, "tier-disk" by
//     default) whose evict_at_least() evicts the oldest records. Its capacity_bytes() is 0,
//     "not managed": a broker lists it (usage, statistics) but never counts its bytes as
//     memory nor sheds them when memory is short, since dropping disk records frees no
//     memory; the tier keeps to its disk budget by itself (stats().max_bytes is that budget).
//
// Thread safety: every method may be called concurrently from any thread. LMDB serializes
// write transactions (one writer at a time, across processes too); reads run in their own
// read-only transactions (MDB_NOTLS, so any thread may use any transaction it created) and
// never wait for writers. The counters are atomics.

#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "pagekeeper/errors.hpp"
#include "pagekeeper/resource_pool.hpp"
#include "pagekeeper/tier_store.hpp"

namespace pagekeeper {

struct LmdbTierOptions {
  // Directory of the environment (created when missing).
  std::filesystem::path directory{};
  // Byte budget of keys and records. Required, > 0.
  std::uint64_t max_bytes = 0;
  // Name in metrics and with the broker.
  std::string name = "tier-disk";
  // Writes are refused when they would take the filesystem past this share of its capacity.
  std::uint32_t disk_pressure_basis_points = kDefaultDiskPressureBasisPoints;
};

class LmdbTier final : public TierStore, public ResourcePool {
 public:
  struct Stats {
    std::uint64_t entries = 0;
    std::uint64_t bytes = 0;
    std::uint64_t max_bytes = 0;
    std::uint64_t hits = 0;
    std::uint64_t misses = 0;
    std::uint64_t writes = 0;           // records stored
    std::uint64_t evictions = 0;        // records evicted for the budget or the broker
    std::uint64_t refused_oversize = 0; // records larger than the whole budget
    std::uint64_t refused_disk = 0;     // records refused by the disk guard
    std::uint64_t erased = 0;           // records removed through erase()
  };

  // Opens (or creates) the environment. Throws TierUnavailable naming the directory and
  // LMDB's reason when it cannot be opened, std::invalid_argument for max_bytes 0.
  explicit LmdbTier(LmdbTierOptions options);
  ~LmdbTier() override;
  LmdbTier(const LmdbTier&) = delete;
  LmdbTier& operator=(const LmdbTier&) = delete;

  // TierStore. get_many/put_many/erase throw TierUnavailable when LMDB fails.
  std::string name() const override { return options_.name; }
  std::vector<std::optional<std::string>> get_many(std::span<const std::string> keys) override;
  void put_many(std::span<const std::pair<std::string, std::string>> records) override;
  void erase(std::string_view key) override;

  // ResourcePool (the broker's view). snapshot() is empty: the records are on disk and too
  // many to list.
  std::string tier_name() const override { return options_.name; }
  std::uint64_t capacity_bytes() const override { return 0; }
  std::uint64_t usage_bytes() const override;
  std::uint64_t evict_at_least(std::uint64_t bytes) override;
  std::vector<EntrySnapshot> snapshot() const override { return {}; }
  PoolStats stats() const override;

  Stats tier_stats() const;
  const std::filesystem::path& directory() const { return options_.directory; }

 private:
  struct Env;
  LmdbTierOptions options_;
  std::unique_ptr<Env> env_;
  std::atomic<std::uint64_t> hits_{0}, misses_{0}, writes_{0}, evictions_{0}, refused_oversize_{0},
      refused_disk_{0}, erased_{0};
};

}  // namespace pagekeeper
