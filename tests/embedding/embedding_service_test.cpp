#include "pagekeeper/embedding_service.hpp"

#include <atomic>
#include <cmath>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "embedding/counting_embedder.hpp"
#include "pagekeeper/lexical_embedder.hpp"

namespace pagekeeper {
namespace {

using testing::CountingEmbedder;

std::vector<std::string> numbered(const std::string& prefix, int from, int to) {
  std::vector<std::string> out;
  for (int i = from; i < to; ++i) out.push_back(prefix + " text number " + std::to_string(i));
  return out;
}

// A service over a registry holding one CountingEmbedder ("counting", the default) whose
// provider counts how often the model is "loaded" (asked for).
struct Fixture {
  std::shared_ptr<CountingEmbedder> embedder;
  std::shared_ptr<std::atomic<int>> loads = std::make_shared<std::atomic<int>>(0);
  std::shared_ptr<ModelRegistry> models = std::make_shared<ModelRegistry>("counting");
  std::unique_ptr<EmbeddingService> service;

  explicit Fixture(std::size_t max_batch = 1024, std::uint64_t max_bytes = 64 << 20)
      : embedder(std::make_shared<CountingEmbedder>("counting", max_batch)) {
    models->add(
        "counting",
        [e = embedder, l = loads] {
          l->fetch_add(1);
          return std::shared_ptr<Embedder>(e);
        },
        {"counter"});
    models->add(std::make_shared<LexicalEmbedder>());
    service = std::make_unique<EmbeddingService>(
        EmbeddingServiceConfig{.pool_name = "test-embeddings", .max_bytes = max_bytes, .models = models});
  }
};

std::vector<float> lexical(const std::string& text) { return LexicalEmbedder().embed_one(text); }

// ---- Equivalents of the original embedding tests ----

TEST(EmbeddingService, CachedVectorReturnsWithoutLoadingTheModel) {
  Fixture f;
  const std::vector<float> stored = {0.5f, -0.25f, 1.0f};
  ASSERT_TRUE(f.service->put("pre-inserted", "counting", stored));

  const EmbedResult single = f.service->embed("pre-inserted", "counting");
  EXPECT_EQ(single.vector.to_vector(), stored);
  EXPECT_EQ(single.model, "counting");
  EXPECT_EQ(single.accounting.hits, 1u);
  EXPECT_EQ(single.accounting.misses, 0u);

  const std::vector<std::string> texts = {"pre-inserted"};
  const EmbedBatchResult batch = f.service->embed_batch(texts, "COUNTER");
  EXPECT_EQ(batch.vectors.at(0).to_vector(), stored);
  EXPECT_EQ(batch.accounting.hits, 1u);

  EXPECT_EQ(f.loads->load(), 0) << "a hit must not load the model";
  EXPECT_EQ(f.embedder->calls(), 0u);
  EXPECT_GE(f.service->stats().hits, 1u);
}

TEST(EmbeddingService, EmbedBatchIfCachedNeverLoadsAndCountsOnlyHits) {
  Fixture f;
  const std::vector<std::string> texts = {"first", "second"};
  const PoolStats before = f.service->stats();
  EXPECT_FALSE(f.service->embed_batch_if_cached(texts, "counting").has_value());
  EXPECT_FALSE(f.service->embed_batch_if_cached({}, "counting").has_value());
  EXPECT_EQ(f.loads->load(), 0);
  EXPECT_EQ(f.embedder->calls(), 0u);
  EXPECT_EQ(f.service->stats().misses, before.misses) << "a refusal counts nothing";

  ASSERT_TRUE(f.service->put("first", "counting", std::vector<float>{1.0f, 2.0f}));
  EXPECT_FALSE(f.service->embed_batch_if_cached(texts, "counting").has_value()) << "one of two cached";
  ASSERT_TRUE(f.service->put("second", "counting", std::vector<float>{3.0f, 4.0f}));
  const auto all = f.service->embed_batch_if_cached(texts, "counter");
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(all->model, "counting");
  ASSERT_EQ(all->vectors.size(), 2u);
  EXPECT_EQ(all->vectors[0].to_vector(), (std::vector<float>{1.0f, 2.0f}));
  EXPECT_EQ(all->vectors[1].to_vector(), (std::vector<float>{3.0f, 4.0f}));
  EXPECT_EQ(all->accounting.hits, 2u);
  EXPECT_EQ(all->accounting.misses, 0u);
  EXPECT_EQ(f.service->stats().hits, before.hits + 2);
  EXPECT_EQ(f.loads->load(), 0);
  EXPECT_THROW((void)f.service->embed_batch_if_cached(texts, "no-such-model"), UnknownModelError);
}

TEST(EmbeddingService, KeysAreNamespacedByCanonicalModel) {
  Fixture f;
  const auto counted = f.service->embed("shared text", "counting");
  const auto lex = f.service->embed("shared text", "lexical");
  EXPECT_EQ(counted.accounting.misses, 1u);
  EXPECT_EQ(lex.accounting.misses, 1u) << "another model must not share the slot";
  EXPECT_FALSE(counted.vector.same_storage(lex.vector));
  EXPECT_EQ(f.service->stats().entry_count, 2u);
  // Aliases and `default` resolve to the canonical name and share its slot.
  for (const char* alias : {"default", "Counting", "counter", "DEFAULT"}) {
    const auto again = f.service->embed("shared text", alias);
    EXPECT_EQ(again.accounting.hits, 1u) << alias;
    EXPECT_TRUE(again.vector.same_storage(counted.vector)) << alias;
    EXPECT_EQ(again.model, "counting");
  }
  EXPECT_EQ(f.service->stats().entry_count, 2u);
  EXPECT_EQ(f.embedder->calls(), 1u);
  // Deterministic keys: a second service computes the same key for the same pair.
  EXPECT_EQ(EmbeddingKey::of("counting", "shared text"), EmbeddingKey::of("counting", "shared text"));
}

TEST(EmbeddingService, ClearResetsStatisticsAndEntries) {
  Fixture f;
  f.service->embed_batch(numbered("clear", 0, 5), "counting");
  f.service->embed("clear text number 0", "counting");
  ASSERT_EQ(f.service->stats().entry_count, 5u);
  ASSERT_GT(f.service->stats().hits, 0u);
  EXPECT_EQ(f.service->clear(), 5u);
  const PoolStats after = f.service->stats();
  EXPECT_EQ(after.entry_count, 0u);
  EXPECT_EQ(after.total_bytes, 0u);
  EXPECT_EQ(after.hits, 0u);
  EXPECT_EQ(after.misses, 0u);
  EXPECT_FALSE(f.service->contains("clear text number 0", "counting"));
  EXPECT_EQ(f.service->embed("clear text number 0", "counting").accounting.misses, 1u);
}

TEST(EmbeddingService, AllHitBatchCountsItsHits) {
  Fixture f;
  const std::vector<std::string> texts = {"first", "second"};
  f.service->embed_batch(texts, "counting");
  const std::size_t calls = f.embedder->calls();
  const auto again = f.service->embed_batch(texts, "counting");
  EXPECT_EQ(again.accounting.hits, 2u);
  EXPECT_EQ(again.accounting.misses, 0u);
  EXPECT_EQ(again.accounting.embedded, 0u);
  EXPECT_EQ(again.accounting.embedder_calls, 0u);
  EXPECT_EQ(f.embedder->calls(), calls);
}

// ---- Batching ----

TEST(EmbeddingService, BatchReturnsInputOrderEmbeddingOnlyMisses) {
  Fixture f;
  f.service->embed("b", "counting");
  f.service->embed("d", "counting");
  const std::vector<std::string> texts = {"a", "b", "c", "d", "e"};
  const auto result = f.service->embed_batch(texts, "counting");
  ASSERT_EQ(result.vectors.size(), texts.size());
  for (std::size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(result.vectors[i].to_vector(), lexical(texts[i])) << texts[i];
  }
  EXPECT_EQ(result.accounting.hits, 2u);
  EXPECT_EQ(result.accounting.misses, 3u);
  EXPECT_EQ(result.accounting.embedded, 3u);
  EXPECT_EQ(result.accounting.embedder_calls, 1u);
  EXPECT_EQ(f.embedder->texts(), 5u);  // 1 + 1 + 3
}

TEST(EmbeddingService, InBatchDuplicatesAreEmbeddedOnce) {
  Fixture f;
  const std::vector<std::string> texts = {"dup", "other", "dup", "dup", "other"};
  const auto result = f.service->embed_batch(texts, "counting");
  EXPECT_EQ(f.embedder->texts(), 2u);
  EXPECT_EQ(f.embedder->calls(), 1u);
  EXPECT_EQ(result.accounting.embedded, 2u);
  EXPECT_EQ(result.accounting.misses, 5u);
  EXPECT_EQ(result.accounting.hits, 0u);
  EXPECT_TRUE(result.vectors[0].same_storage(result.vectors[2]));
  EXPECT_TRUE(result.vectors[0].same_storage(result.vectors[3]));
  EXPECT_TRUE(result.vectors[1].same_storage(result.vectors[4]));
  EXPECT_EQ(f.service->stats().entry_count, 2u);
}

TEST(EmbeddingService, MissesAreChunkedByTheEmbeddersMaxBatch) {
  Fixture f(/*max_batch=*/3);
  const auto texts = numbered("chunk", 0, 8);
  const auto result = f.service->embed_batch(texts, "counting");
  EXPECT_EQ(f.embedder->calls(), 3u);  // 3 + 3 + 2
  EXPECT_EQ(result.accounting.embedder_calls, 3u);
  EXPECT_EQ(result.accounting.embedded, 8u);
  for (std::size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(result.vectors[i].to_vector(), lexical(texts[i]));
  }
}

TEST(EmbeddingService, EmptyBatchDoesNothingButChecksTheName) {
  Fixture f;
  const auto result = f.service->embed_batch(std::vector<std::string>{}, "default");
  EXPECT_TRUE(result.vectors.empty());
  EXPECT_EQ(result.model, "counting");
  EXPECT_EQ(f.loads->load(), 0);
  EXPECT_THROW(f.service->embed_batch(std::vector<std::string>{}, "nope"), UnknownModelError);
}

// ---- Failures ----

void expect_nothing_cached(const Fixture& f, const std::vector<std::string>& texts) {
  const PoolStats stats = f.service->stats();
  EXPECT_EQ(stats.entry_count, 0u);
  EXPECT_EQ(stats.total_bytes, 0u);
  EXPECT_EQ(stats.inflight, 0u) << "a failed load must not leave an in-flight slot";
  for (const auto& t : texts) EXPECT_FALSE(f.service->contains(t, "counting"));
}

TEST(EmbeddingService, EmbedderFailureCachesNothingAndLeavesNoInflightSlot) {
  Fixture f;
  const auto texts = numbered("fail", 0, 4);
  f.embedder->fail_next(CountingEmbedder::Fault::kThrow);
  try {
    f.service->embed_batch(texts, "counting");
    FAIL() << "expected EmbedderError";
  } catch (const EmbedderError& e) {
    EXPECT_NE(std::string(e.what()).find("injected failure"), std::string::npos) << e.what();
  }
  expect_nothing_cached(f, texts);
  // A retry embeds again and succeeds.
  const auto retry = f.service->embed_batch(texts, "counting");
  EXPECT_EQ(retry.accounting.embedded, 4u);
  EXPECT_EQ(f.embedder->calls(), 2u);
  EXPECT_EQ(f.service->stats().entry_count, 4u);
}

TEST(EmbeddingService, FailureInALaterChunkCachesNothingOfTheCall) {
  Fixture f(/*max_batch=*/2);
  const auto texts = numbered("late", 0, 4);
  // The first chunk succeeds; make the second throw by failing on the call after it.
  struct FailSecond : Embedder {
    std::shared_ptr<CountingEmbedder> inner;
    std::atomic<int> calls{0};
    std::string name() const override { return "flaky"; }
    std::size_t dimensions() const override { return inner->dimensions(); }
    std::size_t max_batch() const override { return 2; }
    std::vector<std::vector<float>> embed(std::span<const std::string_view> t) override {
      if (calls.fetch_add(1) == 1) throw EmbedderError("flaky: second chunk failed");
      return inner->embed(t);
    }
  };
  auto flaky = std::make_shared<FailSecond>();
  flaky->inner = f.embedder;
  f.models->add(flaky);
  EXPECT_THROW(f.service->embed_batch(texts, "flaky"), EmbedderError);
  EXPECT_EQ(f.service->stats().entry_count, 0u);
  EXPECT_EQ(f.service->stats().inflight, 0u);
}

TEST(EmbeddingService, WrongCountDimensionOrNaNIsAnErrorNotACrash) {
  using Fault = CountingEmbedder::Fault;
  for (const auto& [fault, expected] : std::vector<std::pair<Fault, std::string>>{
           {Fault::kShortResult, "returned 1 vectors for 2 texts"},
           {Fault::kWrongDimension, "385 dimensions, expected 384"},
           {Fault::kNaN, "non-finite"}}) {
    Fixture f;
    const std::vector<std::string> texts = {"x", "y"};
    f.embedder->fail_next(fault);
    try {
      f.service->embed_batch(texts, "counting");
      ADD_FAILURE() << "expected EmbedderError: " << expected;
    } catch (const EmbedderError& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
    expect_nothing_cached(f, texts);
  }
}

TEST(EmbeddingService, ProviderNamingAnotherModelIsRefused) {
  Fixture f;
  f.models->add("impostor", [e = f.embedder] { return std::shared_ptr<Embedder>(e); });
  EXPECT_THROW(f.service->embed("t", "impostor"), EmbedderError);
  EXPECT_EQ(f.service->stats().inflight, 0u);
}

TEST(EmbeddingService, UnknownModelIsAClearError) {
  Fixture f;
  try {
    f.service->embed("t", "AllMiniLML6V2");
    FAIL();
  } catch (const UnknownModelError& e) {
    EXPECT_NE(std::string(e.what()).find("counting, lexical"), std::string::npos) << e.what();
  }
}

TEST(EmbeddingService, PutValidatesItsVector) {
  Fixture f;
  EXPECT_THROW(f.service->put("t", "counting", std::vector<float>{}), std::invalid_argument);
  EXPECT_THROW(f.service->put("t", "counting", std::vector<float>{1.0f, NAN}),
               std::invalid_argument);
  EXPECT_THROW(f.service->put("t", "nope", std::vector<float>{1.0f}), UnknownModelError);
}

// ---- Storage ----

TEST(EmbeddingService, PoolIsNamedSizedAndCountsRealBytes) {
  EmbeddingService service(EmbeddingServiceConfig{.models = std::make_shared<ModelRegistry>()});
  EXPECT_EQ(service.pool()->tier_name(), "embedding-cache");
  EXPECT_EQ(service.pool()->capacity_bytes(), 256u << 20);
  // 384 floats + the 16-byte handle + the chunk's 16-byte header + the 64-byte key.
  EXPECT_EQ(EmbeddingService::entry_bytes(384), 1536u + 16u + 16u + 64u);
  Fixture f;
  f.service->embed("one", "counting");
  EXPECT_EQ(f.service->stats().total_bytes, EmbeddingService::entry_bytes(384));
  std::shared_ptr<ResourcePool> as_tier = f.service->pool();  // what a broker registers
  EXPECT_EQ(as_tier->usage_bytes(), EmbeddingService::entry_bytes(384));
}

TEST(EmbeddingService, BudgetEvictsOldVectors) {
  const std::uint64_t budget = EmbeddingService::entry_bytes(384) * 10;
  Fixture f(1024, budget);
  f.service->embed_batch(numbered("budget", 0, 25), "counting");
  const PoolStats stats = f.service->stats();
  EXPECT_LE(stats.total_bytes, budget);
  EXPECT_LE(stats.entry_count, 10u);
  EXPECT_GT(stats.evictions, 0u);
  EXPECT_EQ(f.service->pool()->verify_invariants(), "");
}

// ---- The 0/64 regression: one cache under every entry point of the process ----

TEST(EmbeddingServiceProcessDefault, SixtyFourTextsHitThroughAnotherEntryPoint) {
  const auto texts = numbered("zero-of-sixty-four", 0, 64);
  // Entry point 1: a batch caller (the indexer's path).
  auto indexer_side = EmbeddingService::process_default();
  const auto first = indexer_side->embed_batch(texts);
  EXPECT_EQ(first.accounting.misses, 64u);
  EXPECT_EQ(first.accounting.embedded, 64u);
  // Entry point 2: single-text calls (a request handler's path), through the accessor.
  std::size_t hits = 0;
  for (const auto& t : texts) hits += EmbeddingService::process_default()->embed(t, "default").accounting.hits;
  EXPECT_EQ(hits, 64u) << "64 of 64 must be hits";
  // And the other way round, under the canonical name.
  const auto more = numbered("sixty-four-reverse", 0, 64);
  for (const auto& t : more) EmbeddingService::process_default()->embed(t, "lexical");
  EXPECT_EQ(indexer_side->embed_batch(more, "Default").accounting.hits, 64u);
  EXPECT_EQ(EmbeddingService::process_default().get(), indexer_side.get());
  EXPECT_THROW(EmbeddingService::init_process_default({}), std::logic_error);
}

}  // namespace
}  // namespace pagekeeper
