// pagekeeper/model_registry.hpp
//
// ModelRegistry: the embedding models a process knows, by canonical name, with aliases.
// Every name a caller gives goes through resolve() before it is used in a cache key, so
// `default`, `Lexical` and `lexical` all reach the same slots (the original system keyed the
// raw string, which fragmented its cache and could load one model twice).
//
// Names are matched case-insensitively (ASCII). The alias `default` is reserved: it always
// means the configured default model. A model is registered either as a ready embedder or
// as a provider that builds or loads one when first needed (a GGUF file, say): resolving a
// name never calls the provider, so a cache hit never loads a model.
//
// Thread safety: every method may be called from any thread. Registrations take an
// exclusive lock; lookups a shared one. Providers run outside the lock.

#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pagekeeper/detail/mutex.hpp"
#include "pagekeeper/embedder.hpp"

namespace pagekeeper {

// A model name that is neither registered nor an alias. `what()` lists the known models.
// Derives from EmbedderInputError: it is the caller's mistake (a server answers 4xx).
class UnknownModelError : public EmbedderInputError {
 public:
  UnknownModelError(std::string requested, std::vector<std::string> known);
  std::string requested;
  std::vector<std::string> known;  // canonical names, sorted
};

class ModelRegistry {
 public:
  // Builds or returns the embedder of one model. Called on the miss path each time an
  // embedder is needed, so it should itself cache (or page) what it loads. Thread-safe.
  using Provider = std::function<std::shared_ptr<Embedder>()>;

  // `default_model` is what `default` resolves to; it need not be registered yet.
  explicit ModelRegistry(std::string default_model = "lexical");

  // A registry holding the built-in models: `lexical` (the default), plus `openai` when
  // OPENAI_BASE_URL is set in the environment (see OpenAIEmbedderConfig::from_env).
  static std::shared_ptr<ModelRegistry> with_builtin_models();

  // Registers a ready embedder under embedder->name(), plus `aliases`. Throws
  // std::invalid_argument when a name or alias is empty, is `default`, or is taken.
  void add(std::shared_ptr<Embedder> embedder, const std::vector<std::string>& aliases = {});
  // Registers a lazily built model under `canonical_name`. The provider must return an
  // embedder whose name() is `canonical_name` (the service checks). Same errors as above.
  void add(std::string canonical_name, Provider provider,
           const std::vector<std::string>& aliases = {});

  // Changes what `default` means. Cache keys use canonical names, so vectors computed under
  // the previous default stay valid under its own name.
  void set_default_model(std::string name);
  std::string default_model() const;

  // The canonical name of `name` (a canonical name in any case, an alias, or `default`).
  // Throws UnknownModelError listing the known models. Never calls a provider.
  std::string resolve(std::string_view name) const;

  // The embedder of `name` (resolved as above), from its provider. Throws
  // UnknownModelError, or whatever the provider throws (EmbedderError when a load fails).
  std::shared_ptr<Embedder> embedder(std::string_view name) const;

  // Canonical names, sorted.
  std::vector<std::string> models() const;
  // Alias (lowercase) -> canonical name, without `default`.
  std::map<std::string, std::string> aliases() const;

 private:
  struct Model {
    std::string canonical;
    Provider provider;
  };
  // Requires mutex_ held (shared or exclusive).
  const Model* find_locked(std::string_view name) const PAGEKEEPER_REQUIRES_SHARED(mutex_);
  std::vector<std::string> models_locked() const PAGEKEEPER_REQUIRES_SHARED(mutex_);
  void add_locked(std::string canonical, Provider provider, const std::vector<std::string>& aliases)
      PAGEKEEPER_REQUIRES(mutex_);

  // resolve() is on every embedding call's path, so each thread remembers its last answer,
  // valid while (id_, generation_) are unchanged. Every registration bumps generation_
  // (under the exclusive lock); id_ is unique per registry object for the process's life.
  const std::uint64_t id_;
  std::atomic<std::uint64_t> generation_{0};

  mutable SharedMutex mutex_;
  std::string default_model_ PAGEKEEPER_GUARDED_BY(mutex_);
  // lowercase canonical -> model
  std::map<std::string, Model, std::less<>> by_name_ PAGEKEEPER_GUARDED_BY(mutex_);
  // lowercase alias -> lowercase canonical
  std::map<std::string, std::string, std::less<>> alias_to_name_ PAGEKEEPER_GUARDED_BY(mutex_);
};

}  // namespace pagekeeper
