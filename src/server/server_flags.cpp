#include "server/server_flags.hpp"

#include <csignal>
#include <iostream>
#include <optional>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "pagekeeper/server.hpp"

namespace pagekeeper::server {

struct ServerFlags {
  std::string config_path;
  CLI::Option* host = nullptr;
  CLI::Option* port = nullptr;
  CLI::Option* token = nullptr;
  CLI::Option* api_key = nullptr;
  CLI::Option* allowed_hosts = nullptr;
  CLI::Option* max_personas = nullptr;
  CLI::Option* threads = nullptr;
  CLI::Option* io_threads = nullptr;
  CLI::Option* max_connections = nullptr;
  CLI::Option* model = nullptr;
  CLI::Option* budget_mb = nullptr;
  CLI::Option* cache_policy = nullptr;
  CLI::Option* max_body = nullptr;
  CLI::Option* max_texts = nullptr;
  CLI::Option* max_text_bytes = nullptr;
  CLI::Option* tick_ms = nullptr;
  CLI::Option* no_host_memory = nullptr;
  CLI::Option* tier_disk_mb = nullptr;
  std::string tier_dir_value;
  std::uint64_t tier_disk_mb_value = 0;
  std::vector<std::string> redis_values;
  CLI::Option* adapter_base_model = nullptr;
  std::string adapter_base_model_value;
  std::string host_value;
  int port_value = 0;
  std::string token_value;
  std::string api_key_value;
  std::vector<std::string> allowed_hosts_value;
  std::size_t max_personas_value = 0;
  std::size_t threads_value = 0;
  std::size_t io_threads_value = 0;
  std::size_t max_connections_value = 0;
  std::vector<std::string> model_values;
  std::uint64_t budget_mb_value = 0;
  std::string cache_policy_value;
  std::size_t max_body_value = 0;
  std::size_t max_texts_value = 0;
  std::size_t max_text_bytes_value = 0;
  std::int64_t tick_ms_value = 0;
  bool no_host_memory_value = false;
};

std::shared_ptr<ServerFlags> add_server_flags(CLI::App& app) {
  auto f = std::make_shared<ServerFlags>();
  app.add_option("-c,--config", f->config_path, "TOML configuration file (flags override it)")
      ->check(CLI::ExistingFile);
  f->host = app.add_option("--host", f->host_value, "Address to bind (default 127.0.0.1)");
  f->port = app.add_option("-p,--port", f->port_value, "Port to bind (0: any free port; default 8077)")
                ->check(CLI::Range(0, 65535));
  f->token = app.add_option("--token", f->token_value,
                            "Bearer token required for state-changing commands (default: none; "
                            "also PAGEKEEPER_TOKEN)")
                 ->envname("PAGEKEEPER_TOKEN");
  f->api_key = app.add_option("--api-key", f->api_key_value,
                              "Key required as 'Authorization: Bearer <key>' on /v1/* (default: none; also "
                              "PAGEKEEPER_API_KEY, or server.api_key_file)")
                   ->envname("PAGEKEEPER_API_KEY");
  f->allowed_hosts = app.add_option("--allowed-host", f->allowed_hosts_value,
                                    "A name clients may use in Host besides the bound address and localhost "
                                    "(repeatable)")
                         ->expected(1)
                         ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  f->max_personas = app.add_option("--max-personas", f->max_personas_value,
                                   "Personas that may exist at once; past it, 429 (default 1024)")
                        ->check(CLI::Range(1, 1000000));
  f->threads = app.add_option("--threads", f->threads_value, "Worker threads running requests (default 8)")
                   ->check(CLI::Range(1, 1024));
  f->io_threads = app.add_option("--io-threads", f->io_threads_value, "Threads reading and writing connections (default 1)")
                      ->check(CLI::Range(1, 64));
  f->max_connections =
      app.add_option("--max-connections", f->max_connections_value,
                     "Connections open at once; past it, 503 with Retry-After (default 10000)")
          ->check(CLI::Range(1, 1000000));
  f->model = app.add_option("--model", f->model_values,
                            "NAME: the default embedding model (default lexical). NAME=llama:PATH or "
                            "NAME=openai:URL?dimensions=N[&KEY=VALUE...]: serve one more model, with "
                            "the keys of an [[embedding.models]] table (repeatable)")
                 ->expected(1)
                 ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  f->budget_mb = app.add_option("--embedding-budget-mb", f->budget_mb_value, "Embedding cache budget in MiB")
                     ->check(CLI::Range(1, 1 << 24));
  f->cache_policy = app.add_option("--cache-policy", f->cache_policy_value,
                                   "Eviction policy of the embedding cache and the loaded-model pool: "
                                   "tinylfu (default) or lru")
                        ->check(CLI::IsMember({"tinylfu", "lru"}));
  f->max_body = app.add_option("--max-body-bytes", f->max_body_value, "Largest request body")
                    ->check(CLI::Range(64, 1 << 30));
  f->max_texts = app.add_option("--max-texts", f->max_texts_value, "Most texts per request")
                     ->check(CLI::Range(1, 1 << 24));
  f->max_text_bytes = app.add_option("--max-text-bytes", f->max_text_bytes_value, "Largest text in bytes")
                          ->check(CLI::Range(1, 1 << 30));
  f->tick_ms = app.add_option("--broker-tick-ms", f->tick_ms_value, "Broker relief interval in ms")
                   ->check(CLI::Range(1, 3600000));
  app.add_option("--tier-dir", f->tier_dir_value,
                 "Directory of the local durable tier below the embedding cache (LMDB; kept across "
                 "restarts)");
  f->tier_disk_mb = app.add_option("--tier-disk-mb", f->tier_disk_mb_value,
                                   "Byte budget of the local tier in MiB (default 1024)")
                        ->check(CLI::Range(1, 1 << 24));
  app.add_option("--redis", f->redis_values,
                 "redis://HOST:PORT of the fleet tier shared by every host (repeatable: seeds of a "
                 "Redis Cluster)")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  f->no_host_memory = app.add_flag("--no-host-memory", f->no_host_memory_value, "Do not watch the host memory in the broker");
  f->adapter_base_model =
      app.add_option("--adapter-base-model", f->adapter_base_model_value,
                     "GGUF base model that adapter activations load LoRA files onto (default: none, "
                     "the adapter pagers only decide)");
  return f;
}

ServerConfig resolve_server_config(const ServerFlags& f) {
  ServerConfig c;
  if (!f.config_path.empty()) c = load_server_config(f.config_path, c);
  if (f.host->count()) c.host = f.host_value;
  if (f.port->count()) c.port = f.port_value;
  if (f.token->count() || !f.token_value.empty()) c.token = f.token_value;
  if (f.api_key->count() || !f.api_key_value.empty()) c.api_key = f.api_key_value;
  for (const std::string& name : f.allowed_hosts_value) c.allowed_hosts.push_back(name);
  if (f.max_personas->count()) c.max_personas = f.max_personas_value;
  if (f.threads->count()) c.threads = f.threads_value;
  if (f.io_threads->count()) c.io_threads = f.io_threads_value;
  if (f.max_connections->count()) c.max_connections = f.max_connections_value;
  for (const std::string& model : f.model_values) {
    if (model.find('=') == std::string::npos) c.default_model = model;
    else c.models.push_back(parse_model_flag(model));
  }
  if (f.budget_mb->count()) c.embedding_budget_bytes = f.budget_mb_value << 20;
  if (f.cache_policy->count()) c.cache_policy = parse_cache_policy(f.cache_policy_value);
  if (f.max_body->count()) c.limits.max_body_bytes = f.max_body_value;
  if (f.max_texts->count()) c.limits.max_texts_per_request = f.max_texts_value;
  if (f.max_text_bytes->count()) c.limits.max_text_bytes = f.max_text_bytes_value;
  if (f.tick_ms->count()) c.broker.tick_interval = std::chrono::milliseconds(f.tick_ms_value);
  if (f.no_host_memory->count()) c.host_memory = false;
  if (!f.tier_dir_value.empty()) c.tiers.dir = f.tier_dir_value;
  if (f.tier_disk_mb->count()) c.tiers.disk_bytes = f.tier_disk_mb_value << 20;
  if (!f.redis_values.empty()) c.tiers.redis = f.redis_values;
  if (f.adapter_base_model->count()) c.adapter_base_model = f.adapter_base_model_value;
  c.validate();
  return c;
}

int run_until_signal(const ServerConfig& config) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  // Blocked before any thread starts, so every thread inherits the mask and only sigwait()
  // below receives them.
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  Daemon daemon(config);
  daemon.start();
  std::cout << "pagekeeperd: listening on " << daemon.url() << std::endl;
  int received = 0;
  while (sigwait(&signals, &received) == 0 && received == SIGHUP) {
    // Nothing is reloaded: the configuration, models and budgets are fixed at start (a
    // restart applies a changed file). The signal must not kill the daemon either.
    spdlog::info("pagekeeperd: SIGHUP received and ignored; restart pagekeeperd to apply a changed configuration");
  }
  spdlog::info("pagekeeperd: {} received: no new connections, idle ones closed, draining requests in flight "
               "(at most {} ms)",
               received == SIGINT ? "SIGINT" : "SIGTERM", config.drain_timeout.count());
  daemon.stop();
  std::cout << "pagekeeperd: stopped" << std::endl;
  return 0;
}

}  // namespace pagekeeper::server
