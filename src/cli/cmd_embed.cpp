// `pagekeeper embed`: one text (argument or stdin) to a vector, through a running server
// (--server) or the process's own EmbeddingService.

#include <CLI/CLI.hpp>

#include <iostream>
#include <iterator>

#include "cli/commands.hpp"
#include "cli/server_client.hpp"
#include "cli/tier_flags.hpp"
#include "pagekeeper/embedding_service.hpp"

namespace pagekeeper::cli {

namespace {

struct EmbedOptions {
  std::string text;
  std::string server;
  std::string model = "default";
  std::string token;
};

}  // namespace

void add_embed_command(CLI::App& app) {
  auto o = std::make_shared<EmbedOptions>();
  CLI::App* cmd = app.add_subcommand("embed", "Embed one text (argument, or stdin when absent) and print the vector as JSON");
  cmd->add_option("text", o->text, "The text; read from stdin when absent");
  cmd->add_option("--server", o->server, "pagekeeperd URL (http://host:port; a bare host:port means http); in-process when absent")
      ->envname("PAGEKEEPER_SERVER");
  cmd->add_option("--model", o->model, "Model name or alias")->capture_default_str();
  cmd->add_option("--token", o->token, "Bearer token")->envname("PAGEKEEPER_TOKEN");
  auto tier_flags = add_tier_flags(*cmd);
  cmd->callback([o, tier_flags] {
    std::string text = o->text;
    if (text.empty()) text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    if (text.empty()) throw std::runtime_error("no text given (argument or stdin)");
    nlohmann::json out;
    if (!o->server.empty()) {
      ServerClient client(o->server, o->token);
      const ServerReply r = client.post("/v1/embeddings", nlohmann::json{{"input", text}, {"model", o->model}}.dump());
      const auto body = nlohmann::json::parse(r.body);
      out = {{"model", body["model"]}, {"dimensions", body["data"][0]["embedding"].size()},
             {"cacheHit", r.cache_hits == 1}, {"embedding", body["data"][0]["embedding"]}};
    } else {
      const Tiers tiers = init_in_process_tiers(*tier_flags);
      const EmbedResult r = EmbeddingService::process_default()->embed(text, o->model);
      if (tiers.chain) tiers.chain->flush();
      out = {{"model", r.model}, {"dimensions", r.vector.size()}, {"cacheHit", r.accounting.hits == 1},
             {"embedding", r.vector.to_vector()}};
    }
    std::cout << out.dump() << std::endl;
  });
}

}  // namespace pagekeeper::cli
