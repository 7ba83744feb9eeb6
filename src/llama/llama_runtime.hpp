// llama/llama_runtime.hpp (internal to the llama component)
//
// The llama.cpp runtime as pagekeeper uses it: process-wide backend initialization, GGUF file
// validation, a loaded model as a value object (LlamaModel, what the model pool holds) and a
// loaded LoRA adapter bound to its model (LlamaLoraAdapter, what the adapter pager holds).
//
// llama.cpp reports many problems with GGML_ASSERT, which aborts the process. Everything here
// checks files before llama.cpp reads them (existence, GGUF magic, a header that parses, tensor
// data within the file, a vocabulary without duplicates) so that a missing, truncated or
// corrupt file is a typed error and the process lives.
//
// Availability: when the build has no llama.cpp (see cmake/FindLlama.cmake and
// scripts/fetch-llama.sh), llama_backend_available() is false and every loading function
// throws TierUnavailable{"llama.cpp", "llama.cpp backend not available in this build ..."}.
//
// Thread safety: all free functions may be called from any thread. LlamaModel and
// LlamaLoraAdapter are immutable after construction and may be shared between threads; the
// llama_model they own may serve any number of llama.cpp contexts at once (one context per
// thread: contexts themselves are not thread-safe). Loading an adapter onto a model is
// serialized per model internally.

#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

#include "pagekeeper/detail/mutex.hpp"
#include "pagekeeper/errors.hpp"

struct llama_model;
struct llama_adapter_lora;

namespace pagekeeper {

// A llama.cpp file or runtime problem other than "not built in": the message names the file
// and the cause (missing, truncated, not GGUF, corrupt, rejected by llama.cpp, ...).
class LlamaError : public Error {
 public:
  using Error::Error;
};

// The tier name used in TierUnavailable errors of this backend.
inline constexpr const char* kLlamaTier = "llama.cpp";

// True when this build links llama.cpp (PAGEKEEPER_HAVE_LLAMA).
bool llama_backend_available() noexcept;

// Initializes llama.cpp once per process: routes its log to spdlog (warnings and errors only),
// loads the ggml compute backends (the CPU variants of the prebuilt libraries are separate
// shared objects chosen at run time) from the folder of the loaded libggml, or from
// $PAGEKEEPER_LLAMA_BACKEND_DIR when set, and calls llama_backend_init(). Idempotent and
// thread-safe; later calls return at once. Throws TierUnavailable when the build has no
// llama.cpp or when no compute backend could be loaded.
void ensure_llama_backend();

// What validate_gguf_file learned about a file without loading its tensors.
struct GgufFileInfo {
  std::uint64_t file_bytes = 0;
  std::uint64_t tensor_bytes = 0;  // sum of all tensor data sizes
  std::int64_t tensor_count = 0;
  std::string architecture;        // general.architecture ("" when absent)
  std::string general_type;        // general.type ("model", "adapter", or "" when absent)
};

// Checks that `path` names a regular file holding a well-formed GGUF: the magic, a header that
// ggml's GGUF reader accepts (read with no_alloc, so no tensor data is loaded), every tensor's
// data inside the file, and, when the file carries a vocabulary, no duplicate tokens (llama.cpp
// aborts on those). Throws LlamaError naming the file and the problem; TierUnavailable when
// the build has no llama.cpp.
GgufFileInfo validate_gguf_file(const std::filesystem::path& path);

// A model loaded into llama.cpp (weights in host memory; no GPU offload). Owns the
// llama_model and frees it on destruction. Create with LlamaModel::load.
class LlamaModel {
 public:
  // Validates the file (validate_gguf_file), then loads it with llama_model_load_from_file.
  // Throws LlamaError when the file is refused or llama.cpp cannot load it, TierUnavailable
  // when the build has no llama.cpp.
  static std::shared_ptr<LlamaModel> load(const std::filesystem::path& path);

  ~LlamaModel();
  LlamaModel(const LlamaModel&) = delete;
  LlamaModel& operator=(const LlamaModel&) = delete;

  // The llama.cpp handle; valid for the lifetime of this object.
  llama_model* get() const noexcept { return model_; }
  const std::filesystem::path& path() const noexcept { return path_; }
  // Bytes of the model's tensors (llama_model_size): what a model pool charges for it.
  std::uint64_t size_bytes() const noexcept { return size_bytes_; }
  const std::string& architecture() const noexcept { return architecture_; }
  // Output vector length (llama_model_n_embd_out) and trained context in tokens.
  std::int32_t embedding_length() const noexcept { return n_embd_; }
  std::int32_t trained_context() const noexcept { return n_ctx_train_; }
  // True when the file declares non-causal attention (<arch>.attention.causal = false, as
  // bert-family encoders do); such models are run with llama_encode.
  bool bidirectional() const noexcept { return bidirectional_; }
  // The value of one GGUF metadata key as a string, or "" when absent.
  std::string metadata(const std::string& key) const;

 private:
  friend class LlamaLoraAdapter;
  LlamaModel(llama_model* model, std::filesystem::path path);

  llama_model* model_;
  std::filesystem::path path_;
  std::uint64_t size_bytes_ = 0;
  std::string architecture_;
  std::int32_t n_embd_ = 0;
  std::int32_t n_ctx_train_ = 0;
  bool bidirectional_ = false;
  // llama_adapter_lora_init/free change the model's adapter registry (inside llama.cpp, so
  // nothing here is GUARDED_BY it): one at a time.
  Mutex adapter_mutex_;
};

// A GGUF LoRA adapter loaded against one model (llama_adapter_lora_init). Keeps its model
// alive and frees the adapter (llama_adapter_lora_free) before the model on destruction.
// Applying it to a context is the context owner's business (e.g. LlamaEmbedder::set_adapters).
class LlamaLoraAdapter {
 public:
  // Validates the file (a GGUF whose general.type is "adapter" and whose architecture matches
  // the model's), then loads it. Throws LlamaError when refused, TierUnavailable when the
  // build has no llama.cpp.
  static std::shared_ptr<LlamaLoraAdapter> load(std::shared_ptr<LlamaModel> model,
                                                const std::filesystem::path& path);
  ~LlamaLoraAdapter();
  LlamaLoraAdapter(const LlamaLoraAdapter&) = delete;
  LlamaLoraAdapter& operator=(const LlamaLoraAdapter&) = delete;

  llama_adapter_lora* get() const noexcept { return adapter_; }
  const std::shared_ptr<LlamaModel>& model() const noexcept { return model_; }
  const std::filesystem::path& path() const noexcept { return path_; }
  // Bytes of the adapter's tensors as stored in the file (what it occupies once loaded).
  std::uint64_t size_bytes() const noexcept { return size_bytes_; }

 private:
  LlamaLoraAdapter(std::shared_ptr<LlamaModel> model, llama_adapter_lora* adapter,
                   std::filesystem::path path, std::uint64_t size_bytes);

  std::shared_ptr<LlamaModel> model_;
  llama_adapter_lora* adapter_;
  std::filesystem::path path_;
  std::uint64_t size_bytes_;
};

}  // namespace pagekeeper
