#include "pagekeeper/adapter_loader.hpp"

#include <system_error>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "llama/llama_runtime.hpp"

namespace pagekeeper {
namespace {

constexpr double kBytesPerMiB = 1024.0 * 1024.0;

std::filesystem::path resolve(const std::filesystem::path& base_dir, const AdapterInfo& info) {
  if (info.path.empty()) {
    throw AdapterLoadError("adapter '" + info.name + "': no file path given");
  }
  const std::filesystem::path p(info.path);
  return p.is_absolute() || base_dir.empty() ? p : base_dir / p;
}

template <class T>
T field_or(const nlohmann::json& j, const char* key, T fallback, const std::string& adapter) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    throw AdapterInfoError("adapter '" + adapter + "': field '" + key + "' has the wrong type");
  }
}

}  // namespace

void validate_adapter_info(const AdapterInfo& a) {
  if (a.name.empty()) throw AdapterInfoError("adapter name must not be empty");
  if (!(a.priority >= 0.0 && a.priority <= 1.0)) {
    throw AdapterInfoError("adapter '" + a.name + "': priority must be in [0, 1], got " +
                           std::to_string(a.priority));
  }
}

void to_json(nlohmann::json& j, const AdapterInfo& a) {
  j = nlohmann::json{{"name", a.name},
                     {"domain", a.domain},
                     {"size_mb", static_cast<double>(a.size_bytes) / kBytesPerMiB},
                     {"size_bytes", a.size_bytes},
                     {"priority", a.priority},
                     {"is_loaded", a.is_loaded},
                     {"last_used_ms", a.last_used_ms}};
  if (!a.path.empty()) j["path"] = a.path;
  if (a.trained_model_name) j["trained_model_name"] = *a.trained_model_name;
}

void from_json(const nlohmann::json& j, AdapterInfo& a) {
  if (!j.is_object()) throw AdapterInfoError("adapter must be a JSON object");
  const auto name = j.find("name");
  if (name == j.end() || !name->is_string()) {
    throw AdapterInfoError("adapter: field 'name' is missing or not a string");
  }
  AdapterInfo out;
  out.name = name->get<std::string>();
  out.domain = field_or<std::string>(j, "domain", "", out.name);
  if (j.contains("size_bytes") && !j["size_bytes"].is_null()) {
    if (!j["size_bytes"].is_number_unsigned() &&
        !(j["size_bytes"].is_number_integer() && j["size_bytes"].get<std::int64_t>() >= 0)) {
      throw AdapterInfoError("adapter '" + out.name +
                             "': field 'size_bytes' must be a non-negative integer");
    }
    out.size_bytes = j["size_bytes"].get<std::uint64_t>();
  } else if (j.contains("size_mb") && !j["size_mb"].is_null()) {
    const auto mb = field_or<double>(j, "size_mb", 0.0, out.name);
    if (!std::isfinite(mb) || mb < 0.0 || mb * kBytesPerMiB >= 1.8e19) {
      throw AdapterInfoError("adapter '" + out.name +
                             "': field 'size_mb' must be a finite non-negative number");
    }
    out.size_bytes = static_cast<std::uint64_t>(std::llround(mb * kBytesPerMiB));
  } else {
    throw AdapterInfoError("adapter '" + out.name + "': one of 'size_bytes' or 'size_mb' is required");
  }
  out.priority = field_or<double>(j, "priority", 0.5, out.name);
  out.is_loaded = field_or<bool>(j, "is_loaded", false, out.name);
  out.last_used_ms = field_or<std::int64_t>(j, "last_used_ms", 0, out.name);
  out.path = field_or<std::string>(j, "path", "", out.name);
  if (j.contains("trained_model_name") && !j["trained_model_name"].is_null()) {
    out.trained_model_name = field_or<std::string>(j, "trained_model_name", "", out.name);
  }
  validate_adapter_info(out);
  a = std::move(out);
}

// ---- FileAdapterLoader ----

FileAdapterLoader::FileAdapterLoader(std::filesystem::path base_dir)
    : base_dir_(std::move(base_dir)) {}

std::shared_ptr<const LoadedAdapter> FileAdapterLoader::load(const AdapterInfo& info) {
  const std::filesystem::path path = resolve(base_dir_, info);
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) {
    throw AdapterLoadError("adapter '" + info.name + "': file '" + path.string() +
                           "' does not exist");
  }
  if (!std::filesystem::is_regular_file(status)) {
    throw AdapterLoadError("adapter '" + info.name + "': '" + path.string() +
                           "' is not a regular file");
  }
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) {
    throw AdapterLoadError("adapter '" + info.name + "': cannot open '" + path.string() +
                           "': " + std::generic_category().message(errno));
  }
  const std::streamoff size = in.tellg();
  if (size < 0) {
    throw AdapterLoadError("adapter '" + info.name + "': cannot size '" + path.string() + "'");
  }
  std::vector<std::byte> bytes(static_cast<std::size_t>(size));
  in.seekg(0);
  if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size)) {
    throw AdapterLoadError("adapter '" + info.name + "': read error on '" + path.string() + "'");
  }
  return std::make_shared<FileAdapterWeights>(path, std::move(bytes));
}

// ---- LlamaLoraLoader ----

LlamaLoraWeights::LlamaLoraWeights(std::shared_ptr<LlamaLoraAdapter> adapter)
    : adapter_(std::move(adapter)) {}

std::uint64_t LlamaLoraWeights::size_bytes() const noexcept { return adapter_->size_bytes(); }

LlamaLoraLoader::LlamaLoraLoader(std::shared_ptr<LlamaModel> base, std::filesystem::path base_dir)
    : base_(std::move(base)), base_dir_(std::move(base_dir)) {
  if (base_ == nullptr) throw std::invalid_argument("LlamaLoraLoader: base model is required");
}

std::shared_ptr<const LoadedAdapter> LlamaLoraLoader::load(const AdapterInfo& info) {
  const std::filesystem::path path = resolve(base_dir_, info);
  try {
    return std::make_shared<LlamaLoraWeights>(LlamaLoraAdapter::load(base_, path));
  } catch (const LlamaError& e) {
    throw AdapterLoadError("adapter '" + info.name + "': " + e.what());
  }
}

}  // namespace pagekeeper
