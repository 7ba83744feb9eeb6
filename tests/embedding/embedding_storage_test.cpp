// EmbeddingService storage: vectors live in the service's per-dimension VectorSlab, an
// evicting cache recycles its chunks (its slab stops growing), a vector held by a caller
// stays valid through eviction and clear(), and clear() returns unused blocks.

#include "pagekeeper/embedding_service.hpp"

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "pagekeeper/lexical_embedder.hpp"

namespace pagekeeper {
namespace {

std::unique_ptr<EmbeddingService> lexical_service(std::uint64_t max_bytes) {
  auto models = std::make_shared<ModelRegistry>("lexical");
  models->add(std::make_shared<LexicalEmbedder>());
  return std::make_unique<EmbeddingService>(
      EmbeddingServiceConfig{.pool_name = "storage-test", .max_bytes = max_bytes, .models = models});
}

std::vector<std::string> texts(const std::string& prefix, int count) {
  std::vector<std::string> out;
  for (int i = 0; i < count; ++i) out.push_back(prefix + " storage text " + std::to_string(i));
  return out;
}

TEST(EmbeddingStorage, VectorsComeFromTheServiceSlab) {
  auto service = lexical_service(std::uint64_t{1} << 20);
  EXPECT_FALSE(service->storage_stats(384).has_value());
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
