// pagekeeper/openai_embedder.hpp
//
// OpenAIEmbedder: an Embedder backed by a remote server speaking OpenAI's embeddings API,
// `POST {base_url}/v1/embeddings` with `{"model": M, "input": [texts], "encoding_format":
// "float"}`. Text Embeddings Inference, Ollama, llama-server, vLLM and OpenAI itself all
// serve it. HTTP and HTTPS are both supported (cpp-httplib built with OpenSSL; the system
// certificate store verifies the server).
//
// Failures are EmbedderError (EmbedderInputError for 400/413/422, the server refusing the
// input), whose message names the URL, the HTTP status and the server's own error message.
// 429 and 5xx answers and network failures (refused connection, timeout) are retried with
// exponential backoff; a Retry-After header in seconds is honoured, capped by the config.
// The response is validated before anything is returned: one vector per input, each `index`
// present exactly once, exactly `dimensions` finite numbers each. A server that breaks any
// of these produces an EmbedderError, never a crash or a misordered result.
//
// Thread safety: immutable after construction; embed() may run concurrently from many
// threads (each call uses its own connection).

#pragma once

#include <chrono>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "pagekeeper/embedder.hpp"

namespace pagekeeper {

struct OpenAIEmbedderConfig {
  // Scheme, host and optional port and path prefix: "http://127.0.0.1:8080",
  // "https://api.openai.com". A trailing "/v1" is accepted and not doubled, so the
  // OPENAI_BASE_URL convention ("https://api.openai.com/v1") works as is.
  std::string base_url;
  // Sent as "Authorization: Bearer <api_key>" when not empty.
  std::string api_key;
  // The model id the server knows ("text-embedding-3-small", "nomic-embed-text", ...).
  std::string model;
  // Length of the vectors the server returns. Required: the cache and every caller rely on
  // it before the first call. A response of another length is an error.
  std::size_t dimensions = 0;
  // Also send `"dimensions": N` in the request (for models that can shorten their output,
  // such as OpenAI's text-embedding-3). Off by default: many servers reject the field.
  bool send_dimensions = false;
  // The canonical name in pagekeeper's registry and cache keys. Empty -> "openai:<model>".
  std::string name;
  // Texts per request; the service splits larger batches.
  std::size_t max_batch = 64;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds read_timeout{60000};
  // Retries after the first attempt, for 429, 5xx and network failures.
  int max_retries = 3;
  // Backoff before retry k (0-based) is min(max_backoff, initial_backoff * 2^k), unless the
  // server sent Retry-After, which is used instead (capped at max_retry_after).
  std::chrono::milliseconds initial_backoff{250};
  std::chrono::milliseconds max_backoff{8000};
  std::chrono::milliseconds max_retry_after{30000};
  // The whole call, attempts and backoff together, ends within this: each attempt's timeouts
  // are cut to what is left, and a retry whose wait would pass it is not made (EmbedderError
  // naming the deadline). A request that waits on this embedder waits at most this long.
  std::chrono::milliseconds deadline{60000};

  // base_url from OPENAI_BASE_URL (default "https://api.openai.com"), api_key from
  // OPENAI_API_KEY, model from OPENAI_EMBEDDING_MODEL (default "text-embedding-3-small"),
  // dimensions from OPENAI_EMBEDDING_DIMENSIONS (default 1536). Throws
  // std::invalid_argument when a variable is malformed.
  static OpenAIEmbedderConfig from_env();
};

class OpenAIEmbedder final : public Embedder {
 public:
  // Throws std::invalid_argument naming the field when the configuration is unusable (no
  // base URL, a scheme other than http/https, no model, zero dimensions or batch).
  explicit OpenAIEmbedder(OpenAIEmbedderConfig config);

  std::string name() const override { return name_; }
  std::size_t dimensions() const override { return config_.dimensions; }
  std::size_t max_batch() const override { return config_.max_batch; }
  // "openai/<endpoint>/<remote model>/<dimensions>[/send-dimensions]".
  std::string identity() const override;

  // One request (plus retries) for `texts`; an empty list returns {} without a request.
  // Throws EmbedderInputError for more than max_batch() texts and for 400/413/422 answers,
  // EmbedderError for every other failure.
  using Embedder::embed;
  std::vector<std::vector<float>> embed(std::span<const std::string_view> texts) override;

  // The full URL requests go to, for messages and logs.
  const std::string& endpoint() const { return endpoint_; }

 private:
  OpenAIEmbedderConfig config_;
  std::string name_;
  std::string scheme_host_port_;  // "http://host:port", what httplib::Client takes
  std::string path_;              // "/prefix/v1/embeddings"
  std::string endpoint_;
};

}  // namespace pagekeeper
