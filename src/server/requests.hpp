// server/requests.hpp (internal to the server component)
//
// The request parsers of pagekeeperd: turn the bytes of an HTTP body into a typed request or a
// RequestError carrying the HTTP status, an error code and a message that names the problem
// (the field, the limit, the expected type). They never crash on any input: every path is
// exercised by the libFuzzer targets in fuzz/ (server_requests_fuzz).
//
// JSON rules shared by every parser: the body must be one JSON object (an empty body counts as
// `{}` only for commands without required fields), nested at most kMaxJsonDepth deep, valid
// UTF-8 (nlohmann's parser rejects ill-formed UTF-8 inside strings). Unknown fields are
// ignored, as OpenAI's API does, except fields whose presence would change the meaning of the
// answer (`dimensions` other than the model's), which are refused.
//
// Thread safety: pure functions.

#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "pagekeeper/errors.hpp"
#include "pagekeeper/server_config.hpp"

namespace pagekeeper {

inline constexpr int kMaxJsonDepth = 32;

// A request was refused. `status` is the HTTP status (4xx for the caller's mistakes, 5xx for
// ours), `code` a stable machine-readable word (e.g. "invalid_json", "limit_exceeded"),
// `param` the offending field when there is one.
class RequestError : public Error {
 public:
  RequestError(int status, std::string code, const std::string& message, std::string param = {})
      : Error(message), status(status), code(std::move(code)), param(std::move(param)) {}
  int status;
  std::string code;
  std::string param;
};

// The JSON error body every refusal gets, in OpenAI's shape so its clients show the message:
// {"error": {"message", "type", "code", "param", "status"}}. `type` is
// "invalid_request_error" for 4xx and "server_error" for 5xx.
nlohmann::json error_body(int status, std::string_view code, std::string_view message,
                          std::string_view param = {});

enum class EncodingFormat { kFloat, kBase64 };

// POST /v1/embeddings.
struct EmbeddingsRequest {
  std::vector<std::string> inputs;  // at least one, none empty
  std::string model;                // empty: the default model
  EncodingFormat encoding_format = EncodingFormat::kFloat;
  std::optional<std::int64_t> dimensions;  // checked against the model by the server
};

// Refusals (all 400 unless noted): not a JSON object; `input` missing, empty, an empty
// string, token arrays (integers or arrays of integers: "token-array input is not
// supported"), other types; more than limits.max_texts_per_request inputs; an input longer
// than limits.max_text_bytes (both name the limit); `model` not a string or empty;
// `encoding_format` other than "float"/"base64"; `dimensions` not a positive integer.
EmbeddingsRequest parse_embeddings_request(std::string_view body, const ServerLimits& limits);

// The two readers parse_embeddings_request combines, public so tests and the fuzzer can hold
// them to the same answers. parse_plain_embeddings_request reads the plain shape nearly every
// client sends (a flat object of strings and arrays of strings in printable ASCII, no
// escapes) without building a JSON document, and returns nullopt for anything else, including
// everything that would be refused; parse_embeddings_request_json parses any body with
// nlohmann and refuses as described above. Where the plain reader answers, both agree.
std::optional<EmbeddingsRequest> parse_plain_embeddings_request(std::string_view body,
                                                                const ServerLimits& limits);
EmbeddingsRequest parse_embeddings_request_json(std::string_view body, const ServerLimits& limits);

// POST /api/embedding/generate: {texts: string[], model?: string, format?: "binary"|"json"}.
struct GenerateRequest {
  std::vector<std::string> texts;
  std::string model;  // empty: the default model
  bool json = false;  // the caller asked for JSON instead of raw float32
};
// Refusals as above; an empty `texts` is "No texts provided", the original's message.
GenerateRequest parse_generate_request(std::string_view body, const ServerLimits& limits);

// The parameters of a command: a JSON object (an empty body is {}). Throws RequestError 400
// for anything else.
nlohmann::json parse_command_params(std::string_view body);

// Typed field access on command parameters; every accessor accepts the snake_case and the
// camelCase spelling (the original's legacy and typed forms) and throws RequestError 400
// naming the field when it has the wrong type or is out of range.
std::string required_string(const nlohmann::json& params, std::string_view snake, std::string_view camel);
std::optional<double> optional_number(const nlohmann::json& params, std::string_view snake,
                                      std::string_view camel, double min, double max);

}  // namespace pagekeeper
