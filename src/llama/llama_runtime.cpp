// llama.cpp runtime: backend initialization, GGUF validation, LlamaModel, LlamaLoraAdapter.
// See src/llama/llama_runtime.hpp for the contract.

#include "llama/llama_runtime.hpp"

#include <array>
#include <cstdio>
#include <fstream>
#include <string_view>
#include <system_error>
#include <unordered_set>
#include <utility>

#include "pagekeeper/errors.hpp"

#ifdef PAGEKEEPER_HAVE_LLAMA
#include <dlfcn.h>
#include <ggml-backend.h>
#include <ggml.h>
#include <gguf.h>
#include <llama.h>
#include <spdlog/spdlog.h>
#endif

namespace pagekeeper {

#ifdef PAGEKEEPER_HAVE_LLAMA

namespace {

std::string quoted(const std::filesystem::path& path) { return "'" + path.string() + "'"; }

// llama.cpp and ggml log through one callback. Keep warnings and errors (they explain a
// refused file), drop the per-load chatter. Messages may arrive in pieces (GGML_LOG_LEVEL_CONT);
// continuation pieces of a kept message are dropped too, which only shortens a multi-part line.
void forward_log(ggml_log_level level, const char* text, void*) {
  if (level != GGML_LOG_LEVEL_WARN && level != GGML_LOG_LEVEL_ERROR) return;
  std::string_view message(text == nullptr ? "" : text);
  while (!message.empty() && (message.back() == '\n' || message.back() == '\r')) {
    message.remove_suffix(1);
  }
  if (message.empty()) return;
  if (level == GGML_LOG_LEVEL_ERROR) {
    spdlog::error("llama.cpp: {}", message);
  } else {
    spdlog::warn("llama.cpp: {}", message);
  }
}

// Folder of the loaded libggml: the prebuilt packages keep the libggml-cpu-* variants beside it.
std::filesystem::path loaded_ggml_dir() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&ggml_backend_load_all_from_path), &info) == 0 ||
      info.dli_fname == nullptr) {
    return {};
  }
  std::error_code ec;
  auto file = std::filesystem::canonical(info.dli_fname, ec);
  return ec ? std::filesystem::path(info.dli_fname).parent_path() : file.parent_path();
}

struct BackendState {
  bool ready = false;
  std::string failure;
};

const BackendState& backend_state() {
  static const BackendState state = [] {
    BackendState s;
    llama_log_set(forward_log, nullptr);
    std::filesystem::path dir;
    // Read once, inside the static initializer (which the runtime serializes).
    const char* env = std::getenv("PAGEKEEPER_LLAMA_BACKEND_DIR");  // NOLINT(concurrency-mt-unsafe)
    if (env != nullptr && *env != '\0') {
      dir = env;
    } else {
      dir = loaded_ggml_dir();
    }
    std::error_code ec;
    if (!dir.empty() && std::filesystem::is_directory(dir, ec)) {
      ggml_backend_load_all_from_path(dir.c_str());
    }
    llama_backend_init();
    if (ggml_backend_dev_count() == 0) {
      s.failure = "no ggml compute backend could be loaded from " + quoted(dir) +
                  " (set PAGEKEEPER_LLAMA_BACKEND_DIR to the folder of libggml-cpu-*.so)";
    } else {
      s.ready = true;
    }
    return s;
  }();
  return state;
}

struct GgufCloser {
  void operator()(gguf_context* ctx) const { gguf_free(ctx); }
};

std::string gguf_string(const gguf_context* ctx, const char* key) {
  const std::int64_t id = gguf_find_key(ctx, key);
  if (id < 0 || gguf_get_kv_type(ctx, id) != GGUF_TYPE_STRING) return {};
  return gguf_get_val_str(ctx, id);
}

}  // namespace

bool llama_backend_available() noexcept { return true; }

void ensure_llama_backend() {
  const BackendState& state = backend_state();
  if (!state.ready) throw TierUnavailable(kLlamaTier, state.failure);
}

GgufFileInfo validate_gguf_file(const std::filesystem::path& path) {
  ensure_llama_backend();
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) {
    throw LlamaError("GGUF file " + quoted(path) + " does not exist");
  }
  if (!std::filesystem::is_regular_file(status)) {
    throw LlamaError("GGUF file " + quoted(path) + " is not a regular file");
  }
  GgufFileInfo info;
  info.file_bytes = std::filesystem::file_size(path, ec);
  if (ec) throw LlamaError("cannot stat GGUF file " + quoted(path) + ": " + ec.message());

  // Smallest valid GGUF: magic, version, tensor count, key/value count (4 + 4 + 8 + 8 bytes).
  constexpr std::uint64_t kMinHeader = 24;
  if (info.file_bytes < kMinHeader) {
    throw LlamaError("GGUF file " + quoted(path) + " is truncated (" +
                     std::to_string(info.file_bytes) + " bytes, smaller than a GGUF header)");
  }
  {
    std::ifstream in(path, std::ios::binary);
    std::array<char, 4> magic{};
    if (!in.read(magic.data(), magic.size())) {
      throw LlamaError("cannot read GGUF file " + quoted(path));
    }
    if (std::string_view(magic.data(), magic.size()) != "GGUF") {
      throw LlamaError("file " + quoted(path) + " is not a GGUF file (bad magic)");
    }
  }

  gguf_init_params params{};
  params.no_alloc = true;
  params.ctx = nullptr;
  std::unique_ptr<gguf_context, GgufCloser> ctx(gguf_init_from_file(path.c_str(), params));
  if (!ctx) {
    throw LlamaError("GGUF file " + quoted(path) +
                     " is corrupt or truncated: its header could not be parsed");
  }
  const gguf_context* g = ctx.get();
  info.tensor_count = gguf_get_n_tensors(g);
  std::uint64_t data_end = gguf_get_data_offset(g);
  for (std::int64_t i = 0; i < info.tensor_count; ++i) {
    const std::uint64_t size = gguf_get_tensor_size(g, i);
    const std::uint64_t end = gguf_get_data_offset(g) + gguf_get_tensor_offset(g, i) + size;
    info.tensor_bytes += size;
    if (end > data_end) data_end = end;
  }
  if (info.tensor_count > 0 && data_end > info.file_bytes) {
    throw LlamaError("GGUF file " + quoted(path) + " is truncated: its tensors need " +
                     std::to_string(data_end) + " bytes, the file has " +
                     std::to_string(info.file_bytes));
  }
  info.architecture = gguf_string(g, "general.architecture");
  info.general_type = gguf_string(g, "general.type");

  // llama.cpp aborts (GGML_ASSERT) on a vocabulary with a repeated token: refuse it here.
  const std::int64_t tokens = gguf_find_key(g, "tokenizer.ggml.tokens");
  if (tokens >= 0) {
    if (gguf_get_kv_type(g, tokens) != GGUF_TYPE_ARRAY ||
        gguf_get_arr_type(g, tokens) != GGUF_TYPE_STRING) {
      throw LlamaError("GGUF file " + quoted(path) + " has a malformed tokenizer.ggml.tokens");
    }
    const std::size_t n = gguf_get_arr_n(g, tokens);
    std::unordered_set<std::string_view> seen;
    seen.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      if (!seen.insert(gguf_get_arr_str(g, tokens, i)).second) {
        throw LlamaError("GGUF file " + quoted(path) + " has a duplicate vocabulary token '" +
                         std::string(gguf_get_arr_str(g, tokens, i)) + "' (id " +
                         std::to_string(i) + ")");
      }
    }
  }
  return info;
}

LlamaModel::LlamaModel(llama_model* model, std::filesystem::path path)
    : model_(model), path_(std::move(path)) {
  size_bytes_ = llama_model_size(model_);
  n_embd_ = llama_model_n_embd_out(model_);
  n_ctx_train_ = llama_model_n_ctx_train(model_);
  architecture_ = metadata("general.architecture");
  bidirectional_ = metadata(architecture_ + ".attention.causal") == "false";
}

LlamaModel::~LlamaModel() { llama_model_free(model_); }

std::shared_ptr<LlamaModel> LlamaModel::load(const std::filesystem::path& path) {
  const GgufFileInfo info = validate_gguf_file(path);
  if (info.general_type == "adapter") {
    throw LlamaError("GGUF file " + quoted(path) + " is a LoRA adapter, not a model");
  }
  if (info.architecture.empty()) {
    throw LlamaError("GGUF file " + quoted(path) + " has no general.architecture");
  }
  llama_model_params params = llama_model_default_params();
  params.n_gpu_layers = 0;
  llama_model* model = llama_model_load_from_file(path.c_str(), params);
  if (model == nullptr) {
    throw LlamaError("llama.cpp could not load model " + quoted(path) + " (architecture '" +
                     info.architecture + "'; see the log for its reason)");
  }
  return std::shared_ptr<LlamaModel>(new LlamaModel(model, path));
}

std::string LlamaModel::metadata(const std::string& key) const {
  std::array<char, 256> small{};
  const std::int32_t n = llama_model_meta_val_str(model_, key.c_str(), small.data(), small.size());
  if (n < 0) return {};
  if (static_cast<std::size_t>(n) < small.size()) return std::string(small.data(), n);
  std::string big(static_cast<std::size_t>(n) + 1, '\0');
  llama_model_meta_val_str(model_, key.c_str(), big.data(), big.size());
  big.resize(static_cast<std::size_t>(n));
  return big;
}

LlamaLoraAdapter::LlamaLoraAdapter(std::shared_ptr<LlamaModel> model, llama_adapter_lora* adapter,
                                   std::filesystem::path path, std::uint64_t size_bytes)
    : model_(std::move(model)), adapter_(adapter), path_(std::move(path)), size_bytes_(size_bytes) {}

LlamaLoraAdapter::~LlamaLoraAdapter() {
  MutexLock lock(model_->adapter_mutex_);
  llama_adapter_lora_free(adapter_);
}

std::shared_ptr<LlamaLoraAdapter> LlamaLoraAdapter::load(std::shared_ptr<LlamaModel> model,
                                                         const std::filesystem::path& path) {
  if (!model) throw LlamaError("LoRA adapter " + quoted(path) + " needs a loaded base model");
  const GgufFileInfo info = validate_gguf_file(path);
  if (info.general_type != "adapter") {
    throw LlamaError("GGUF file " + quoted(path) + " is not an adapter (general.type is '" +
                     info.general_type + "')");
  }
  if (info.architecture != model->architecture()) {
    throw LlamaError("LoRA adapter " + quoted(path) + " is for architecture '" +
                     info.architecture + "', the base model " + quoted(model->path()) +
                     " is '" + model->architecture() + "'");
  }
  llama_adapter_lora* adapter = nullptr;
  {
    MutexLock lock(model->adapter_mutex_);
    adapter = llama_adapter_lora_init(model->get(), path.c_str());
  }
  if (adapter == nullptr) {
    throw LlamaError("llama.cpp could not load LoRA adapter " + quoted(path) + " onto model " +
                     quoted(model->path()) + " (see the log for its reason)");
  }
  return std::shared_ptr<LlamaLoraAdapter>(
      new LlamaLoraAdapter(std::move(model), adapter, path, info.tensor_bytes));
}

#else  // !PAGEKEEPER_HAVE_LLAMA

namespace {
[[noreturn]] void throw_unavailable() {
  throw TierUnavailable(kLlamaTier,
                        "llama.cpp backend not available in this build (run "
                        "scripts/fetch-llama.sh or set LLAMA_ROOT, then reconfigure)");
}
}  // namespace

bool llama_backend_available() noexcept { return false; }

void ensure_llama_backend() { throw_unavailable(); }

GgufFileInfo validate_gguf_file(const std::filesystem::path&) { throw_unavailable(); }

LlamaModel::LlamaModel(llama_model* model, std::filesystem::path path)
    : model_(model), path_(std::move(path)) {}

LlamaModel::~LlamaModel() = default;

std::shared_ptr<LlamaModel> LlamaModel::load(const std::filesystem::path&) { throw_unavailable(); }

std::string LlamaModel::metadata(const std::string&) const { return {}; }

LlamaLoraAdapter::LlamaLoraAdapter(std::shared_ptr<LlamaModel> model, llama_adapter_lora* adapter,
                                   std::filesystem::path path, std::uint64_t size_bytes)
    : model_(std::move(model)), adapter_(adapter), path_(std::move(path)), size_bytes_(size_bytes) {}

LlamaLoraAdapter::~LlamaLoraAdapter() = default;

std::shared_ptr<LlamaLoraAdapter> LlamaLoraAdapter::load(std::shared_ptr<LlamaModel>,  // NOLINT(performance-unnecessary-value-param): the llama build takes ownership
                                                         const std::filesystem::path&) {
  throw_unavailable();
}

#endif  // PAGEKEEPER_HAVE_LLAMA

}  // namespace pagekeeper
