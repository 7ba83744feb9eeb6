// GET /v1/models and GET /v1/models/{id}: the served models in OpenAI's shape, so OpenAI's
// clients (models.list(), models.retrieve()) and tools that pick a model from that list work.
// Every canonical name and every alias is listed as a model of its own id, `default` too,
// since a request may name any of them.

#include <chrono>

#include "server/requests.hpp"
#include "server/daemon_impl.hpp"

namespace pagekeeper {

namespace {

nlohmann::json openai_model(std::string_view id, std::int64_t created) {
  return {{"id", id}, {"object", "model"}, {"created", created}, {"owned_by", "pagekeeper"}};
}

}  // namespace

void Daemon::Impl::install_openai_model_routes() {
  const std::int64_t created =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  add_endpoint("GET", "/v1/models", [this, created](const HttpRequest&, HttpResponse& res) {
    const ModelRegistry& registry = embeddings->models();
    nlohmann::json data = nlohmann::json::array();
    data.push_back(openai_model("default", created));
    for (const std::string& name : registry.models()) data.push_back(openai_model(name, created));
    for (const auto& [alias, canonical] : registry.aliases()) data.push_back(openai_model(alias, created));
    res.set_content(nlohmann::json{{"object", "list"}, {"data", std::move(data)}}.dump(), "application/json");
  });
  add_prefix_endpoint("GET", "/v1/models/", "/v1/models/{id}", [this, created](const HttpRequest& req, HttpResponse& res) {
    embeddings->models().resolve(req.route_tail);  // UnknownModelError: 404 model_not_found naming it
    res.set_content(openai_model(req.route_tail, created).dump(), "application/json");
  });
}

}  // namespace pagekeeper
