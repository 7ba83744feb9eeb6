// ModelRegistry: canonical names, aliases and lazily built embedders.

#include "pagekeeper/model_registry.hpp"

#include <algorithm>
#include <cstdlib>
#include <atomic>
#include <stdexcept>
#include <utility>

#include "pagekeeper/lexical_embedder.hpp"
#include "pagekeeper/openai_embedder.hpp"

namespace pagekeeper {
namespace {

constexpr std::string_view kDefaultAlias = "default";

std::string lowercase(std::string_view name) {
  std::string out(name);
  for (char& ch : out) {
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
  }
  return out;
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

std::atomic<std::uint64_t> g_next_registry_id{1};

// The last name each thread resolved, and against which registry state.
struct ResolveMemo {
  std::uint64_t registry_id = 0;
  std::uint64_t generation = 0;
  std::string name;
  std::string canonical;
};
thread_local ResolveMemo t_resolve_memo;

}  // namespace

UnknownModelError::UnknownModelError(std::string requested_name, std::vector<std::string> known_models)
    : EmbedderInputError("Unknown embedding model: '" + requested_name + "'. Known models: " +
                         (known_models.empty() ? std::string("(none)") : join(known_models)) +
                         " (or 'default')"),
      requested(std::move(requested_name)),
      known(std::move(known_models)) {}

ModelRegistry::ModelRegistry(std::string default_model)
    : id_(g_next_registry_id.fetch_add(1, std::memory_order_relaxed)),
      default_model_(std::move(default_model)) {}

std::shared_ptr<ModelRegistry> ModelRegistry::with_builtin_models() {
  auto registry = std::make_shared<ModelRegistry>("lexical");
  registry->add(std::make_shared<LexicalEmbedder>());
  // Read once at configuration time; the process never calls setenv.
  const char* base_url = std::getenv("OPENAI_BASE_URL");  // NOLINT(concurrency-mt-unsafe)
  if (base_url != nullptr && *base_url != '\0') {
    auto remote = std::make_shared<OpenAIEmbedder>(OpenAIEmbedderConfig::from_env());
    registry->add(remote, {"openai"});
  }
  return registry;
}

void ModelRegistry::add(std::shared_ptr<Embedder> embedder, const std::vector<std::string>& aliases) {
  if (!embedder) throw std::invalid_argument("ModelRegistry::add: embedder is null");
  std::string canonical = embedder->name();
  Provider provider = [e = std::move(embedder)] { return e; };
  WriterMutexLock lock(mutex_);
  add_locked(std::move(canonical), std::move(provider), aliases);
}

void ModelRegistry::add(std::string canonical_name, Provider provider,
                        const std::vector<std::string>& aliases) {
  if (!provider) throw std::invalid_argument("ModelRegistry::add: provider is empty");
  WriterMutexLock lock(mutex_);
  add_locked(std::move(canonical_name), std::move(provider), aliases);
}

void ModelRegistry::add_locked(std::string canonical, Provider provider,
                               const std::vector<std::string>& aliases) {
  // Validate everything before changing anything, so a refused call leaves no trace.
  auto check_free = [&](const std::string& name, const char* what) {
    mutex_.assert_held();  // called below, under add_locked's lock
    if (name.empty()) throw std::invalid_argument(std::string("ModelRegistry: empty ") + what);
    const std::string key = lowercase(name);
    if (key == kDefaultAlias) {
      throw std::invalid_argument("ModelRegistry: 'default' is reserved for the default model");
    }
    if (by_name_.contains(key) || alias_to_name_.contains(key)) {
      throw std::invalid_argument(std::string("ModelRegistry: ") + what + " '" + name +
                                  "' is already registered");
    }
  };
  check_free(canonical, "model name");
  std::vector<std::string> alias_keys;
  for (const std::string& alias : aliases) {
    check_free(alias, "alias");
    std::string key = lowercase(alias);
    if (key == lowercase(canonical) ||
        std::find(alias_keys.begin(), alias_keys.end(), key) != alias_keys.end()) {
      throw std::invalid_argument("ModelRegistry: alias '" + alias + "' is given twice");
    }
    alias_keys.push_back(std::move(key));
  }
  const std::string canonical_key = lowercase(canonical);
  for (std::string& key : alias_keys) alias_to_name_.emplace(std::move(key), canonical_key);
  by_name_.emplace(canonical_key, Model{std::move(canonical), std::move(provider)});
  generation_.fetch_add(1, std::memory_order_release);
}

void ModelRegistry::set_default_model(std::string name) {
  if (name.empty() || lowercase(name) == kDefaultAlias) {
    throw std::invalid_argument("ModelRegistry: the default model must be a model's name");
  }
  WriterMutexLock lock(mutex_);
  default_model_ = std::move(name);
  generation_.fetch_add(1, std::memory_order_release);
}

std::string ModelRegistry::default_model() const {
  ReaderMutexLock lock(mutex_);
  return default_model_;
}

const ModelRegistry::Model* ModelRegistry::find_locked(std::string_view name) const {
  std::string key = lowercase(name);
  if (key == kDefaultAlias) key = lowercase(default_model_);
  if (const auto alias = alias_to_name_.find(key); alias != alias_to_name_.end()) {
    key = alias->second;
  }
  const auto it = by_name_.find(key);
  return it == by_name_.end() ? nullptr : &it->second;
}

std::vector<std::string> ModelRegistry::models_locked() const {
  std::vector<std::string> names;
  names.reserve(by_name_.size());
  for (const auto& [key, model] : by_name_) names.push_back(model.canonical);
  std::sort(names.begin(), names.end());
  return names;
}

std::string ModelRegistry::resolve(std::string_view name) const {
  ResolveMemo& memo = t_resolve_memo;
  // Without the lock: a registration racing with this call is ordered after it.
  if (memo.registry_id == id_ && memo.generation == generation_.load(std::memory_order_acquire) &&
      memo.name == name) {
    return memo.canonical;
  }
  ReaderMutexLock lock(mutex_);
  const Model* model = find_locked(name);
  if (model == nullptr) throw UnknownModelError(std::string(name), models_locked());
  // Writers bump generation_ under the exclusive lock, so it is stable while we hold ours.
  memo.registry_id = id_;
  memo.generation = generation_.load(std::memory_order_relaxed);
  memo.name.assign(name);
  memo.canonical = model->canonical;
  return model->canonical;
}

std::shared_ptr<Embedder> ModelRegistry::embedder(std::string_view name) const {
  Provider provider;
  {
    ReaderMutexLock lock(mutex_);
    const Model* model = find_locked(name);
    if (model == nullptr) throw UnknownModelError(std::string(name), models_locked());
    provider = model->provider;
  }
  std::shared_ptr<Embedder> embedder = provider();  // outside the lock: may load a model
  if (!embedder) throw EmbedderError("embedding model '" + std::string(name) + "' is unavailable");
  return embedder;
}

std::vector<std::string> ModelRegistry::models() const {
  ReaderMutexLock lock(mutex_);
  return models_locked();
}

std::map<std::string, std::string> ModelRegistry::aliases() const {
  ReaderMutexLock lock(mutex_);
  std::map<std::string, std::string> out;
  for (const auto& [alias, key] : alias_to_name_) out.emplace(alias, by_name_.at(key).canonical);
  return out;
}

}  // namespace pagekeeper
