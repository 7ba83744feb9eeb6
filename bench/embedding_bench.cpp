// Benchmarks of the embedding cache (EmbeddingService), each beside its baseline measured in
// the same binary and run:
//   - cached hits of 200-byte and 2 KB texts  vs  SHA-256 of the same texts alone
//     (a hit must hash the text, so hashing is the floor);
//   - the all-miss path through the service   vs  calling the lexical embedder directly;
//   - how many 384-d vectors a default (256 MiB) service holds, filled until it evicts.

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <benchmark/benchmark.h>

#include "pagekeeper/detail/content_hash.hpp"
#include "pagekeeper/embedding_service.hpp"
#include "pagekeeper/lexical_embedder.hpp"
#include "pagekeeper/resource_pool.hpp"

namespace {

using pagekeeper::EmbeddingService;
using pagekeeper::EmbeddingServiceConfig;
using pagekeeper::LexicalEmbedder;
using pagekeeper::ModelRegistry;

// `count` distinct texts of exactly `bytes` bytes: words from a small vocabulary with a
// unique serial number up front, like chunks of prose or code.
std::vector<std::string> make_texts(std::size_t count, std::size_t bytes, std::uint64_t seed = 7) {
  static const char* const kWords[] = {"cache", "vector", "model", "paging", "memory", "budget",
                                       "text", "batch", "embedding", "pressure", "the", "of",
                                       "and", "query", "index", "lexical", "token", "entry"};
  std::mt19937_64 rng(seed);
  std::vector<std::string> texts;
  texts.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    std::string t = "doc" + std::to_string(seed) + "-" + std::to_string(i);
    while (t.size() < bytes) {
      t += ' ';
      t += kWords[rng() % std::size(kWords)];
    }
    t.resize(bytes);
    texts.push_back(std::move(t));
  }
  return texts;
}

std::unique_ptr<EmbeddingService> make_service(std::uint64_t max_bytes = std::uint64_t{256} << 20) {
  auto models = std::make_shared<ModelRegistry>("lexical");
  models->add(std::make_shared<LexicalEmbedder>());
  return std::make_unique<EmbeddingService>(
      EmbeddingServiceConfig{.pool_name = "embedding-cache", .max_bytes = max_bytes, .models = models});
}

constexpr std::size_t kHitTexts = 4096;

void BM_Sha256(benchmark::State& state) {
  const auto texts = make_texts(kHitTexts, static_cast<std::size_t>(state.range(0)));
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(pagekeeper::sha256(texts[i]));
    i = (i + 1) % texts.size();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_Sha256)->Arg(200)->Arg(2048);

// A cached vector through the service's single-text entry point: resolve the model name,
// hash, look up, return the shared vector. The embedder is never called.
void BM_EmbedCachedHit(benchmark::State& state) {
  const auto texts = make_texts(kHitTexts, static_cast<std::size_t>(state.range(0)));
  auto service = make_service();
  service->embed_batch(texts);
  std::size_t i = 0;
  std::size_t hits = 0;
  for (auto _ : state) {
    const auto result = service->embed(texts[i]);
    hits += result.accounting.hits;
    benchmark::DoNotOptimize(result.vector.data());
    i = (i + 1) % texts.size();
  }
  if (hits != static_cast<std::size_t>(state.iterations())) state.SkipWithError("not all hits");
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_EmbedCachedHit)->Arg(200)->Arg(2048);

// The same through embed_batch, 64 texts per call.
void BM_EmbedBatchCachedHit(benchmark::State& state) {
  const auto texts = make_texts(kHitTexts, static_cast<std::size_t>(state.range(0)));
  auto service = make_service();
  service->embed_batch(texts);
  constexpr std::size_t kBatch = 64;
  std::vector<std::vector<std::string>> batches;
  for (std::size_t b = 0; b + kBatch <= texts.size(); b += kBatch) {
    batches.emplace_back(texts.begin() + b, texts.begin() + b + kBatch);
  }
  std::size_t i = 0;
  for (auto _ : state) {
    const auto result = service->embed_batch(batches[i]);
    if (result.accounting.hits != kBatch) state.SkipWithError("not all hits");
    benchmark::DoNotOptimize(result.vectors.data());
    i = (i + 1) % batches.size();
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.SetBytesProcessed(state.iterations() * kBatch * state.range(0));
}
BENCHMARK(BM_EmbedBatchCachedHit)->Arg(200)->Arg(2048);

// All-miss: batches of distinct, never-seen 200-byte texts through the service (hash,
// lookup, single-flight slots, embed, copy into the compact vector, insert), against the
// lexical embedder called directly on the same batches. Texts are generated up front; when
// they run out the pool is cleared outside the timed region.
constexpr std::size_t kMissTexts = 64 * 1024;

// Embeds `texts` through the service's entry point for that many texts (one: embed(),
// more: embed_batch()); returns how many the embedder computed.
std::size_t embed_through_service(EmbeddingService& service, std::span<const std::string> texts) {
  if (texts.size() == 1) {
    const auto result = service.embed(texts.front());
    benchmark::DoNotOptimize(result.vector.data());
    return result.accounting.embedded;
  }
  const auto result = service.embed_batch(texts);
  benchmark::DoNotOptimize(result.vectors.data());
  return result.accounting.embedded;
}

void BM_LexicalDirect(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  const auto texts = make_texts(kMissTexts, 200, 11);
  // Views made up front, so the baseline pays nothing to hand its texts over.
  const std::vector<std::string_view> views(texts.begin(), texts.end());
  LexicalEmbedder embedder;
  std::size_t next = 0;
  for (auto _ : state) {
    if (next + batch > texts.size()) next = 0;
    auto vectors = embedder.embed(std::span<const std::string_view>(views.data() + next, batch));
    benchmark::DoNotOptimize(vectors.data());
    next += batch;
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_LexicalDirect)->Arg(1)->Arg(64);

void BM_EmbedAllMiss(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  const auto texts = make_texts(kMissTexts, 200, 11);
  auto service = make_service();
  std::size_t next = 0;
  for (auto _ : state) {
    if (next + batch > texts.size()) {
      state.PauseTiming();
      service->clear();
      next = 0;
      state.ResumeTiming();
    }
    if (embed_through_service(*service, std::span<const std::string>(texts.data() + next, batch)) != batch) {
      state.SkipWithError("expected misses");
    }
    next += batch;
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_EmbedAllMiss)->Arg(1)->Arg(64);

// The all-miss path of a cache that is already full (16 MiB, about 10,000 vectors): every
// new vector evicts old ones, so the cache recycles memory instead of growing the heap,
// as a long-running server streaming new texts does. BM_EmbedAllMiss measures the cache
// while it fills (each vector lands in fresh pages).
void BM_EmbedAllMissFullCache(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  const auto texts = make_texts(kMissTexts, 200, 11);
  auto service = make_service(std::uint64_t{16} << 20);
  std::size_t next = 0;
  auto embed_next = [&] {
    if (next + batch > texts.size()) next = 0;  // the first texts were evicted long ago
    const auto result =
        service->embed_batch(std::span<const std::string>(texts.data() + next, batch));
    next += batch;
    return result.accounting.embedded;
  };
  while (service->stats().evictions == 0) embed_next();  // fill (before the timed loop)
  for (auto _ : state) {
    if (embed_next() != batch) state.SkipWithError("expected misses");
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_EmbedAllMissFullCache)->Arg(1)->Arg(64);

// The all-miss overhead as one paired measurement: each iteration embeds a block of texts
// with the lexical embedder called directly, then a block of other never-seen texts through
// the service, timing each block, so both sides see the same machine from one millisecond
// to the next (this machine's speed drifts by several percent between separate benchmark
// runs, as much as the overhead being measured). Reported per text: direct_ns, service_ns
// and overhead (service / direct). Args: texts per call (1: embed(), 64: embed_batch()),
// and the cache (0: filling a default 256 MiB cache, cleared untimed when the texts run
// out; 1: a full 16 MiB cache, evicting).
void BM_EmbedAllMissPaired(benchmark::State& state) {
  using Clock = std::chrono::steady_clock;
  const auto batch = static_cast<std::size_t>(state.range(0));
  const bool full = state.range(1) != 0;
  constexpr std::size_t kBlock = 256;  // texts per side per iteration (about 5 ms)
  const auto direct_texts = make_texts(kMissTexts, 200, 12);
  const std::vector<std::string_view> direct_views(direct_texts.begin(), direct_texts.end());
  const auto texts = make_texts(kMissTexts, 200, 11);
  LexicalEmbedder embedder;
  auto service = make_service(full ? std::uint64_t{16} << 20 : std::uint64_t{256} << 20);
  std::size_t next = 0;
  auto embed_block = [&] {
    std::size_t embedded = 0;
    for (std::size_t k = 0; k < kBlock; k += batch, next += batch) {
      embedded += embed_through_service(*service, std::span<const std::string>(texts.data() + next, batch));
    }
    return embedded;
  };
  if (full) {
    while (service->stats().evictions == 0) {  // fill, untimed
      if (next + kBlock > texts.size()) next = 0;
      embed_block();
    }
  }
  std::size_t direct_next = 0;
  Clock::duration direct_time{};
  Clock::duration service_time{};
  for (auto _ : state) {
    if (direct_next + kBlock > direct_views.size()) direct_next = 0;
    if (next + kBlock > texts.size()) {
      next = 0;
      if (!full) {
        state.PauseTiming();
        service->clear();
        state.ResumeTiming();
      }
    }
    const auto t0 = Clock::now();
    for (std::size_t k = 0; k < kBlock; k += batch, direct_next += batch) {
      auto vectors = embedder.embed(std::span<const std::string_view>(direct_views.data() + direct_next, batch));
      benchmark::DoNotOptimize(vectors.data());
    }
    const auto t1 = Clock::now();
    const std::size_t embedded = embed_block();
    const auto t2 = Clock::now();
    if (embedded != kBlock) state.SkipWithError("expected misses");
    direct_time += t1 - t0;
    service_time += t2 - t1;
  }
  const double texts_per_side = static_cast<double>(state.iterations() * kBlock);
  const double direct_ns = std::chrono::duration<double, std::nano>(direct_time).count() / texts_per_side;
  const double service_ns = std::chrono::duration<double, std::nano>(service_time).count() / texts_per_side;
  state.counters["direct_ns"] = direct_ns;
  state.counters["service_ns"] = service_ns;
  state.counters["overhead"] = service_ns / direct_ns;
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kBlock));
}
BENCHMARK(BM_EmbedAllMissPaired)->Args({1, 0})->Args({64, 0})->Args({1, 1})->Args({64, 1})->Unit(benchmark::kMillisecond);

// What this machine's kernel charges for memory a filling cache keeps: mapping and
// populating (MAP_POPULATE) 2 MiB blocks, as the vector slab does, and writing every line,
// reported per 1,552-byte chunk (one 384-d vector). A full cache recycles its chunks and
// pays none of this; the direct embedder reuses one freed buffer and pays none either.
void BM_KernelPagePopulate(benchmark::State& state) {
  constexpr std::size_t kBlock = std::size_t{2} << 20;
  constexpr std::size_t kChunk = 1552;
  for (auto _ : state) {
    void* p = ::mmap(nullptr, kBlock, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
                     -1, 0);
    if (p == MAP_FAILED) {
      state.SkipWithError("mmap failed");
      break;
    }
    auto* bytes = static_cast<volatile char*>(p);
    for (std::size_t i = 0; i < kBlock; i += 64) bytes[i] = 1;
    state.PauseTiming();
    ::munmap(p, kBlock);
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kBlock / kChunk));
}
BENCHMARK(BM_KernelPagePopulate);

long resident_bytes() {
  long pages_total = 0;
  long pages_resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages_total, &pages_resident) != 2) pages_resident = 0;
    std::fclose(f);
  }
  return pages_resident * sysconf(_SC_PAGESIZE);
}

// Fills a default-size (256 MiB) service with distinct 384-d vectors until its first
// eviction and reports how many were resident then, with the budget bytes and the measured
// resident memory (RSS growth) per vector.
void BM_FillDefaultCache384(benchmark::State& state) {
  const std::vector<float> vector = LexicalEmbedder().embed_one("a representative vector");
  for (auto _ : state) {
    auto service = make_service();
    const long rss_before = resident_bytes();
    std::uint64_t n = 0;
    while (service->stats().evictions == 0) {
      // Check the counter every 1024 puts: stats() reads every shard.
      for (int k = 0; k < 1024; ++k, ++n) service->put("text " + std::to_string(n), "lexical", vector);
    }
    const auto stats = service->stats();
    const long rss_after = resident_bytes();
    state.counters["vectors_resident"] = static_cast<double>(stats.entry_count);
    state.counters["budget_bytes_per_vector"] =
        static_cast<double>(stats.total_bytes) / static_cast<double>(stats.entry_count);
    state.counters["rss_bytes_per_vector"] =
        static_cast<double>(rss_after - rss_before) / static_cast<double>(stats.entry_count);
    state.counters["max_bytes"] = static_cast<double>(stats.max_bytes);
  }
}
BENCHMARK(BM_FillDefaultCache384)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace

namespace {

// An embedder that does no work: it returns a fixed 384-d vector per text (writing each
// one out, as a real embedder must). With it, the all-miss path measures the service's own
// cost per text in absolute terms (hashing, the pool, vector storage), which
// BM_EmbedAllMiss shows only as a fraction of the lexical embedder's time. Like the lexical
// embedder it writes each vector straight into the cache's storage (embed_compact), so the
// service takes the same path as with the lexical embedder.
class FixedVectorEmbedder final : public pagekeeper::Embedder {
 public:
  std::string name() const override { return "fixed"; }
  std::size_t dimensions() const override { return 384; }
  std::size_t max_batch() const override { return 64; }
  using Embedder::embed;
  std::vector<std::vector<float>> embed(std::span<const std::string_view> texts) override {
    return std::vector<std::vector<float>>(texts.size(), vector_);
  }
  std::vector<pagekeeper::EmbeddingVector> embed_compact(std::span<const std::string_view> texts,
                                                         pagekeeper::VectorSlab& storage) override {
    std::vector<pagekeeper::EmbeddingVector> out;
    out.reserve(texts.size());
    for (std::size_t i = 0; i < texts.size(); ++i) {
      out.push_back(storage.make([&](std::span<float> v) { std::copy(vector_.begin(), vector_.end(), v.begin()); }));
    }
    return out;
  }

 private:
  std::vector<float> vector_ = std::vector<float>(384, 0.05f);
};

void BM_EmbedAllMissServiceOnly(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  const auto texts = make_texts(kMissTexts, 200, 11);
  auto models = std::make_shared<ModelRegistry>("fixed");
  models->add(std::make_shared<FixedVectorEmbedder>());
  auto service = std::make_unique<EmbeddingService>(EmbeddingServiceConfig{
      .pool_name = "embedding-cache", .max_bytes = std::uint64_t{16} << 20, .models = models});
  std::size_t next = 0;
  for (auto _ : state) {
    if (next + batch > texts.size()) next = 0;
    if (batch == 1) {
      benchmark::DoNotOptimize(service->embed(texts[next]).vector.data());
    } else {
      benchmark::DoNotOptimize(
          service->embed_batch(std::span<const std::string>(texts.data() + next, batch)).vectors.data());
    }
    next += batch;
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_EmbedAllMissServiceOnly)->Arg(1)->Arg(64);

void BM_FixedEmbedderDirect(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  const auto texts = make_texts(4096, 200, 11);
  FixedVectorEmbedder embedder;
  std::size_t next = 0;
  for (auto _ : state) {
    if (next + batch > texts.size()) next = 0;
    benchmark::DoNotOptimize(embedder.embed(std::span<const std::string>(texts.data() + next, batch)).data());
    next += batch;
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_FixedEmbedderDirect)->Arg(1)->Arg(64);

}  // namespace

namespace {

// The embedding pool's own all-miss cost, without hashing, embedding or vector storage: the
// service's pool (its sizer: 1,632 budget bytes per 384-d entry), keys hashed and grouped
// before the timed loop, and a loader that returns copies of one prebuilt vector (a
// reference-count increment each). This is what the service spends in load_or_share /
// load_many with their inserts and evictions. Arg: texts per call (1: load_or_share, as
// embed() does; 64: load_many, as embed_batch() does). Filling: a 256 MiB pool cleared
// (untimed) when the keys run out, as BM_EmbedAllMiss; Full: a full 16 MiB pool evicting,
// as BM_EmbedAllMissFullCache.
void pool_all_miss(benchmark::State& state, std::uint64_t max_bytes, bool filling) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  std::vector<std::vector<pagekeeper::EmbeddingKey>> batches;
  {
    const auto texts = make_texts(kMissTexts, 200, 11);
    for (std::size_t b = 0; b + batch <= texts.size(); b += batch) {
      batches.emplace_back();
      for (std::size_t i = b; i < b + batch; ++i) {
        batches.back().push_back(pagekeeper::EmbeddingKey::of("lexical", texts[i]));
      }
    }
  }
  const pagekeeper::EmbeddingVector prebuilt(LexicalEmbedder().embed_one("a representative vector"));
  auto service = make_service(max_bytes);  // for its pool and the pool's configuration
  const std::shared_ptr<EmbeddingService::Pool> pool = service->pool();
  auto load_one = [&] { return prebuilt; };
  auto load_batch = [&](const std::vector<pagekeeper::EmbeddingKey>& missing) {
    return std::vector<pagekeeper::EmbeddingVector>(missing.size(), prebuilt);
  };
  std::size_t next = 0;
  auto run = [&] {
    if (next == batches.size()) next = 0;
    pagekeeper::LoadManyStats stats;
    if (batch == 1) {
      benchmark::DoNotOptimize(pool->load_or_share(batches[next].front(), load_one, &stats).data());
    } else {
      benchmark::DoNotOptimize(pool->load_many(batches[next], load_batch, &stats).data());
    }
    ++next;
    return stats.loaded;
  };
  if (!filling) {
    while (pool->stats().evictions == 0) run();  // fill (before the timed loop)
  }
  for (auto _ : state) {
    if (filling && next == batches.size()) {
      state.PauseTiming();
      pool->clear();
      state.ResumeTiming();
    }
    if (run() != batch) state.SkipWithError("expected misses");
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

void BM_PoolAllMissFilling(benchmark::State& state) {
  pool_all_miss(state, std::uint64_t{256} << 20, /*filling=*/true);
}
BENCHMARK(BM_PoolAllMissFilling)->Arg(1)->Arg(64);

void BM_PoolAllMissFull(benchmark::State& state) {
  pool_all_miss(state, std::uint64_t{16} << 20, /*filling=*/false);
}
BENCHMARK(BM_PoolAllMissFull)->Arg(1)->Arg(64);

// Puts 384-float vectors under fresh keys ("vector <next>") until the next would exceed
// `budget`: the cache filled in order, oldest vectors in the first chunks.
void fill_to_budget(EmbeddingService& service, std::uint64_t budget, std::uint64_t& next) {
  const std::vector<float> vector(384, 0.05f);
  while (service.stats().total_bytes + EmbeddingService::entry_bytes(384) <= budget) {
    service.put("vector " + std::to_string(next++), "lexical", vector);
  }
}

// Resident bytes of the 384-dimension storage: mapped less the pages given back.
double resident_storage_bytes(const EmbeddingService& service) {
  const pagekeeper::VectorSlab::Stats st = *service.storage_stats(384);
  return static_cast<double>(st.mapped_bytes) - static_cast<double>(st.released_bytes);
}

// A broker's eviction of a twentieth of a full 256 MiB embedding cache (about 164,000
// vectors of 384 dimensions), the bound its host shedding asks of a pool per pass: through
// pool() (Arg 0: vectors freed into the storage, which keeps their memory) and through
// resource_pool() (Arg 1: then the storage is trimmed, VectorSlab::trim). The cache is
// refilled, untimed, before each eviction. returned_MiB: resident storage before the
// eviction less after it.
void BM_EmbeddingCacheBrokerEviction(benchmark::State& state) {
  const bool through_resource_pool = state.range(0) != 0;
  constexpr std::uint64_t kBudget = std::uint64_t{256} << 20;
  auto service = make_service(kBudget);
  std::uint64_t next = 0;
  const std::shared_ptr<pagekeeper::ResourcePool> tier =
      through_resource_pool ? service->resource_pool() : service->pool();
  double returned = 0;  // net: a block mapped ahead meanwhile counts against it
  for (auto _ : state) {
    state.PauseTiming();
    fill_to_budget(*service, kBudget, next);
    const double resident = resident_storage_bytes(*service);
    state.ResumeTiming();
    benchmark::DoNotOptimize(tier->evict_at_least(kBudget / 20));
    state.PauseTiming();
    returned += resident - resident_storage_bytes(*service);
    state.ResumeTiming();
  }
  state.counters["returned_MiB"] = returned / static_cast<double>(state.iterations()) / (1 << 20);
}
BENCHMARK(BM_EmbeddingCacheBrokerEviction)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

// A full 256 MiB cache filled in order, then (Arg: that many puts, 0 or 300,000) churned
// with keys drawn from 400,000 (each put evicting the least recently used vector, so freed
// chunks are reused in no order), then one eviction of a fifth of the budget through
// resource_pool(). Reports what it freed and what came back to the kernel: whole blocks
// (unmapped_MiB) and pages inside kept blocks (released_MiB). Each iteration builds its
// cache untimed (about a second).
void BM_EmbeddingCacheBrokerEvictionAfterChurn(benchmark::State& state) {
  const auto churn_puts = static_cast<int>(state.range(0));
  constexpr std::uint64_t kBudget = std::uint64_t{256} << 20;
  const std::vector<float> vector(384, 0.05f);
  double freed = 0;
  double unmapped = 0;
  double released = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto service = make_service(kBudget);
    std::uint64_t next = 0;
    fill_to_budget(*service, kBudget, next);
    std::mt19937_64 rng(static_cast<std::uint64_t>(state.iterations()) + 1);
    for (int i = 0; i < churn_puts; ++i) service->put("churn " + std::to_string(rng() % 400000), "lexical", vector);
    const pagekeeper::VectorSlab::Stats before = *service->storage_stats(384);
    const std::shared_ptr<pagekeeper::ResourcePool> tier = service->resource_pool();
    state.ResumeTiming();
    freed += static_cast<double>(tier->evict_at_least(kBudget / 5));
    state.PauseTiming();
    const pagekeeper::VectorSlab::Stats after = *service->storage_stats(384);
    unmapped += static_cast<double>(before.mapped_bytes) - static_cast<double>(after.mapped_bytes);
    released += static_cast<double>(after.released_bytes) - static_cast<double>(before.released_bytes);
    service.reset();
    state.ResumeTiming();
  }
  const double per = static_cast<double>(state.iterations()) * (1 << 20);
  state.counters["freed_MiB"] = freed / per;
  state.counters["unmapped_MiB"] = unmapped / per;
  state.counters["released_MiB"] = released / per;
}
BENCHMARK(BM_EmbeddingCacheBrokerEvictionAfterChurn)->Arg(0)->Arg(300000)->Iterations(3)->Unit(benchmark::kMillisecond);

}  // namespace
