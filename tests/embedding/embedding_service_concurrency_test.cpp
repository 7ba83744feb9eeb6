// Concurrency of the embedding service (label `concurrent`, run under TSan in CI).

#include <atomic>
#include <chrono>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "embedding/counting_embedder.hpp"
#include "pagekeeper/embedding_service.hpp"
#include "pagekeeper/lexical_embedder.hpp"
#include "support/patience.hpp"

namespace pagekeeper {
namespace {

using testing::CountingEmbedder;
using namespace std::chrono_literals;

std::vector<std::string> numbered(int from, int to) {
  std::vector<std::string> out;
  for (int i = from; i < to; ++i) out.push_back("concurrent text " + std::to_string(i));
  return out;
}

std::unique_ptr<EmbeddingService> make_service(const std::shared_ptr<CountingEmbedder>& e) {
  auto models = std::make_shared<ModelRegistry>("counting");
  models->add(e);
  return std::make_unique<EmbeddingService>(
      EmbeddingServiceConfig{.pool_name = "concurrent-embeddings", .models = models});
}

bool wait_for(const std::function<bool()>& condition) { return test_support::eventually(condition); }

// Batch A (texts 0..99) is held inside the embedder; batch B (50..149) then starts, must
// join A's 50 shared texts and embed only its own 50.
TEST(EmbeddingServiceConcurrent, OverlappingBatchesEmbedEachDistinctTextOnce) {
  auto embedder = std::make_shared<CountingEmbedder>();
  auto service = make_service(embedder);
  embedder->hold_next();
  EmbedBatchResult a;
  std::jthread first([&] { a = service->embed_batch(numbered(0, 100)); });
  if (!embedder->wait_until_held()) {
    embedder->release();
    FAIL() << "the first batch never reached the embedder";
  }
  EmbedBatchResult b;
  std::jthread second([&] { b = service->embed_batch(numbered(50, 150)); });
  // B claims its slots (joining A's 50) before it calls the embedder with its own 50.
  const bool b_embedded = wait_for([&] { return embedder->texts() == 150; });
  embedder->release();
  first.join();
  second.join();
  ASSERT_TRUE(b_embedded);

  EXPECT_EQ(embedder->texts(), 150u) << "each distinct text embedded exactly once";
  EXPECT_EQ(a.accounting.embedded, 100u);
  EXPECT_EQ(a.accounting.joined, 0u);
  EXPECT_EQ(b.accounting.embedded, 50u);
  EXPECT_EQ(b.accounting.joined, 50u);
  EXPECT_EQ(b.accounting.misses, 100u);
  for (int i = 0; i < 50; ++i) EXPECT_TRUE(b.vectors[i].same_storage(a.vectors[50 + i]));
  EXPECT_EQ(service->stats().entry_count, 150u);
  EXPECT_EQ(service->stats().inflight, 0u);
}

// A request that joined a load which then fails gets the same error; nothing is cached and
// no slot is left, so the next request embeds again. Whether the second request joins the
// held load or (reaching the pool a moment late) finds it gone and embeds on its own is the
// scheduler's choice: both outcomes are checked, and rounds repeat until the join was seen.
TEST(EmbeddingServiceConcurrent, JoinersOfAFailedLoadSeeTheErrorAndNothingIsCached) {
  bool joined = false;
  for (int round = 0; round < 50 && !joined; ++round) {
    auto embedder = std::make_shared<CountingEmbedder>();
    auto service = make_service(embedder);
    embedder->hold_next();
    embedder->fail_next(CountingEmbedder::Fault::kThrow);
    std::atomic<int> errors{0};
    std::thread first([&] {
      try {
        service->embed_batch(numbered(0, 10));
      } catch (const EmbedderError&) {
        errors.fetch_add(1);
      }
    });
    if (!embedder->wait_until_held()) {
      embedder->release();
      first.join();
      FAIL() << "the first batch never reached the embedder";
    }
    std::thread second([&] {
      try {
        service->embed("concurrent text 3");
      } catch (const EmbedderError&) {
        errors.fetch_add(1);
      }
    });
    // The second request has looked the text up once the pool counted its miss; it joins the
    // in-flight slot right after, unless the release below overtakes it.
    const bool looked_up = wait_for([&] { return service->stats().misses >= 11; });
    embedder->release();
    first.join();
    second.join();
    ASSERT_TRUE(looked_up);
    EXPECT_EQ(service->stats().inflight, 0u);
    if (embedder->calls() == 1) {  // joined: the failure reached both, nothing was cached
      joined = true;
      EXPECT_EQ(errors.load(), 2);
      EXPECT_EQ(service->stats().entry_count, 0u);
      EXPECT_EQ(service->embed("concurrent text 3").accounting.embedded, 1u);
    } else {  // late: the failed load left nothing behind, so it embedded its text itself
      EXPECT_EQ(embedder->calls(), 2u);
      EXPECT_EQ(errors.load(), 1);
      EXPECT_EQ(service->stats().entry_count, 1u);
    }
  }
  EXPECT_TRUE(joined) << "the second request never joined the held load";
}

// Free-running: 4 threads embed random overlapping batches and singles; with a budget that
// holds everything, every distinct text is embedded exactly once overall.
TEST(EmbeddingServiceConcurrent, RandomOverlappingTrafficEmbedsEachTextOnce) {
  auto embedder = std::make_shared<CountingEmbedder>("counting", 7);
  auto service = make_service(embedder);
  constexpr int kTexts = 400;
  const auto all = numbered(0, kTexts);
  std::atomic<std::size_t> hits{0}, misses{0}, embedded{0}, requested{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(1234 + t);
      for (int round = 0; round < 60; ++round) {
        std::vector<std::string> batch;
        const int n = 1 + static_cast<int>(rng() % 24);
        for (int i = 0; i < n; ++i) batch.push_back(all[rng() % kTexts]);
        EmbedAccounting acc;
        if (n == 1) {
          acc = service->embed(batch[0]).accounting;
        } else {
          acc = service->embed_batch(batch).accounting;
        }
        ASSERT_EQ(acc.hits + acc.misses, batch.size());
        ASSERT_LE(acc.joined, acc.misses);
        hits += acc.hits;
        misses += acc.misses;
        embedded += acc.embedded;
        requested += batch.size();
      }
    });
  }
  for (auto& th : threads) th.join();
  const std::size_t distinct = service->stats().entry_count;
  EXPECT_EQ(embedder->texts(), distinct);
  EXPECT_EQ(embedded.load(), distinct);
  EXPECT_EQ(hits.load() + misses.load(), requested.load());
  EXPECT_EQ(service->stats().inflight, 0u);
  EXPECT_EQ(service->pool()->verify_invariants(), "");
}

// Evictions through resource_pool() (what the broker does), each followed by a trim of the
// vector storage, and clear(), while 3 threads embed through a cache that holds a sixth of
// their texts: every vector returned is the text's own, whole, and the storage ends holding
// exactly the cached vectors.
TEST(EmbeddingServiceConcurrent, BrokerEvictionsTrimStorageBesideTraffic) {
  auto models = std::make_shared<ModelRegistry>("lexical");
  models->add(std::make_shared<LexicalEmbedder>());
  auto service = std::make_unique<EmbeddingService>(EmbeddingServiceConfig{
      .pool_name = "trim-beside-traffic", .max_bytes = EmbeddingService::entry_bytes(384) * 100, .models = models});
  constexpr int kTexts = 600;
  const auto all = numbered(0, kTexts);
  std::vector<std::vector<float>> expected;
  for (const std::string& text : all) expected.push_back(LexicalEmbedder().embed_one(text));
  const std::shared_ptr<ResourcePool> tier = service->resource_pool();
  std::atomic<bool> done{false};
  std::atomic<int> wrong{0};
  std::thread evictor([&] {
    for (int round = 0; !done.load(); ++round) {
      tier->evict_at_least(tier->usage_bytes() / 2 + 1);
      if (round % 16 == 15) service->clear();
      const auto storage = service->storage_stats(384);
      if (storage && storage->mapped_bytes < storage->blocks * (std::uint64_t{64} << 10)) wrong.fetch_add(1);
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(99 + t);
      for (int round = 0; round < 150; ++round) {
        std::vector<std::string> batch;
        std::vector<int> which;
        const int n = 1 + static_cast<int>(rng() % 32);
        for (int i = 0; i < n; ++i) {
          which.push_back(static_cast<int>(rng() % kTexts));
          batch.push_back(all[which.back()]);
        }
        const EmbedBatchResult r = service->embed_batch(batch);
        for (int i = 0; i < n; ++i) {
          if (r.vectors[i].to_vector() != expected[which[i]]) wrong.fetch_add(1);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  done = true;
  evictor.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(service->pool()->verify_invariants(), "");
  EXPECT_EQ(service->stats().inflight, 0u);
  // Nothing is held outside the cache now: the storage's live vectors are the cached ones.
  EXPECT_EQ(service->storage_stats(384)->live_vectors, service->stats().entry_count);
  service->embed_batch(numbered(kTexts, kTexts + 50));  // something to evict, whatever is left
  EXPECT_GT(tier->evict_at_least(tier->usage_bytes()), 0u);
  EXPECT_EQ(service->stats().entry_count, 0u);
  EXPECT_EQ(service->storage_stats(384)->live_vectors, 0u);
  EXPECT_EQ(service->storage_stats(384)->mapped_bytes, 0u);  // every block emptied, so returned
}

}  // namespace
}  // namespace pagekeeper
