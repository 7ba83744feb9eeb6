// PooledBaseLoraLoader: how pagekeeperd's adapter pagers load real LoRA weights when the
// [adapters] table names a base GGUF model. Each activation loads the adapter file with
// llama.cpp (LlamaLoraLoader) onto the base model, which comes from the daemon's model pool:
// loaded once (single flight) by the first activation and pinned by this loader from then on,
// since every loaded adapter depends on it. Eviction from a pager drops its LoadedAdapter,
// which frees the adapter (llama_adapter_lora_free) once nothing else holds it.
//
// Thread safety: load() may be called concurrently; mutex_ guards lease_ and is held while
// the base model loads.

#pragma once

#include <filesystem>
#include <memory>

#include "pagekeeper/adapter_loader.hpp"
#include "pagekeeper/detail/mutex.hpp"
#include "llama/llama_model_pool.hpp"

namespace pagekeeper::server {

class PooledBaseLoraLoader final : public AdapterLoader {
 public:
  // Relative adapter paths are resolved against `adapter_dir` (the current folder when empty).
  PooledBaseLoraLoader(std::shared_ptr<LlamaModelPool> pool, std::filesystem::path base_model,
                       std::filesystem::path adapter_dir);
  std::string kind() const override { return "llama-lora"; }
  // Throws AdapterLoadError naming the base model when it cannot be loaded, or the adapter
  // when llama.cpp refuses it.
  std::shared_ptr<const LoadedAdapter> load(const AdapterInfo& info) override;

 private:
  std::shared_ptr<LlamaModel> base();

  const std::shared_ptr<LlamaModelPool> pool_;
  const std::filesystem::path base_model_;
  const std::filesystem::path adapter_dir_;
  Mutex mutex_;
  std::shared_ptr<LlamaModelLease> lease_ PAGEKEEPER_GUARDED_BY(mutex_);
};

}  // namespace pagekeeper::server
