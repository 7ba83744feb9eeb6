// The similarity commands over HTTP: parameters from the body, the answer (vector_commands.cpp)
// into the response.

#include "server/requests.hpp"
#include "server/daemon_impl.hpp"
#include "server/vector_commands.hpp"

namespace pagekeeper {

namespace {

void send(const server::CommandReply& reply, server::HttpResponse& res) {
  for (const auto& [name, value] : reply.headers) res.set_header(name, value);
  res.set_content(reply.body, reply.content_type);
}

// Raw float32 only when the client asks for it and not also for JSON.
bool wants_octets(const server::HttpRequest& req) {
  const std::string_view accept = req.header("Accept");
  return accept.find("application/octet-stream") != std::string_view::npos &&
         accept.find("application/json") == std::string_view::npos;
}

}  // namespace

void Daemon::Impl::install_vector_commands() {
  add_command("embedding/similarity", false, [this](const HttpRequest& req, HttpResponse& res) {
    send(server::similarity_command(parse_command_params(req.body), *embeddings, config.limits), res);
  });
  add_command("embedding/similarity-matrix", false, [this](const HttpRequest& req, HttpResponse& res) {
    send(server::similarity_matrix_command(parse_command_params(req.body), *embeddings, config.limits,
                                           wants_octets(req)),
         res);
  });
  add_command("embedding/top-k", false, [this](const HttpRequest& req, HttpResponse& res) {
    send(server::top_k_command(parse_command_params(req.body), *embeddings, config.limits), res);
  });
  add_command("embedding/cluster", false, [this](const HttpRequest& req, HttpResponse& res) {
    send(server::cluster_command(parse_command_params(req.body), *embeddings, config.limits), res);
  });
}

}  // namespace pagekeeper
