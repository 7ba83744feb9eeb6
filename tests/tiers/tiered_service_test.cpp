// The tier chain and the embedding cache over real tiers: an LMDB directory and a real
// redis-server. A fleet's second host embeds nothing its first embedded; a restarted host
// reads its own disk; a dead Redis never fails a request; corrupt records are misses.

#include <latch>
#include <thread>

#include <gtest/gtest.h>

#include "pagekeeper/embedding_service.hpp"
#include "pagekeeper/lexical_embedder.hpp"
#include "pagekeeper/lmdb_tier.hpp"
#include "pagekeeper/redis_tier.hpp"
#include "pagekeeper/tier_chain.hpp"
#include "pagekeeper/tier_record.hpp"
#include "tiers/redis_test_support.hpp"

namespace pagekeeper {
namespace {

using testing::RedisServer;
using testing::TempDir;

// A real embedder (lexical vectors) under a chosen name and identity, counting its texts.
class IdentifiedEmbedder final : public Embedder {
 public:
  IdentifiedEmbedder(std::string name, std::string identity, std::size_t dimensions = 64)
      : name_(std::move(name)), identity_(std::move(identity)), inner_({.dimensions = dimensions}) {}
  std::string name() const override { return name_; }
  std::string identity() const override { return identity_; }
  std::size_t dimensions() const override { return inner_.dimensions(); }
  std::size_t max_batch() const override { return 1024; }
  using Embedder::embed;
  std::vector<std::vector<float>> embed(std::span<const std::string_view> texts) override {
    texts_.fetch_add(texts.size());
    return inner_.embed(texts);
  }
  std::size_t texts() const { return texts_.load(); }

 private:
  std::string name_;
  std::string identity_;
  LexicalEmbedder inner_;
  std::atomic<std::size_t> texts_{0};
};

std::vector<std::string> corpus(std::size_t n, const std::string& salt = "") {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < n; ++i) out.push_back("document " + std::to_string(i) + salt + " about tiers");
  return out;
}

struct Host {
  std::shared_ptr<IdentifiedEmbedder> embedder;
  std::shared_ptr<TierChain> chain;
  std::shared_ptr<EmbeddingService> service;
};

Host make_host(std::vector<std::shared_ptr<TierStore>> stores, const std::string& identity = "id-1",
               TierChainOptions options = {}) {
  Host h;
  h.embedder = std::make_shared<IdentifiedEmbedder>("m", identity);
  auto models = std::make_shared<ModelRegistry>("m");
  models->add(h.embedder);
  if (!stores.empty()) h.chain = std::make_shared<TierChain>(std::move(stores), options);
  h.service = std::make_shared<EmbeddingService>(
      EmbeddingServiceConfig{.max_bytes = 64 << 20, .models = models, .tiers = h.chain});
  return h;
}

std::shared_ptr<LmdbTier> disk(const TempDir& dir) {
  return std::make_shared<LmdbTier>(LmdbTierOptions{.directory = dir.path(), .max_bytes = 16 << 20});
}
std::shared_ptr<RedisTier> redis(const RedisServer& server) {
  return std::make_shared<RedisTier>(RedisTierOptions{.seeds = {server.url()}, .timeout = testing::kRedisReplyTimeout});
}

TEST(TieredService, FleetHostEmbedsNothingAndRestartedHostReadsItsDisk) {
  RedisServer server;
  TempDir dir;
  const auto texts = corpus(300);
  std::vector<EmbeddingVector> reference;
  {
    Host a = make_host({disk(dir), redis(server)});
    const EmbedBatchResult r = a.service->embed_batch(texts);
    EXPECT_EQ(r.accounting.embedded, 300u);
    EXPECT_EQ(r.accounting.from_tiers, 0u);
    reference = r.vectors;
    a.chain->flush();
    const auto s = a.chain->stats();
    EXPECT_EQ(s[0].writes, 300u);
    EXPECT_EQ(s[1].writes, 300u);
    EXPECT_EQ(a.service->embedded_texts().at("m"), 300u);
  }
  {
    Host b = make_host({redis(server)});  // another host: only Redis, empty memory
    const EmbedBatchResult r = b.service->embed_batch(texts);
    EXPECT_EQ(r.accounting.embedded, 0u);
    EXPECT_EQ(r.accounting.from_tiers, 300u);
    EXPECT_EQ(b.embedder->texts(), 0u);
    for (std::size_t i = 0; i < texts.size(); ++i) ASSERT_EQ(r.vectors[i], reference[i]) << i;
    // Now in memory: the next call is all hits, the tier is not asked again.
    const EmbedBatchResult again = b.service->embed_batch(texts);
    EXPECT_EQ(again.accounting.hits, 300u);
    EXPECT_EQ(b.chain->stats()[0].hits, 300u);
  }
  {
    Host a2 = make_host({disk(dir)});  // host A restarted with only its directory
    const EmbedResult one = a2.service->embed(texts[5]);
    EXPECT_EQ(one.accounting.from_tiers, 1u);
    EXPECT_EQ(one.vector, reference[5]);
    const EmbedBatchResult r = a2.service->embed_batch(texts);
    EXPECT_EQ(r.accounting.embedded, 0u);
    EXPECT_EQ(a2.embedder->texts(), 0u);
  }
}

TEST(TieredService, AnotherModelFileUnderTheSameNameReadsNothing) {
  RedisServer server;
  const auto texts = corpus(50);
  Host a = make_host({redis(server)}, "gguf/aaaa");
  a.service->embed_batch(texts);
  a.chain->flush();
  Host b = make_host({redis(server)}, "gguf/bbbb");  // same name "m", another file
  const EmbedBatchResult r = b.service->embed_batch(texts);
  EXPECT_EQ(r.accounting.embedded, 50u);
  EXPECT_EQ(r.accounting.from_tiers, 0u);
}

TEST(TieredService, EmbedderWithoutIdentityBypassesTheTiers) {
  TempDir dir;
  auto store = disk(dir);
  Host h = make_host({store}, /*identity=*/"");
  h.service->embed_batch(corpus(20));
  h.chain->flush();
  EXPECT_EQ(store->tier_stats().entries, 0u);
  EXPECT_EQ(h.chain->stats()[0].hits + h.chain->stats()[0].misses, 0u);
}

TEST(TieredService, FoundBelowIsPromotedToTheTiersAbove) {
  RedisServer server;
  TempDir dir;
  const auto texts = corpus(40);
  {
    Host a = make_host({redis(server)});
    a.service->embed_batch(texts);
    a.chain->flush();
  }
  auto store = disk(dir);
  Host b = make_host({store, redis(server)});
  const EmbedAccounting promoted = b.service->embed_batch(texts).accounting;
  EXPECT_EQ(promoted.from_tiers, 40u);
  EXPECT_EQ(promoted.from_tier[0], 0u);  // not on the local disk yet
  EXPECT_EQ(promoted.from_tier[1], 40u); // from Redis
  b.chain->flush();
  EXPECT_EQ(store->tier_stats().entries, 40u);  // promoted from Redis to the local disk
  EXPECT_EQ(b.chain->stats()[1].hits, 40u);
}

TEST(TieredService, CorruptRecordIsAMissCountedErasedAndRewritten) {
  TempDir dir;
  auto store = disk(dir);
  const auto texts = corpus(3);
  {
    Host a = make_host({store});
    a.service->embed_batch(texts);
    a.chain->flush();
  }
  // Damage text 1's record in place.
  const std::string key = *tier_key("m", identity_digest("id-1"), sha256(texts[1]));
  std::string record = *store->get_many(std::vector<std::string>{key})[0];
  record[30] ^= 0x40;
  store->put_many(std::vector<std::pair<std::string, std::string>>{{key, record}});
  Host b = make_host({store});
  const EmbedBatchResult r = b.service->embed_batch(texts);
  EXPECT_EQ(r.accounting.from_tiers, 2u);
  EXPECT_EQ(r.accounting.embedded, 1u);
  EXPECT_EQ(r.vectors[1].to_vector(), LexicalEmbedder({.dimensions = 64}).embed_one(texts[1]));
  b.chain->flush();
  EXPECT_EQ(b.chain->stats()[0].corrupt, 1u);
  auto rewritten = store->get_many(std::vector<std::string>{key})[0];
  ASSERT_TRUE(rewritten.has_value());
  EXPECT_TRUE(decode_vector_record(key, *rewritten, 64).has_value());
}

TEST(TieredService, DeadRedisNeverFailsARequestAndItsBreakerOpens) {
  RedisServer server;
  Host h = make_host({redis(server)}, "id-1",
                     TierChainOptions{.failures_to_open = 2, .initial_backoff = std::chrono::milliseconds(60'000)});
  EXPECT_EQ(h.service->embed_batch(corpus(10)).accounting.embedded, 10u);
  h.chain->flush();
  server.kill();
  for (int round = 0; round < 5; ++round) {
    const EmbedBatchResult r = h.service->embed_batch(corpus(10, "-round" + std::to_string(round)));
    EXPECT_EQ(r.accounting.embedded, 10u);
  }
  h.chain->flush();
  const TierChain::TierStats s = h.chain->stats()[0];
  EXPECT_GE(s.errors, 2u);
  EXPECT_TRUE(s.open);
  EXPECT_GE(s.skipped, 3u);  // the breaker bypassed the later lookups (and write-downs)
}

TEST(TieredService, BreakerRetriesAfterItsBackoff) {
  RedisServer server;
  Host h = make_host({redis(server)}, "id-1",
                     TierChainOptions{.failures_to_open = 1, .initial_backoff = std::chrono::milliseconds(1)});
  server.kill();
  h.service->embed_batch(corpus(5, "a"));
  EXPECT_GE(h.chain->stats()[0].errors, 1u);
  server.start();
  // Back-off of 1 ms: a later call retries Redis and succeeds; poll with a deadline.
  std::size_t round = 0;
  test_support::eventually([&] {
    h.service->embed_batch(corpus(1, "retry" + std::to_string(round++)));
    return h.chain->stats()[0].lookups > 0;
  });
  EXPECT_GT(h.chain->stats()[0].lookups, 0u);
  EXPECT_FALSE(h.chain->stats()[0].open);
}

TEST(TieredService, FullWriteQueueDropsAndCounts) {
  TempDir dir;
  Host h = make_host({disk(dir)}, "id-1", TierChainOptions{.queue_records = 8});
  h.service->embed_batch(corpus(20));  // 20 records > 8: dropped whole
  h.chain->flush();
  EXPECT_EQ(h.chain->stats()[0].dropped, 20u);
  EXPECT_EQ(h.chain->stats()[0].writes, 0u);
}

// Many threads ask for the same texts at once: each text is looked up in the tier once and
// embedded at most once (single flight covers the tiers), whatever the interleaving.
TEST(TieredServiceConcurrency, SingleFlightCoversTheTiers) {
  RedisServer server;
  const auto texts = corpus(200);
  {
    Host a = make_host({redis(server)});
    a.service->embed_batch(std::span(texts).first(100));  // half of them in Redis
    a.chain->flush();
  }
  Host h = make_host({redis(server)});
  constexpr int kThreads = 4;
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      const EmbedBatchResult r = h.service->embed_batch(texts);
      EXPECT_EQ(r.vectors.size(), texts.size());
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(h.embedder->texts(), 100u);
  const TierChain::TierStats s = h.chain->stats()[0];
  EXPECT_EQ(s.hits, 100u);
  EXPECT_EQ(s.hits + s.misses, 200u);
}

}  // namespace
}  // namespace pagekeeper
