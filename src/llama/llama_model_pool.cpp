// LlamaModelPool: see src/llama/llama_model_pool.hpp for the contract.

#include "llama/llama_model_pool.hpp"

#include <system_error>
#include <utility>

namespace pagekeeper {

namespace {

LlamaModelCache::Config cache_config(LlamaModelPool::Config config) {
  LlamaModelCache::Config c;
  c.name = std::move(config.name);
  c.max_bytes = config.max_bytes;
  c.sizer = [](const std::shared_ptr<LlamaModel>& model) -> std::uint64_t {
    return model ? model->size_bytes() : 0;
  };
  c.policy = eviction_policy_for<std::shared_ptr<LlamaModel>>(config.policy);
  c.curve_sampling_rate = config.curve_sampling_rate;
  // A few large models: one shard, so the curve's distances are the models' bytes (a sharded
  // pool scales each shard's distances by the shard count, right only for many keys).
  c.shards = 1;
  return c;
}

}  // namespace

LlamaModelPool::LlamaModelPool(Config config)
    : cache_(std::make_shared<LlamaModelCache>(cache_config(std::move(config)))) {}

std::string LlamaModelPool::key_for(const std::filesystem::path& path) {
  std::error_code ec;
  const auto canonical = std::filesystem::canonical(path, ec);
  return ec ? path.lexically_normal().string() : canonical.string();
}

std::shared_ptr<LlamaModelLease> LlamaModelPool::acquire(const std::filesystem::path& path) {
  const std::string key = key_for(path);
  std::shared_ptr<LlamaModel> model;
  // load_or_share and pin are two steps: the entry can be evicted in between (or by the
  // insert's own budget enforcement when everything else is pinned). Try twice, then lease
  // the loaded model unpinned rather than loop.
  for (int attempt = 0; attempt < 2; ++attempt) {
    model = cache_->load_or_share(key, [&] { return LlamaModel::load(path); });
    auto pin = cache_->pin(key);
    if (pin) {
      // The resident value (another caller may have reloaded it since our load_or_share).
      std::shared_ptr<LlamaModel> resident = pin.value();
      return std::make_shared<LlamaModelLease>(std::move(pin), std::move(resident));
    }
  }
  return std::make_shared<LlamaModelLease>(LlamaModelCache::PinHandle(), std::move(model));
}

bool LlamaModelPool::resident(const std::filesystem::path& path) const { return cache_->contains(key_for(path)); }

bool LlamaModelPool::unload(const std::filesystem::path& path) { return cache_->erase(key_for(path)); }

}  // namespace pagekeeper
