// EmbeddingService: the process's embedding cache on top of PagedResourcePool::load_many.

#include "pagekeeper/embedding_service.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <unordered_map>
#include <utility>

namespace pagekeeper {
namespace {

struct ContentHashHash {
  std::size_t operator()(const ContentHash& h) const noexcept {
    std::size_t prefix = 0;
    std::memcpy(&prefix, h.data(), sizeof(prefix));
    return prefix;
  }
};

EmbeddingService::Pool::Config pool_config(const EmbeddingServiceConfig& config) {
  EmbeddingService::Pool::Config pc;
  pc.name = config.pool_name;
  pc.max_bytes = config.max_bytes;
  pc.sizer = [](const EmbeddingVector& v) -> std::uint64_t {
    return v.memory_bytes() + sizeof(EmbeddingKey);
  };
  pc.policy = EvictionPolicy<EmbeddingVector>::size_aware_lru();
  pc.low_watermark = config.low_watermark;
  pc.shards = config.shards;
  pc.key_formatter = [](const EmbeddingKey& key) { return key.to_string(); };
  return pc;
}

// Branch-free, eight lanes at a time, so it compiles to SIMD even at -O2: a float is NaN or
// infinite exactly when its exponent bits are all ones.
bool all_finite(std::span<const float> values) {
  constexpr std::uint32_t kExponent = 0x7f800000u;
  std::uint32_t lanes[8] = {};
  std::size_t i = 0;
  for (; i + 8 <= values.size(); i += 8) {
    for (std::size_t k = 0; k < 8; ++k) {
      const auto bits = std::bit_cast<std::uint32_t>(values[i + k]);
      lanes[k] |= static_cast<std::uint32_t>((bits & kExponent) == kExponent);
    }
  }
  std::uint32_t any = 0;
  for (; i < values.size(); ++i) {
    any |= static_cast<std::uint32_t>((std::bit_cast<std::uint32_t>(values[i]) & kExponent) == kExponent);
  }
  for (const std::uint32_t lane : lanes) any |= lane;
  return any == 0;
}

std::mutex g_default_mutex;
std::shared_ptr<EmbeddingService> g_default;  // guarded by g_default_mutex

}  // namespace

EmbeddingService::EmbeddingService(EmbeddingServiceConfig config)
    : models_(config.models ? std::move(config.models) : ModelRegistry::with_builtin_models()),
      pool_(std::make_shared<Pool>(pool_config(config))) {}

std::shared_ptr<EmbeddingService> EmbeddingService::process_default() {
  std::lock_guard lock(g_default_mutex);
  if (!g_default) g_default = std::make_shared<EmbeddingService>();
  return g_default;
}

std::shared_ptr<EmbeddingService> EmbeddingService::init_process_default(
    EmbeddingServiceConfig config) {
  std::lock_guard lock(g_default_mutex);
  if (g_default) {
    throw std::logic_error(
        "EmbeddingService::init_process_default: the process-wide embedding service already "
        "exists (init_process_default must run before the first process_default call)");
  }
  g_default = std::make_shared<EmbeddingService>(std::move(config));
  return g_default;
}

std::uint64_t EmbeddingService::entry_bytes(std::size_t dimensions) {
  return sizeof(EmbeddingVector) + (dimensions == 0 ? 0 : EmbeddingVector::kControlBlockBytes) +
         dimensions * sizeof(float) + sizeof(EmbeddingKey);
}

EmbedResult EmbeddingService::embed(std::string_view text, std::string_view model) {
  std::string canonical = models_->resolve(model);
  // Hit fast path without load_many's bookkeeping. contains() counts nothing, so the pool
  // counts exactly one lookup either way: get()'s hit here, or load_many's below. (If the
  // entry is evicted between the two calls, get() counts a miss and load_many one more.)
  EmbeddingKey key{std::move(canonical), sha256(text)};
  if (pool_->contains(key)) {
    if (std::optional<EmbeddingVector> hit = pool_->get(key)) {
      EmbedAccounting accounting;
      accounting.hits = 1;
      return EmbedResult{std::move(*hit), std::move(key.model), accounting};
    }
  }
  const std::string_view one[1] = {text};
  std::string model_name = key.model;
  std::vector<EmbeddingKey> keys;
  keys.push_back(std::move(key));
  EmbedBatchResult batch = run(std::move(model_name), one, std::move(keys));
  return EmbedResult{std::move(batch.vectors.front()), std::move(batch.model), batch.accounting};
}

EmbedBatchResult EmbeddingService::embed_batch(std::span<const std::string> texts,
                                               std::string_view model) {
  std::string canonical = models_->resolve(model);
  if (texts.empty()) return EmbedBatchResult{{}, std::move(canonical), {}};
  std::vector<std::string_view> views(texts.begin(), texts.end());
  std::vector<EmbeddingKey> keys;
  keys.reserve(views.size());
  for (const std::string_view text : views) keys.push_back(EmbeddingKey{canonical, sha256(text)});
  return run(std::move(canonical), views, std::move(keys));
}

EmbedBatchResult EmbeddingService::run(std::string canonical,
                                       std::span<const std::string_view> texts,
                                       std::vector<EmbeddingKey> keys) {
  EmbedAccounting accounting;
  // Runs outside every pool lock, with exactly the distinct keys nobody has cached or is
  // embedding. Any exception leaves the pool unchanged for these keys.
  auto embed_missing = [&](const std::vector<EmbeddingKey>& missing) {
    std::shared_ptr<Embedder> embedder = models_->embedder(canonical);
    if (embedder->name() != canonical) {
      throw EmbedderError("embedding model '" + canonical + "' is provided by an embedder named '" +
                          embedder->name() + "'");
    }
    const std::size_t dims = embedder->dimensions();
    const std::size_t chunk_size = std::max<std::size_t>(1, embedder->max_batch());
    // Which text each missing key came from (built only on the miss path).
    std::unordered_map<ContentHash, std::size_t, ContentHashHash> text_of;
    text_of.reserve(keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) text_of.emplace(keys[i].content_hash, i);

    std::vector<EmbeddingVector> values;
    values.reserve(missing.size());
    std::vector<std::string> chunk;
    for (std::size_t begin = 0; begin < missing.size(); begin += chunk_size) {
      const std::size_t end = std::min(missing.size(), begin + chunk_size);
      chunk.clear();
      for (std::size_t j = begin; j < end; ++j) {
        chunk.emplace_back(texts[text_of.at(missing[j].content_hash)]);
      }
      std::vector<std::vector<float>> produced;
      try {
        produced = embedder->embed(chunk);
      } catch (const EmbedderError&) {
        throw;
      } catch (const std::exception& e) {
        throw EmbedderError("embedding model '" + canonical + "' failed: " + e.what());
      }
      ++accounting.embedder_calls;
      accounting.embedded += chunk.size();
      if (produced.size() != chunk.size()) {
        throw EmbedderError("embedding model '" + canonical + "' returned " +
                            std::to_string(produced.size()) + " vectors for " +
                            std::to_string(chunk.size()) + " texts");
      }
      for (std::size_t j = 0; j < produced.size(); ++j) {
        if (produced[j].size() != dims) {
          throw EmbedderError("embedding model '" + canonical + "' returned a vector of " +
                              std::to_string(produced[j].size()) + " dimensions, expected " +
                              std::to_string(dims));
        }
        if (!all_finite(produced[j])) {
          throw EmbedderError("embedding model '" + canonical +
                              "' returned a vector with a non-finite value");
        }
        values.emplace_back(std::span<const float>(produced[j]));
      }
    }
    return values;
  };

  LoadManyStats stats;
  std::vector<EmbeddingVector> vectors = pool_->load_many(keys, embed_missing, &stats);
  accounting.hits = stats.hits;
  accounting.joined = stats.joined;
  accounting.misses = stats.loaded + stats.joined;
  return EmbedBatchResult{std::move(vectors), std::move(canonical), accounting};
}

bool EmbeddingService::put(std::string_view text, std::string_view model,
                           std::span<const float> vector) {
  if (vector.empty()) throw std::invalid_argument("EmbeddingService::put: empty vector");
  if (!all_finite(vector)) {
    throw std::invalid_argument("EmbeddingService::put: vector has a non-finite value");
  }
  return pool_->insert(EmbeddingKey{models_->resolve(model), sha256(text)},
                       EmbeddingVector(vector));
}

bool EmbeddingService::contains(std::string_view text, std::string_view model) const {
  return pool_->contains(EmbeddingKey{models_->resolve(model), sha256(text)});
}

std::size_t EmbeddingService::clear() { return pool_->clear(); }

PoolStats EmbeddingService::stats() const { return pool_->stats(); }

}  // namespace pagekeeper
