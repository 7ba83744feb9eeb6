// What a lower-tier hit costs: a batch of 64 vectors (384-d, lexical) read from the local
// LMDB tier and from Redis, each beside its peers measured in the same run:
//   - redis-benchmark's pipelined GETs (-P 64) of values of the same size (the floor any
//     Redis client reaches for 64 reads);
//   - embedding the same 64 texts with the lexical embedder (what a tier hit saves).
// Reads go through the store and the record decoder (BM_TierRead64), and end to end through an
// EmbeddingService whose memory is empty at each batch (BM_ServiceBatch64FromTier).
// A redis-server is started on a free port of 127.0.0.1 for the run.

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "pagekeeper/embedding_service.hpp"
#include "pagekeeper/lexical_embedder.hpp"
#include "pagekeeper/lmdb_tier.hpp"
#include "pagekeeper/redis_tier.hpp"
#include "pagekeeper/tier_chain.hpp"
#include "pagekeeper/tier_record.hpp"
#include "pagekeeper/detail/vector_slab.hpp"
#include "tiers/redis_test_support.hpp"

namespace {

using namespace pagekeeper;

constexpr std::size_t kBatch = 64;
constexpr std::size_t kDims = 384;

// Everything the benchmarks share, built once: a Redis server, an LMDB directory, both
// holding the records of the same 64 texts under their tier keys.
struct Fixture {
  testing::RedisServer redis;
  testing::TempDir dir;
  std::vector<std::string> texts;
  std::vector<std::string> keys;
  std::shared_ptr<LmdbTier> disk;
  std::shared_ptr<RedisTier> remote;
  std::shared_ptr<ModelRegistry> models = std::make_shared<ModelRegistry>("lexical");

  Fixture() {
    models->add(std::make_shared<LexicalEmbedder>());
    const LexicalEmbedder embedder;
    for (std::size_t i = 0; i < kBatch; ++i) {
      texts.push_back("a paragraph of about two hundred bytes from a document that the fleet indexes, number " +
                      std::to_string(i) + ", with words such as cache, vector, model, paging, memory and budget.");
    }
    disk = std::make_shared<LmdbTier>(LmdbTierOptions{.directory = dir.path(), .max_bytes = 64 << 20});
    remote = std::make_shared<RedisTier>(RedisTierOptions{.seeds = {redis.url()}});
    std::vector<std::pair<std::string, std::string>> records;
    for (const std::string& text : texts) {
      const std::string key = *tier_key("lexical", identity_digest(embedder.identity()), sha256(text));
      keys.push_back(key);
      records.emplace_back(key, encode_vector_record(key, embedder.embed_one(text)));
    }
    disk->put_many(records);
    remote->put_many(records);
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

void read64(benchmark::State& state, TierStore& store) {
  Fixture& f = fixture();
  VectorSlab slab(kDims);
  for (auto _ : state) {
    const auto records = store.get_many(f.keys);
    for (std::size_t i = 0; i < records.size(); ++i) {
      auto v = decode_vector_record(f.keys[i], records[i].value(), kDims, &slab);
      if (!v) state.SkipWithError("record did not decode");
      benchmark::DoNotOptimize(v);
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kBatch));
}

void BM_TierRead64_Disk(benchmark::State& state) { read64(state, *fixture().disk); }
void BM_TierRead64_Redis(benchmark::State& state) { read64(state, *fixture().remote); }

// The same batch through an EmbeddingService with one tier and an empty memory: hashing,
// the pool's misses and single flight, the tier lookup, decoding, inserting.
void service_batch(benchmark::State& state, std::shared_ptr<TierStore> store) {
  Fixture& f = fixture();
  auto chain = std::make_shared<TierChain>(std::vector<std::shared_ptr<TierStore>>{std::move(store)});
  EmbeddingService service(EmbeddingServiceConfig{.max_bytes = 64 << 20, .models = f.models, .tiers = chain});
  for (auto _ : state) {
    state.PauseTiming();
    service.pool()->clear();
    state.ResumeTiming();
    const EmbedBatchResult r = service.embed_batch(f.texts);
    if (r.accounting.from_tiers != kBatch) state.SkipWithError("not every vector came from the tier");
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kBatch));
}

void BM_ServiceBatch64FromTier_Disk(benchmark::State& state) { service_batch(state, fixture().disk); }
void BM_ServiceBatch64FromTier_Redis(benchmark::State& state) { service_batch(state, fixture().remote); }

// Peer: redis-benchmark, 64 pipelined GETs of values of the records' size over 64 keys, on
// the same server. Its rate gives the time of one batch of 64.
void BM_RedisBenchmarkPipelinedGet64(benchmark::State& state) {
  Fixture& f = fixture();
  const std::string value_bytes = std::to_string(kTierRecordHeaderBytes + kDims * sizeof(float));
  const std::string command = "redis-benchmark -h 127.0.0.1 -p " + std::to_string(f.redis.port()) +
                              " -t set,get -P 64 -c 1 -n 640000 -r 64 -d " + value_bytes + " -q --csv 2>/dev/null";
  for (auto _ : state) {
    const std::string out = testing::run_command(command);
    const std::size_t at = out.find("\"GET\",\"");
    if (at == std::string::npos) {
      state.SkipWithError("redis-benchmark printed no GET rate");
      break;
    }
    const double rps = std::stod(out.substr(at + 7));
    state.SetIterationTime(static_cast<double>(kBatch) / rps);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kBatch));
}

// What a tier hit saves: embedding the 64 texts (lexical, the cheapest embedder).
void BM_EmbedLexical64(benchmark::State& state) {
  Fixture& f = fixture();
  LexicalEmbedder embedder;
  std::vector<std::string_view> views(f.texts.begin(), f.texts.end());
  for (auto _ : state) benchmark::DoNotOptimize(embedder.embed(std::span<const std::string_view>(views)));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kBatch));
}

BENCHMARK(BM_TierRead64_Disk)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_TierRead64_Redis)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ServiceBatch64FromTier_Disk)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ServiceBatch64FromTier_Redis)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RedisBenchmarkPipelinedGet64)->Iterations(5)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_EmbedLexical64)->Unit(benchmark::kMicrosecond);

}  // namespace
