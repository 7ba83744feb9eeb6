// pagekeeper/adapter_loader.hpp
//
// What the adapter pager knows about an adapter (AdapterInfo) and how it turns one into
// resident weights (AdapterLoader). A loader returns a LoadedAdapter that owns the weights:
// destroying the last reference frees them, which is how eviction from the pager's pool gives
// memory back.
//
// Two loaders:
//   FileAdapterLoader  reads the adapter file into host memory, so the memory budget accounts
//                      the real bytes; nothing interprets the contents.
//   LlamaLoraLoader    loads a GGUF LoRA adapter into llama.cpp against one loaded base model
//                      (llama_adapter_lora_init / llama_adapter_lora_free, through
//                      LlamaLoraAdapter). In builds without llama.cpp it throws
//                      TierUnavailable{"llama.cpp", ...} on load.
//
// Thread safety: load() may be called from any thread concurrently; a LoadedAdapter is
// immutable and may be shared between threads.

#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "pagekeeper/errors.hpp"

namespace pagekeeper {

class LlamaModel;
class LlamaLoraAdapter;

// One adapter as the pager (and the original's GenomeAdapterInfo) describes it.
struct AdapterInfo {
  std::string name;    // unique within a persona; required
  std::string domain;  // the skill area it covers ("code", "legal", ...)
  // Bytes it occupies once loaded, as declared; the loaded weights' real size replaces it
  // when a loader reports a different one.
  std::uint64_t size_bytes = 0;
  // In [0, 1]; above 0.9 is critical (never evicted). Default 0.5.
  double priority = 0.5;
  // On the pager's clock (see AdapterPagerConfig::clock).
  std::int64_t last_used_ms = 0;
  // Reported: whether it is resident. As sync_state() input: whether it should be.
  bool is_loaded = false;
  // Where a loader finds the weights, absolute or relative to the loader's base folder.
  std::string path;
  std::optional<std::string> trained_model_name;
};

// Above this an adapter is critical: never evicted (the original's rule).
inline constexpr double kCriticalAdapterPriority = 0.9;

// snake_case JSON, as the original's wire format: {name, domain, size_mb, size_bytes,
// priority, is_loaded, last_used_ms, path?, trained_model_name?}. from_json needs `name` and
// one of size_bytes / size_mb; the rest default. It throws AdapterInfoError naming the field
// when a field is missing or mistyped, or a value is out of range (priority outside [0, 1],
// a negative or non-finite size).
void to_json(nlohmann::json& j, const AdapterInfo& a);
void from_json(const nlohmann::json& j, AdapterInfo& a);

// An AdapterInfo that cannot be used (empty name, priority out of range, bad JSON field).
class AdapterInfoError : public InvalidArgument {
 public:
  using InvalidArgument::InvalidArgument;
};

// Checks the fields of `a` (name non-empty, priority a number in [0, 1]); throws
// AdapterInfoError naming the adapter and the field otherwise.
void validate_adapter_info(const AdapterInfo& a);

// A loader could not produce the adapter: the message names the adapter, the file and why.
class AdapterLoadError : public Error {
 public:
  using Error::Error;
};

// Resident weights of one adapter. Destroying it frees them.
class LoadedAdapter {
 public:
  virtual ~LoadedAdapter() = default;
  // Bytes the weights occupy in memory.
  virtual std::uint64_t size_bytes() const noexcept = 0;
};

class AdapterLoader {
 public:
  virtual ~AdapterLoader() = default;
  // A short name of the backend ("file", "llama-lora").
  virtual std::string kind() const = 0;
  // Loads `info`'s weights. Throws AdapterLoadError when they cannot be loaded (a missing or
  // unreadable file, one the backend refuses); never returns null.
  virtual std::shared_ptr<const LoadedAdapter> load(const AdapterInfo& info) = 0;
};

// ---- FileAdapterLoader ----

// The whole adapter file, in memory.
class FileAdapterWeights final : public LoadedAdapter {
 public:
  FileAdapterWeights(std::filesystem::path path, std::vector<std::byte> bytes)
      : path_(std::move(path)), bytes_(std::move(bytes)) {}
  std::uint64_t size_bytes() const noexcept override { return bytes_.size(); }
  const std::filesystem::path& path() const noexcept { return path_; }
  const std::vector<std::byte>& bytes() const noexcept { return bytes_; }

 private:
  std::filesystem::path path_;
  std::vector<std::byte> bytes_;
};

class FileAdapterLoader final : public AdapterLoader {
 public:
  // Relative AdapterInfo::path values are resolved against `base_dir` (the current folder
  // when empty).
  explicit FileAdapterLoader(std::filesystem::path base_dir = {});
  std::string kind() const override { return "file"; }
  // Reads the file completely. Throws AdapterLoadError for an empty path, a missing file, a
  // path that is not a regular file, or a read error.
  std::shared_ptr<const LoadedAdapter> load(const AdapterInfo& info) override;

 private:
  std::filesystem::path base_dir_;
};

// ---- LlamaLoraLoader ----

// A LoRA adapter loaded into llama.cpp against the loader's base model. Apply it to a context
// through adapter() (e.g. LlamaEmbedder::set_adapters); whoever applies it keeps a reference
// for as long as it is applied, so eviction from the pager cannot free it under a context.
class LlamaLoraWeights final : public LoadedAdapter {
 public:
  explicit LlamaLoraWeights(std::shared_ptr<LlamaLoraAdapter> adapter);
  std::uint64_t size_bytes() const noexcept override;
  const std::shared_ptr<LlamaLoraAdapter>& adapter() const noexcept { return adapter_; }

 private:
  std::shared_ptr<LlamaLoraAdapter> adapter_;
};

class LlamaLoraLoader final : public AdapterLoader {
 public:
  // Requires: base is non-null (std::invalid_argument otherwise).
  explicit LlamaLoraLoader(std::shared_ptr<LlamaModel> base, std::filesystem::path base_dir = {});
  std::string kind() const override { return "llama-lora"; }
  // Loads the GGUF adapter at info.path onto the base model. Throws AdapterLoadError when
  // the file is missing or refused (wrong architecture, not an adapter, corrupt), and
  // TierUnavailable when the build has no llama.cpp.
  std::shared_ptr<const LoadedAdapter> load(const AdapterInfo& info) override;
  const std::shared_ptr<LlamaModel>& base() const noexcept { return base_; }

 private:
  std::shared_ptr<LlamaModel> base_;
  std::filesystem::path base_dir_;
};

}  // namespace pagekeeper
