// PooledBaseLoraLoader (see pooled_lora_loader.hpp).

#include "server/pooled_lora_loader.hpp"

#include "pagekeeper/errors.hpp"

namespace pagekeeper::server {

PooledBaseLoraLoader::PooledBaseLoraLoader(std::shared_ptr<LlamaModelPool> pool, std::filesystem::path base_model,
                                           std::filesystem::path adapter_dir)
    : pool_(std::move(pool)), base_model_(std::move(base_model)), adapter_dir_(std::move(adapter_dir)) {}

std::shared_ptr<LlamaModel> PooledBaseLoraLoader::base() {
  MutexLock lock(mutex_);
  if (!lease_) {
    try {
      lease_ = pool_->acquire(base_model_);
    } catch (const std::exception& e) {  // LlamaError, TierUnavailable (no llama.cpp in this build)
      throw AdapterLoadError("adapters.base_model '" + base_model_.string() + "' cannot be loaded: " + e.what());
    }
  }
  return lease_->model();
}

std::shared_ptr<const LoadedAdapter> PooledBaseLoraLoader::load(const AdapterInfo& info) {
  try {
    return LlamaLoraLoader(base(), adapter_dir_).load(info);
  } catch (const TierUnavailable& e) {
    throw AdapterLoadError("adapter '" + info.name + "': " + e.what());
  }
}

}  // namespace pagekeeper::server
