// RedisTier against real redis-server processes on 127.0.0.1: standalone and a three-master
// Cluster, pipelined batches, namespace and TTL, a server killed and restarted, a server that
// stops answering (SIGSTOP), and resharding under a client with a stale slot table.

#include "pagekeeper/redis_tier.hpp"

#include <algorithm>
#include <future>

#include <gtest/gtest.h>

#include "pagekeeper/errors.hpp"
#include "pagekeeper/tier_record.hpp"
#include "tiers/redis_test_support.hpp"

namespace pagekeeper {
namespace {

using testing::RedisCluster;
using testing::RedisServer;
using testing::kRedisReplyTimeout;
using testing::key_of;
using testing::keys_for;
using testing::vector_for;

constexpr std::size_t kDims = 64;

// The records of `count` keys from `first`, with vectors of kDims floats.
std::vector<std::pair<std::string, std::string>> records_for(std::size_t first, std::size_t count) {
  return testing::records_for(first, count, kDims);
}

void expect_all_read_back(RedisTier& tier, std::size_t first, std::size_t count) {
  const auto got = tier.get_many(keys_for(first, count));
  ASSERT_EQ(got.size(), count);
  for (std::size_t j = 0; j < count; ++j) {
    const std::size_t i = first + j;
    ASSERT_TRUE(got[j].has_value()) << "key " << i;
    auto decoded = decode_vector_record(key_of(i), *got[j], kDims);
    ASSERT_TRUE(decoded.has_value()) << "key " << i;
    ASSERT_EQ(decoded->to_vector(), vector_for(i, kDims)) << "key " << i;
  }
}

TEST(RedisClusterSlot, MatchesRedis) {
  EXPECT_EQ(redis_cluster_slot("123456789"), 0x31C3 % 16384);  // CRC16-CCITT check value
  EXPECT_EQ(redis_cluster_slot("foo"), 12182);
  EXPECT_EQ(redis_cluster_slot("{user1000}.following"), redis_cluster_slot("{user1000}.followers"));
  EXPECT_EQ(redis_cluster_slot("{user1000}.following"), redis_cluster_slot("user1000"));
  EXPECT_EQ(redis_cluster_slot("foo{}{bar}"), redis_cluster_slot("foo{}{bar}"));
  EXPECT_NE(redis_cluster_slot("foo{}{bar}"), redis_cluster_slot("bar"));  // empty tag: whole key
}

TEST(RedisTierOptions, RefusesMalformedSeeds) {
  EXPECT_THROW(RedisTier({}), std::invalid_argument);
  EXPECT_THROW(RedisTier({.seeds = {"redis://host:notaport"}}), std::invalid_argument);
  EXPECT_THROW(RedisTier({.seeds = {"redis://:6379"}}), std::invalid_argument);
  EXPECT_THROW(RedisTier({.seeds = {"redis://h:70000"}}), std::invalid_argument);
  EXPECT_THROW(RedisTier({.seeds = {"h:1"}, .timeout = std::chrono::milliseconds(0)}),
               std::invalid_argument);
  EXPECT_NO_THROW(RedisTier({.seeds = {"redis://127.0.0.1:6379/", "localhost"}}));
}

TEST(RedisTierStandalone, PipelinedBatchesNamespaceAndTtl) {
  RedisServer server;
  RedisTier tier({.seeds = {server.url()}, .timeout = kRedisReplyTimeout, .key_prefix = "ns1:", .ttl = std::chrono::minutes(5)});
  tier.put_many(records_for(0, 200));
  EXPECT_EQ(tier.mode(), RedisTier::Mode::kStandalone);
  expect_all_read_back(tier, 0, 200);
  const auto missing = tier.get_many(keys_for(200, 3));
  for (const auto& m : missing) EXPECT_FALSE(m.has_value());
  const RedisTier::Stats s = tier.stats();
  EXPECT_EQ(s.hits, 200u);
  EXPECT_EQ(s.misses, 3u);
  EXPECT_EQ(s.errors, 0u);
  EXPECT_LE(s.connects, 2u);  // one pooled connection serves the batches
  // The namespace and the expiry are Redis's own view.
  EXPECT_EQ(server.cli("DBSIZE"), "200\n");
  EXPECT_EQ(server.cli("EXISTS 'ns1:" + key_of(7) + "'"), "1\n");
  const long ttl_ms = std::stol(server.cli("PTTL 'ns1:" + key_of(7) + "'"));
  EXPECT_GT(ttl_ms, 60'000);
  EXPECT_LE(ttl_ms, 300'000);
  // Another namespace does not see them.
  RedisTier other({.seeds = {server.url()}, .timeout = kRedisReplyTimeout, .key_prefix = "ns2:"});
  EXPECT_FALSE(other.get_many(keys_for(0, 1))[0].has_value());
  tier.erase(key_of(0));
  EXPECT_FALSE(tier.get_many(keys_for(0, 1))[0].has_value());
}

TEST(RedisTierStandalone, KilledServerFailsCallsThenRestartedServerServesAgain) {
  RedisServer server;
  RedisTier tier({.seeds = {server.url()}, .timeout = kRedisReplyTimeout});
  tier.put_many(records_for(0, 10));
  expect_all_read_back(tier, 0, 10);
  server.kill();
  EXPECT_THROW(tier.get_many(keys_for(0, 10)), TierUnavailable);
  EXPECT_THROW(tier.put_many(records_for(10, 1)), TierUnavailable);
  server.start();  // empty: no persistence
  EXPECT_FALSE(tier.get_many(keys_for(0, 1))[0].has_value());
  tier.put_many(records_for(0, 10));
  expect_all_read_back(tier, 0, 10);
  EXPECT_GE(tier.stats().errors, 2u);
}

TEST(RedisTierStandalone, DownAtStartIsRetriedByLaterCalls) {
  RedisServer server;
  server.kill();
  RedisTier tier({.seeds = {server.url()}, .timeout = kRedisReplyTimeout});
  EXPECT_THROW(tier.get_many(keys_for(0, 1)), TierUnavailable);
  EXPECT_EQ(tier.mode(), RedisTier::Mode::kUnknown);
  server.start();
  tier.put_many(records_for(0, 3));
  expect_all_read_back(tier, 0, 3);
  EXPECT_EQ(tier.mode(), RedisTier::Mode::kStandalone);
}

TEST(RedisTierStandalone, SlowServerTimesOutAndItsConnectionIsNotReused) {
  RedisServer server;
  // A timeout a loaded machine does not reach by accident, and a stall that lasts until the
  // test ends it: the call must return on its own, by its timeout.
  constexpr auto kTimeout = std::chrono::seconds(2);
  RedisTier tier({.seeds = {server.url()}, .timeout = kTimeout});
  tier.put_many(records_for(0, 10));
  server.pause();
  const auto start = std::chrono::steady_clock::now();
  auto call = std::async(std::launch::async, [&] {
    try {
      tier.get_many(keys_for(0, 5));
      return false;
    } catch (const TierUnavailable&) {
      return true;
    }
  });
  const bool returned = call.wait_for(test_support::kPatience) == std::future_status::ready;
  const auto elapsed = std::chrono::steady_clock::now() - start;
  server.resume();  // it now answers the timed-out request, on a connection the tier closed
  ASSERT_TRUE(returned) << "the call waited on the stalled server";
  EXPECT_TRUE(call.get()) << "a timed-out call is TierUnavailable";
  EXPECT_GE(elapsed, kTimeout - std::chrono::milliseconds(100));
  EXPECT_LT(elapsed, 10 * kTimeout);
  // The timed-out connection was closed: its late reply (keys 0-4) must not answer the next
  // call, which asks for other keys.
  expect_all_read_back(tier, 5, 5);
  expect_all_read_back(tier, 0, 5);
}

TEST(RedisTierCluster, DetectedFromTheFirstSeedAndRoutedToEveryMaster) {
  RedisCluster cluster;
  RedisTier tier({.seeds = {cluster.node(1).url()}, .timeout = kRedisReplyTimeout});
  tier.put_many(records_for(0, 300));
  EXPECT_EQ(tier.mode(), RedisTier::Mode::kCluster);
  expect_all_read_back(tier, 0, 300);
  std::size_t total = 0;
  for (std::size_t n = 0; n < cluster.size(); ++n) {
    const std::size_t keys = std::stoul(cluster.node(n).cli("DBSIZE"));
    EXPECT_GT(keys, 50u) << "node " << n;
    total += keys;
  }
  EXPECT_EQ(total, 300u);
  EXPECT_EQ(tier.stats().redirects, 0u);  // the slot table routed every key directly
}

TEST(RedisTierCluster, FollowsMovedRedirectsAfterResharding) {
  RedisCluster cluster;
  RedisTier tier({.seeds = {cluster.node(0).url()}, .timeout = kRedisReplyTimeout});
  tier.put_many(records_for(0, 300));
  expect_all_read_back(tier, 0, 300);
  // Move 200 slots, with their keys (5 of the 300), from node 0 to node 1 behind the tier's
  // back: each slot costs redis-cli several round trips, so a loaded machine moves few quickly.
  const std::string out = testing::run_command(
      "redis-cli --cluster reshard " + cluster.node(0).address() + " --cluster-from " +
      cluster.node_id(0) + " --cluster-to " + cluster.node_id(1) +
      " --cluster-slots 200 --cluster-yes 2>&1");
  ASSERT_NE(out.find("Moving slot"), std::string::npos) << out;
  cluster.wait_ok();
  expect_all_read_back(tier, 0, 300);
  EXPECT_GT(tier.stats().redirects, 0u);
  // The table was refreshed: a second pass needs no redirect.
  const std::uint64_t redirects = tier.stats().redirects;
  expect_all_read_back(tier, 0, 300);
  EXPECT_EQ(tier.stats().redirects, redirects);
  tier.put_many(records_for(300, 100));
  expect_all_read_back(tier, 300, 100);
}

TEST(RedisTierCluster, AMasterKilledFailsItsKeysUntilItIsBack) {
  RedisCluster cluster;
  RedisTier tier({.seeds = {cluster.node(0).url(), cluster.node(1).url()}, .timeout = kRedisReplyTimeout});
  tier.put_many(records_for(0, 100));
  cluster.node(2).kill();
  EXPECT_THROW(tier.get_many(keys_for(0, 100)), TierUnavailable);
  cluster.node(2).start();  // rejoins from its nodes.conf, empty
  cluster.wait_ok();
  const auto got = tier.get_many(keys_for(0, 100));
  std::size_t present = 0;
  for (const auto& g : got) present += g.has_value() ? 1 : 0;
  EXPECT_GT(present, 30u);   // nodes 0 and 1 kept theirs
  EXPECT_LT(present, 100u);  // node 2 restarted empty
}

// Failover: a master with keys is killed; once its replica is promoted the tier reloads the
// slot table and reads every key again (from the replica), without being told.
TEST(RedisTierCluster, FollowsAFailoverToTheReplica) {
  RedisCluster cluster(/*replicas=*/1);
  RedisTier tier({.seeds = {cluster.node(0).url(), cluster.node(1).url(), cluster.node(2).url(),
                            cluster.node(3).url()}, .timeout = kRedisReplyTimeout});
  tier.put_many(records_for(0, 100));
  // A master whose replica holds all of its keys.
  std::size_t victim = cluster.size();
  for (std::size_t n = 0; n < cluster.size() && victim == cluster.size(); ++n) {
    if (cluster.node(n).cli("ROLE").rfind("master", 0) == 0) victim = n;
  }
  ASSERT_LT(victim, cluster.size());
  const std::string keys_on_victim = cluster.node(victim).cli("DBSIZE");
  const std::string victim_port = std::to_string(cluster.node(victim).port());
  // Deadlines, not timings: a loaded two-core machine stretches every step of a failover
  // (failure detection, the FAIL vote, an election that may need a second round). Each poll
  // is a redis-cli process, paced so that the wait leaves the cores to the nodes.
  std::size_t replica = cluster.size();
  test_support::eventually(
      [&] {
        for (std::size_t n = 0; n < cluster.size(); ++n) {
          const std::string role = cluster.node(n).cli("ROLE");
          if (n != victim && role.rfind("slave", 0) == 0 && role.find(victim_port) != std::string::npos &&
              cluster.node(n).cli("DBSIZE") == keys_on_victim) {
            replica = n;
          }
        }
        return replica < cluster.size();
      },
      testing::kRedisPollPeriod);
  ASSERT_LT(replica, cluster.size()) << "no replica of node " << victim << " caught up";
  cluster.node(victim).kill();
  // The replica is promoted once the other masters flag the victim as failed and vote.
  const bool promoted = test_support::eventually(
      [&] { return cluster.node(replica).cli("ROLE").rfind("master", 0) == 0; }, testing::kRedisPollPeriod);
  ASSERT_TRUE(promoted) << "node " << replica << " was not promoted within " << test_support::kPatience.count()
                        << " s";
  cluster.wait_ok();  // every node agrees the replica took over
  // The tier's table still names the dead master: its first calls may fail (at once: the
  // connection is refused, hence the pause between calls), and it must find the new one
  // without being told.
  std::size_t failed_calls = 0;
  const bool all = test_support::eventually(
      [&] {
        try {
          const auto got = tier.get_many(keys_for(0, 100));
          return std::all_of(got.begin(), got.end(), [](const auto& g) { return g.has_value(); });
        } catch (const TierUnavailable&) {
          ++failed_calls;
          return false;
        }
      },
      std::chrono::milliseconds(10));
  ASSERT_TRUE(all) << failed_calls << " calls failed";
  expect_all_read_back(tier, 0, 100);
}

}  // namespace
}  // namespace pagekeeper
