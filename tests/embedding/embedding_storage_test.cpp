// EmbeddingService storage: vectors live in the service's per-dimension VectorSlab, an
// evicting cache recycles its chunks (its slab stops growing), a vector held by a caller
// stays valid through eviction and clear(), and clear() returns unused blocks.

#include "pagekeeper/embedding_service.hpp"

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "pagekeeper/broker.hpp"
#include "pagekeeper/lexical_embedder.hpp"
#include "pagekeeper/pool_utility.hpp"
#include "support/critical_host.hpp"

namespace pagekeeper {
namespace {

using test_support::critical_host;

std::unique_ptr<EmbeddingService> lexical_service(std::uint64_t max_bytes, bool map_ahead = true,
                                                  std::uint32_t shards = 0) {
  auto models = std::make_shared<ModelRegistry>("lexical");
  models->add(std::make_shared<LexicalEmbedder>());
  return std::make_unique<EmbeddingService>(EmbeddingServiceConfig{.pool_name = "storage-test",
                                                                   .max_bytes = max_bytes,
                                                                   .models = models,
                                                                   .shards = shards,
                                                                   .map_storage_ahead = map_ahead});
}

std::vector<std::string> texts(const std::string& prefix, int count) {
  std::vector<std::string> out;
  for (int i = 0; i < count; ++i) out.push_back(prefix + " storage text " + std::to_string(i));
  return out;
}

TEST(EmbeddingStorage, VectorsComeFromTheServiceSlab) {
  auto service = lexical_service(std::uint64_t{1} << 20);
  EXPECT_FALSE(service->storage_stats(384).has_value());
  EXPECT_TRUE(service->storage_stats().empty());
  const EmbedResult r = service->embed("one text");
  const auto stats = service->storage_stats(384);
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->live_vectors, 1u);
  EXPECT_EQ(stats->chunk_bytes, 1552u);
  EXPECT_EQ(service->stats().total_bytes, EmbeddingService::entry_bytes(384));
  EXPECT_EQ(r.vector.memory_bytes() + sizeof(EmbeddingKey), EmbeddingService::entry_bytes(384));
  // put() stores in the slab too.
  ASSERT_TRUE(service->put("put text", "lexical", LexicalEmbedder().embed_one("put text")));
  EXPECT_EQ(service->storage_stats(384)->live_vectors, 2u);
  // Every dimension count's storage is listed, in order of first use.
  ASSERT_TRUE(service->put("short", "lexical", std::vector<float>(16, 0.25f)));
  const std::vector<VectorSlab::Stats> all = service->storage_stats();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].dimensions, 384u);
  EXPECT_EQ(all[0].live_vectors, 2u);
  EXPECT_EQ(all[1].dimensions, 16u);
  EXPECT_EQ(all[1].live_vectors, 1u);
  EXPECT_EQ(all[1].chunk_bytes, 16u + 16 * sizeof(float));
}

TEST(EmbeddingStorage, AnEvictingCacheRecyclesItsChunks) {
  const std::uint64_t budget = EmbeddingService::entry_bytes(384) * 300;
  auto service = lexical_service(budget);
  // At most 300 cached vectors plus the 500 of the batch being returned are alive at once.
  for (int round = 0; round < 2; ++round) service->embed_batch(texts("warm " + std::to_string(round), 500));
  ASSERT_GT(service->stats().evictions, 0u);
  const VectorSlab::Stats warm = *service->storage_stats(384);
  EXPECT_LE(warm.live_vectors, 300u);
  // Blocks carved from; a block mapped ahead (by the slab's thread, at any moment) is not.
  auto carved_blocks = [](const VectorSlab::Stats& st) { return st.blocks - (st.spare_bytes != 0 ? 1 : 0); };
  auto carved_bytes = [](const VectorSlab::Stats& st) { return st.mapped_bytes - st.spare_bytes; };
  for (int round = 0; round < 4; ++round) {
    service->embed_batch(texts("round " + std::to_string(round), 500));
    const VectorSlab::Stats now = *service->storage_stats(384);
    EXPECT_EQ(carved_blocks(now), carved_blocks(warm)) << round;
    EXPECT_EQ(carved_bytes(now), carved_bytes(warm)) << round;
    EXPECT_LE(now.spare_bytes, std::uint64_t{64} << 10) << round;  // at most one block ahead
  }
  // The slab maps about the peak's worth of chunks (plus block tails and one spare block).
  EXPECT_LE(carved_bytes(warm), (300 + 500) * 1552 + (std::uint64_t{128} << 10));
}

TEST(EmbeddingStorage, HeldVectorsStayValidThroughEvictionAndClear) {
  const std::uint64_t budget = EmbeddingService::entry_bytes(384) * 50;
  auto service = lexical_service(budget);
  const std::string text = "a vector the caller keeps";
  const EmbedResult held = service->embed(text);
  const std::vector<float> expected = LexicalEmbedder().embed_one(text);
  service->embed_batch(texts("evict", 500));
  EXPECT_FALSE(service->contains(text));  // evicted from the cache, still held here
  EXPECT_EQ(held.vector.to_vector(), expected);
  service->clear();
  service->embed_batch(texts("refill", 200));
  EXPECT_EQ(held.vector.to_vector(), expected);
}

TEST(EmbeddingStorage, ClearReturnsBlocksNoVectorUses) {
  auto service = lexical_service(std::uint64_t{4} << 20);
  service->embed_batch(texts("fill", 1000));
  EXPECT_GT(service->storage_stats(384)->blocks, 1u);
  const EmbedResult held = service->embed("fill storage text 0");
  EXPECT_EQ(held.accounting.hits, 1u);
  service->clear();
  const VectorSlab::Stats after = *service->storage_stats(384);
  EXPECT_EQ(after.blocks, 1u);  // the block of the held vector
  EXPECT_EQ(after.live_vectors, 1u);
  EXPECT_EQ(held.vector.to_vector(), LexicalEmbedder().embed_one("fill storage text 0"));
}

// Relieving host pressure must lower resident memory, not only the cache's accounting: a broker
// that evicts through resource_pool() gets the blocks the evicted vectors filled returned to
// the kernel. Evicting through pool() directly keeps them for the next vectors.
TEST(EmbeddingStorage, BrokerEvictionReturnsTheBlocksItEmptied) {
  constexpr int kTexts = 3000;
  const std::uint64_t budget = EmbeddingService::entry_bytes(384) * kTexts;
  for (const bool through_resource_pool : {true, false}) {
    // One shard: eviction in exact LRU order (shards order their victims by a millisecond
    // clock, and these vectors are all cached within one).
    auto service = lexical_service(budget, /*map_ahead=*/false, /*shards=*/1);
    // Vectors are built in the order they are cached: the oldest fill the first blocks.
    service->embed_batch(texts("pressure", kTexts));
    ASSERT_EQ(service->stats().entry_count, static_cast<std::uint64_t>(kTexts));
    const VectorSlab::Stats full = *service->storage_stats(384);
    // A host at critical pressure, and a broker allowed to shed 40% of a pool in one pass:
    // the pass evicts the oldest 40% (down to 0.60).
    const BrokerConfig config = test_support::shedding_config(0.40, 0.40);
    PressureBroker broker(config, critical_host());
    broker.register_pool(through_resource_pool ? service->resource_pool() : service->pool());
    EXPECT_GT(broker.relieve().bytes_freed, 0u);
    EXPECT_LE(service->stats().pressure, 0.60);
    const VectorSlab::Stats relieved = *service->storage_stats(384);
    EXPECT_EQ(relieved.live_vectors, service->stats().entry_count);
    if (through_resource_pool) {
      // Blocks of 64, 128, then 256 KiB (168 vectors each): the oldest 1,200 vectors wholly
      // fill the first two and at least five of the 256 KiB ones.
      EXPECT_LE(relieved.mapped_bytes, full.mapped_bytes - (std::uint64_t{(64 + 128 + 5 * 256)} << 10));
      EXPECT_LE(relieved.blocks, full.blocks - 7);
    } else {
      EXPECT_EQ(relieved.mapped_bytes, full.mapped_bytes);
    }
    // What stayed cached is intact and still hits.
    const std::vector<std::string> all = texts("pressure", kTexts);
    std::uint64_t kept = 0;
    std::string a_kept_text;
    for (const std::string& text : all) {
      if (!service->contains(text)) continue;
      if (kept++ % 100 == 0) {
        const EmbedResult r = service->embed(text);
        EXPECT_EQ(r.accounting.hits, 1u);
        EXPECT_EQ(r.vector.to_vector(), LexicalEmbedder().embed_one(text));
      }
      a_kept_text = text;
    }
    EXPECT_EQ(kept, service->stats().entry_count);
    // And the cache refills (into the kept blocks' free chunks, then new blocks).
    service->embed_batch(texts("refill", kTexts / 2));
    EXPECT_EQ(service->embed(a_kept_text).vector.to_vector(), LexicalEmbedder().embed_one(a_kept_text));
    EXPECT_EQ(service->storage_stats(384)->live_vectors, service->stats().entry_count);
  }
}

// A relief through resource_pool() trims the slabs of the vectors it evicted, which the
// pool's removal listener names, and no others: a slab whose vectors left by another way
// (here evicted through pool() directly) keeps its blocks for the next vectors.
TEST(EmbeddingStorage, BrokerEvictionTrimsOnlyTheSlabsItEvictedFrom) {
  constexpr int kTexts = 3000;
  const std::uint64_t budget = EmbeddingService::entry_bytes(384) * kTexts;
  auto service = lexical_service(budget, /*map_ahead=*/false, /*shards=*/1);
  for (const std::string& text : texts("short", 2000)) {
    ASSERT_TRUE(service->put(text, "lexical", std::vector<float>(64, 0.5f)));
  }
  EXPECT_GT(service->pool()->evict_at_least(service->pool()->usage_bytes()), 0u);
  const VectorSlab::Stats short_kept = *service->storage_stats(64);
  ASSERT_EQ(short_kept.live_vectors, 0u);
  ASSERT_GT(short_kept.mapped_bytes, 0u);  // every block free, none returned

  service->embed_batch(texts("pressure", kTexts));
  const VectorSlab::Stats full = *service->storage_stats(384);
  const BrokerConfig config = test_support::shedding_config(0.40, 0.40);
  PressureBroker broker(config, critical_host());
  broker.register_pool(service->resource_pool());
  EXPECT_GT(broker.relieve().bytes_freed, 0u);
  const VectorSlab::Stats relieved = *service->storage_stats(384);
  EXPECT_LT(relieved.mapped_bytes, full.mapped_bytes);
  EXPECT_EQ(service->storage_stats(64)->mapped_bytes, short_kept.mapped_bytes);

  // A budget cut through the tier's utility is a relief too.
  auto& utility = dynamic_cast<PoolUtility&>(*service->resource_pool());
  utility.set_budget(service->stats().total_bytes / 4);
  EXPECT_LT(service->storage_stats(384)->mapped_bytes, relieved.mapped_bytes);
  EXPECT_EQ(service->storage_stats(64)->mapped_bytes, short_kept.mapped_bytes);

  // clear() returns what every slab does not use.
  service->clear();
  EXPECT_EQ(service->storage_stats(64)->mapped_bytes, 0u);
  EXPECT_EQ(service->storage_stats(384)->mapped_bytes, 0u);
}

TEST(EmbeddingStorage, VectorsOutliveTheService) {
  std::vector<EmbeddingVector> kept;
  {
    auto service = lexical_service(std::uint64_t{1} << 20);
    for (const EmbeddingVector& v : service->embed_batch(texts("outlive", 100)).vectors) kept.push_back(v);
  }
  const std::vector<std::string> expected = texts("outlive", 100);
  for (std::size_t i = 0; i < kept.size(); ++i) {
    EXPECT_EQ(kept[i].to_vector(), LexicalEmbedder().embed_one(expected[i])) << i;
  }
}

}  // namespace
}  // namespace pagekeeper
