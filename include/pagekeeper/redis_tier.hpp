// pagekeeper/redis_tier.hpp
//
// RedisTier: the fleet tier, a Redis server or Redis Cluster shared by every host of a fleet,
// spoken to through hiredis.
//
//   - Mode: detected from the first seed that answers: CLUSTER SLOTS answering with a slot
//     table means Cluster (keys routed by CRC16 slot, hash tags honoured), an error means a
//     standalone server. Until a seed answers, every call fails (and is retried next time).
//   - Batches: get_many()/put_many() group keys by node and pipeline one GET or SET per key
//     to each node, every node's pipeline sent before any reply is read, so a batch costs
//     about one round trip per node, not one per key.
//   - Cluster redirects: MOVED updates the slot table and retries the key at the named node;
//     ASK retries it there once behind ASKING; a connection failure in Cluster mode reloads the
//     slot table on the next call (a failover changes the masters). At most 4 rounds.
//   - Connections: a small pool per node (`connections_per_node` idle connections kept);
//     every connection has `timeout` (default 50 ms) on connect, send and receive, and one
//     that failed or timed out is closed, never reused (its replies would be out of step),
//     so the next call reconnects.
//   - Keys are `key_prefix` + the caller's key; SET carries PX `ttl` when ttl > 0.
//   - Failures: a node that cannot be reached or answers with an error fails the call with
//     TierUnavailable (the tier chain above counts it and, after repeated failures, stops
//     asking for a while).
//
// Thread safety: every method may be called concurrently from any thread. Locking rule: one
// mutex guards the mode, the slot table and the connection pools; it is never held during
// network I/O (a connection belongs to the one call that took it from its pool).

#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "pagekeeper/tier_store.hpp"

namespace pagekeeper {

struct RedisTierOptions {
  // "redis://host:port", "host:port" or "host" (port 6379); at least one. The first that
  // answers decides the mode; the others are tried when it does not.
  std::vector<std::string> seeds{};
  std::chrono::milliseconds timeout{50};
  std::string key_prefix = "pagekeeper:";
  // Expiry of written records; 0 keeps them until Redis evicts them.
  std::chrono::milliseconds ttl{0};
  std::size_t connections_per_node = 4;
  std::string name = "redis";
};

// The Cluster slot of a key (CRC16-CCITT of the key, or of its first non-empty {hash tag},
// modulo 16384), as Redis computes it.
std::uint16_t redis_cluster_slot(std::string_view key);

class RedisTier final : public TierStore {
 public:
  enum class Mode { kUnknown, kStandalone, kCluster };

  struct Stats {
    std::uint64_t hits = 0;
    std::uint64_t misses = 0;
    std::uint64_t errors = 0;     // calls that failed
    std::uint64_t redirects = 0;  // MOVED and ASK replies followed
    std::uint64_t bytes_read = 0;
    std::uint64_t bytes_written = 0;
    std::uint64_t connects = 0;   // connections opened
  };

  // Throws std::invalid_argument for no seed, a malformed seed or a zero timeout. Does not
  // connect: a Redis that is down at start is tried again by every call.
  explicit RedisTier(RedisTierOptions options);
  ~RedisTier() override;
  RedisTier(const RedisTier&) = delete;
  RedisTier& operator=(const RedisTier&) = delete;

  std::string name() const override { return options_.name; }
  std::vector<std::optional<std::string>> get_many(std::span<const std::string> keys) override;
  void put_many(std::span<const std::pair<std::string, std::string>> records) override;
  void erase(std::string_view key) override;

  Mode mode() const;
  Stats stats() const;
  const RedisTierOptions& options() const { return options_; }

 private:
  struct State;
  struct Op;
  // Runs `ops` (one command per op, with redirects), filling each op's reply.
  void execute(std::vector<Op>& ops);

  RedisTierOptions options_;
  std::unique_ptr<State> state_;
  std::atomic<std::uint64_t> hits_{0}, misses_{0}, errors_{0}, redirects_{0}, bytes_read_{0},
      bytes_written_{0};
};

}  // namespace pagekeeper
