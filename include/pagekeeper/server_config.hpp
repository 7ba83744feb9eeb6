// pagekeeper/server_config.hpp
//
// ServerConfig: everything pagekeeperd needs to start, from defaults, a TOML file and
// command-line flags (flags win over the file, the file over defaults). The file's keys are
// the documented ones below; an unknown key, a value of the wrong type or out of range is a
// ServerConfigError naming the key (and the file position when there is one), never a silent
// default.
//
//   [server]     host, port, token, token_file, api_key, api_key_file, allowed_hosts,
//                threads, io_threads, max_connections,
//                read_timeout_ms, write_timeout_ms, idle_timeout_ms, drain_timeout_ms,
//                alert_history, history_interval_ms, history_samples
//   [limits]     max_body_bytes, max_header_bytes, max_header_fields, max_texts_per_request,
//                max_text_bytes
//   [embedding]  default_model, budget_mb (or budget_bytes), lexical_dimensions,
//                model_budget_mb (budget of the pool that holds loaded llama.cpp models),
//                policy ("tinylfu" | "lru": eviction in the embedding cache and model pool)
//   [[embedding.models]]  one table per model: name, backend ("llama" | "openai" |
//                "lexical"), aliases, and the backend's keys (see EmbeddingModelConfig)
//   [broker]     tick_ms, act_above, target_fraction, memory_budget_mb (0: what the host
//                allows when host_memory is on, else none; when set, the embedding cache
//                samples its miss-ratio curve), rebalance_hysteresis, thrash_ghost_share,
//                thrash_window_misses, host_memory (bool)
//   [adapters]   budget_mb (per-persona budget; 0 = derived from the memory budget),
//                base_model (a GGUF model: activations then load the adapters' LoRA files
//                onto it with llama.cpp), adapter_dir (where relative adapter paths are),
//                max_personas
//
// Thread safety: a plain value type.

#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "pagekeeper/broker.hpp"
#include "pagekeeper/errors.hpp"
#include "pagekeeper/eviction_policy.hpp"
#include "pagekeeper/llama_embedder.hpp"
#include "pagekeeper/openai_embedder.hpp"
#include "pagekeeper/tiers_config.hpp"

namespace pagekeeper {

// A configuration value was refused; what() names the key and the reason.
class ServerConfigError : public InvalidArgument {
 public:
  using InvalidArgument::InvalidArgument;
};

// Request limits. Each refusal names the limit it hit (413 for the body, 400 otherwise).
struct ServerLimits {
  std::size_t max_body_bytes = 8u << 20;       // whole request body, decoded from its framing
  std::size_t max_header_bytes = 16u << 10;    // request line and header fields (431)
  std::size_t max_header_fields = 100;         // header fields of one request (431)
  std::size_t max_texts_per_request = 2048;    // entries of `input` / `texts`
  std::size_t max_text_bytes = 64u << 10;      // one text, in UTF-8 bytes
};

// One embedding model served besides the built-in `lexical`, from a [[embedding.models]]
// table or a --model flag. Models are built on first use, so a GGUF file that is missing or
// corrupt is reported on the request that needs it (the daemon keeps serving).
//
//   llama:   path (required), threads, contexts, overflow ("truncate" | "refuse"),
//            pooling ("model" | "mean" | "cls" | "last"), max_batch, batch_tokens, pack_tokens
//   openai:  base_url (required), dimensions (required), remote_model (default: name),
//            api_key_env (the NAME of the environment variable holding the key; keys never
//            go in the file), timeout_ms, connect_timeout_ms, max_retries, deadline_ms (the
//            whole call, retries included; default 60000), max_batch, send_dimensions
//   lexical: dimensions, max_batch
struct EmbeddingModelConfig {
  enum class Backend { kLlama, kOpenAI, kLexical };
  std::string name;  // canonical name (cache key namespace)
  Backend backend = Backend::kLexical;
  std::vector<std::string> aliases;
  LlamaEmbedderConfig llama;    // kLlama (name = `name`)
  OpenAIEmbedderConfig openai;  // kOpenAI (name = `name`; api_key stays empty here)
  std::string api_key_env;      // kOpenAI: read when the daemon builds the model registry
  std::size_t lexical_dimensions = 384;  // kLexical
  std::size_t lexical_max_batch = 1024;  // kLexical
  // Embedder calls allowed to start per second; the others queue (RateLimitedEmbedder).
  // 0: unlimited.
  double calls_per_second = 0.0;
};

// "llama", "openai" or "lexical".
const char* backend_name(EmbeddingModelConfig::Backend backend) noexcept;

// A model from the command line: NAME=BACKEND[:LOCATION][?KEY=VALUE&...], where LOCATION is
// the GGUF path (llama) or the base URL (openai) and the keys are those of the TOML table
// (`NAME=llama:/m/bge.gguf?threads=4`, `NAME=openai:http://127.0.0.1:8080?dimensions=768`).
// Throws ServerConfigError naming the flag and the problem.
EmbeddingModelConfig parse_model_flag(std::string_view spec);

struct ServerConfig {
  // Loopback by default: exposing the daemon is an explicit decision.
  std::string host = "127.0.0.1";
  // 0 asks the kernel for a free port (tests); Daemon::port() tells which.
  int port = 8077;
  // When not empty, state-changing commands require "Authorization: Bearer <token>".
  std::string token;
  // When not empty, every /v1/* route requires "Authorization: Bearer <api_key>" (401 with
  // code invalid_api_key otherwise, as OpenAI-compatible servers answer).
  std::string api_key;
  // Names besides the bound address, localhost and loopback addresses that a request's Host
  // (and a state-changing request's Origin) may carry; others are refused with 403, so a web
  // page in the operator's browser (DNS rebinding, cross-site forms) cannot reach the API.
  std::vector<std::string> allowed_hosts;
  // Worker threads running the handlers (embedding, commands); a request waiting for one
  // holds no thread.
  std::size_t threads = 8;
  // Threads reading and writing connections (they never run a handler).
  std::size_t io_threads = 1;
  // Connections open at once; one more is answered 503 with Retry-After and closed. The
  // daemon raises its open-file limit to fit when it can (and warns when it cannot).
  std::size_t max_connections = 10000;
  // A request's header must arrive within this from its first byte, and its body within
  // this again (slow clients, slowloris).
  std::chrono::milliseconds read_timeout{5000};
  std::chrono::milliseconds write_timeout{5000};
  // A keep-alive connection with no request is closed after this.
  std::chrono::milliseconds idle_timeout{60000};
  // On stop (SIGTERM), requests in flight get this long to finish and answer.
  std::chrono::milliseconds drain_timeout{10000};
  // Alerts kept for the dashboard and /api/system/pressure-alerts.
  std::size_t alert_history = 64;
  // The dashboard's history: one sample of rates, latencies, pools and host memory every
  // history_interval, the last history_samples of them kept (default: an hour at 5 s).
  std::chrono::milliseconds history_interval{5000};
  std::size_t history_samples = 720;
  ServerLimits limits;

  // Model that `default` (and a request without `model`) resolves to.
  std::string default_model = "lexical";
  // Byte budget of the embedding cache pool.
  std::uint64_t embedding_budget_bytes = 256ull << 20;
  std::size_t lexical_dimensions = 384;
  // Configured models ([[embedding.models]] and --model NAME=...), in order.
  std::vector<EmbeddingModelConfig> models;
  // Byte budget of the pool holding loaded llama.cpp models (registered with the broker).
  std::uint64_t model_budget_bytes = 2048ull << 20;
  // Eviction policy of the embedding cache and the loaded-model pool.
  CachePolicy cache_policy = CachePolicy::kTinyLfu;

  // Broker: thresholds, act_above, target_fraction and tick_interval (default 1 s here).
  BrokerConfig broker = default_broker_config();
  // Whether the broker also watches the host's memory (cgroup v2 or /proc/meminfo).
  bool host_memory = true;

  // Per-persona adapter budget in bytes; 0 derives it from the MemoryBudget.
  std::uint64_t adapter_budget_bytes = 0;
  // When set, adapter activations load the adapters' GGUF LoRA files with llama.cpp onto this
  // base model (taken from the model pool, so its bytes count there) and eviction frees them;
  // when empty, the pagers only decide (activations answer loaded: false).
  std::filesystem::path adapter_base_model;
  // Folder that relative adapter paths are resolved against (empty: the current folder).
  std::filesystem::path adapter_dir;
  // Personas (adapter pagers) that may exist at once; creating one more is refused with 429.
  std::size_t max_personas = 1024;

  // Tiers below the embedding cache ([tiers], --tier-dir, --tier-disk-mb, --redis).
  TiersConfig tiers;

  // Throws ServerConfigError naming the first field out of range, a model without its
  // required keys, or a model name or alias given twice (or taken by the built-in lexical).
  void validate() const;

  static BrokerConfig default_broker_config() {
    BrokerConfig b;
    b.tick_interval = std::chrono::milliseconds{1000};
    return b;
  }
};

// The first line of the file at `path` without trailing spaces (a token or key file).
// Throws ServerConfigError naming `key` when the file cannot be read or the line is empty.
std::string read_secret_file(const std::string& key, const std::string& path);

// Applies the keys of the TOML file at `path` on top of `base` and returns the result
// (validated). Throws ServerConfigError for an unreadable file, a syntax error (with line and
// column), an unknown table or key, a wrong type or an out-of-range value.
ServerConfig load_server_config(const std::filesystem::path& path, ServerConfig base = {});

// The same, from TOML text (`source_name` is used in messages).
ServerConfig parse_server_config(std::string_view toml_text, std::string_view source_name,
                                 ServerConfig base = {});

}  // namespace pagekeeper
