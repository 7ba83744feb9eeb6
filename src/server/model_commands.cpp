// embedding/model/info, embedding/model/load and embedding/model/unload, and the model
// entry that embedding/model/list shows for each model.
//
// Loading goes through the model's own provider, which holds its lock while the model pool
// loads the file: concurrent loads of one model (and the first requests for it) load it once.
// Models of backends with nothing to load (lexical, OpenAI-compatible endpoints) are always
// loaded; unloading one is refused.

#include <chrono>

#include "server/requests.hpp"
#include "server/daemon_impl.hpp"

namespace pagekeeper {

nlohmann::json Daemon::Impl::model_entry(const std::string& canonical_name) const {
  const ModelRegistry& registry = embeddings->models();
  std::string default_canonical;
  try {
    default_canonical = registry.resolve("default");
  } catch (const UnknownModelError&) {
  }
  nlohmann::json names = nlohmann::json::array();
  for (const auto& [alias, canonical] : registry.aliases())
    if (canonical == canonical_name) names.push_back(alias);
  nlohmann::json model = {{"name", canonical_name}, {"aliases", names}, {"isDefault", canonical_name == default_canonical}};
  if (const auto d = model_descriptions.find(canonical_name); d != model_descriptions.end()) {
    model["backend"] = d->second.backend;
    if (!d->second.location.empty()) model["location"] = d->second.location;
    const std::optional<std::size_t> dims = d->second.dimensions ? d->second.dimensions() : std::nullopt;
    model["dimensions"] = dims ? nlohmann::json(*dims) : nlohmann::json(nullptr);  // null until loaded
    model["loaded"] = d->second.resident ? d->second.resident() : true;
  }
  return model;
}

void Daemon::Impl::install_model_commands() {
  add_command("embedding/model/info", false, [this](const HttpRequest& req, HttpResponse& res) {
    const nlohmann::json params = parse_command_params(req.body);
    const std::string canonical = embeddings->models().resolve(required_string(params, "model", "model"));
    res.set_content(model_entry(canonical).dump(), "application/json");
  });

  add_command("embedding/model/load", true, [this](const HttpRequest& req, HttpResponse& res) {
    const nlohmann::json params = parse_command_params(req.body);
    const std::string canonical = embeddings->models().resolve(required_string(params, "model", "model"));
    const auto t0 = std::chrono::steady_clock::now();
    // The provider loads the model into the pool (single flight) and keeps its embedder, so
    // the next embedding request finds it ready. EmbedderError (502) when the load fails.
    const std::shared_ptr<Embedder> embedder = embeddings->models().embedder(canonical);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    res.set_content(nlohmann::json{{"model", canonical},
                                   {"loaded", true},
                                   {"dimensions", embedder->dimensions()},
                                   {"durationMs", ms}}
                        .dump(),
                    "application/json");
  });

  add_command("embedding/model/unload", true, [this](const HttpRequest& req, HttpResponse& res) {
    const nlohmann::json params = parse_command_params(req.body);
    const std::string canonical = embeddings->models().resolve(required_string(params, "model", "model"));
    const auto d = model_descriptions.find(canonical);
    if (d == model_descriptions.end() || !d->second.unload)
      throw RequestError(400, "not_unloadable",
                         "model '" + canonical + "' has nothing to unload: its backend (" +
                             (d == model_descriptions.end() ? std::string("built in") : d->second.backend) +
                             ") holds no loaded weights",
                         "model");
    if (!d->second.unload())
      throw RequestError(404, "model_not_loaded", "Model not loaded: " + canonical, "model");
    res.set_content(nlohmann::json{{"model", canonical}, {"unloaded", true}}.dump(), "application/json");
  });
}

}  // namespace pagekeeper
