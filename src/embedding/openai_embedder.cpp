// OpenAIEmbedder: POST /v1/embeddings with retries, and strict validation of the answer.

#include "pagekeeper/openai_embedder.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <thread>
#include <utility>

#include <httplib.h>
#include <nlohmann/json.hpp>

namespace pagekeeper {
namespace {

using json = nlohmann::json;

std::string getenv_or(const char* name, std::string fallback) {
  // Configuration is read once, before any thread changes the environment (none does).
  const char* value = std::getenv(name);  // NOLINT(concurrency-mt-unsafe)
  return (value != nullptr && *value != '\0') ? std::string(value) : std::move(fallback);
}

std::size_t parse_positive(const std::string& text, const char* what) {
  std::size_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value == 0) {
    throw std::invalid_argument(std::string(what) + " must be a positive integer, got '" + text +
                                "'");
  }
  return value;
}

// What one attempt produced: vectors, or an error that may be retried.
struct Attempt {
  std::vector<std::vector<float>> vectors;
  std::string error;      // empty on success
  bool retryable = false;
  bool input_error = false;
  std::optional<std::chrono::milliseconds> retry_after;
};

// The server's own explanation, from the shapes servers use: OpenAI {"error":{"message"}},
// TEI {"error": "...", "error_type"}, others {"message"}; else the body, shortened.
std::string server_message(const std::string& body) {
  const json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object()) {
    const auto error = parsed.find("error");
    if (error != parsed.end()) {
      if (error->is_string()) return error->get<std::string>();
      if (error->is_object()) {
        const auto message = error->find("message");
        if (message != error->end() && message->is_string()) return message->get<std::string>();
      }
    }
    const auto message = parsed.find("message");
    if (message != parsed.end() && message->is_string()) return message->get<std::string>();
  }
  constexpr std::size_t kMaxBody = 300;
  if (body.empty()) return "(empty body)";
  return body.size() <= kMaxBody ? body : body.substr(0, kMaxBody) + "...";
}

// Retry-After in delta-seconds (the HTTP-date form is ignored: backoff applies instead).
std::optional<std::chrono::milliseconds> parse_retry_after(const std::string& value) {
  if (value.empty()) return std::nullopt;
  long long seconds = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
  if (ec != std::errc() || end != value.data() + value.size() || seconds < 0) return std::nullopt;
  return std::chrono::milliseconds(std::min<long long>(seconds, 86400) * 1000);
}

// Checks the response body and returns the vectors in input order, or an error message.
std::string parse_embeddings(const std::string& body, std::size_t count, std::size_t dims,
                             std::vector<std::vector<float>>& out) {
  const json root = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return "response is not valid JSON";
  if (!root.is_object()) return "response is not a JSON object";
  const auto data = root.find("data");
  if (data == root.end() || !data->is_array()) return "response has no \"data\" array";
  if (data->size() != count) {
    return "response has " + std::to_string(data->size()) + " embeddings for " +
           std::to_string(count) + " inputs";
  }
  // Either every item carries its input's index (the API's contract), or none does and
  // the array order is the input order.
  std::size_t with_index = 0;
  for (const json& item : *data) {
    if (item.is_object() && item.contains("index")) ++with_index;
  }
  if (with_index != 0 && with_index != count) return "only some embeddings carry an \"index\"";

  out.assign(count, {});
  std::vector<bool> seen(count, false);
  for (std::size_t pos = 0; pos < count; ++pos) {
    const json& item = (*data)[pos];
    if (!item.is_object()) return "embedding " + std::to_string(pos) + " is not an object";
    std::size_t index = pos;
    if (with_index != 0) {
      const json& idx = item["index"];
      if (!idx.is_number_unsigned() && !(idx.is_number_integer() && idx.get<long long>() >= 0)) {
        return "embedding " + std::to_string(pos) + " has a non-integer or negative \"index\"";
      }
      const auto raw = idx.get<unsigned long long>();
      if (raw >= count) {
        return "embedding index " + std::to_string(raw) + " is out of range for " +
               std::to_string(count) + " inputs";
      }
      index = static_cast<std::size_t>(raw);
      if (seen[index]) return "embedding index " + std::to_string(index) + " appears twice";
    }
    seen[index] = true;
    const auto values = item.find("embedding");
    if (values == item.end() || !values->is_array()) {
      return "embedding " + std::to_string(index) +
             " has no \"embedding\" list of floats (base64 encoding is not supported)";
    }
    if (values->size() != dims) {
      return "embedding " + std::to_string(index) + " has " + std::to_string(values->size()) +
             " dimensions, expected " + std::to_string(dims);
    }
    std::vector<float>& vec = out[index];
    vec.resize(dims);
    for (std::size_t d = 0; d < dims; ++d) {
      const json& v = (*values)[d];
      if (!v.is_number()) {
        return "embedding " + std::to_string(index) + " has a non-number at position " +
               std::to_string(d);
      }
      const auto f = static_cast<float>(v.get<double>());
      if (!std::isfinite(f)) {
        return "embedding " + std::to_string(index) + " has a non-finite value at position " +
               std::to_string(d);
      }
      vec[d] = f;
    }
  }
  return {};
}

}  // namespace

OpenAIEmbedderConfig OpenAIEmbedderConfig::from_env() {
  OpenAIEmbedderConfig config;
  config.base_url = getenv_or("OPENAI_BASE_URL", "https://api.openai.com");
  config.api_key = getenv_or("OPENAI_API_KEY", "");
  config.model = getenv_or("OPENAI_EMBEDDING_MODEL", "text-embedding-3-small");
  config.dimensions =
      parse_positive(getenv_or("OPENAI_EMBEDDING_DIMENSIONS", "1536"), "OPENAI_EMBEDDING_DIMENSIONS");
  return config;
}

OpenAIEmbedder::OpenAIEmbedder(OpenAIEmbedderConfig config) : config_(std::move(config)) {
  auto invalid = [](const std::string& why) {
    return std::invalid_argument("OpenAIEmbedder: " + why);
  };
  std::string url = config_.base_url;
  const auto scheme_end = url.find("://");
  if (url.empty() || scheme_end == std::string::npos) {
    throw invalid("base_url must look like http://host[:port] or https://host, got '" + url + "'");
  }
  const std::string scheme = url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") {
    throw invalid("base_url scheme must be http or https, got '" + scheme + "'");
  }
  const auto path_start = url.find('/', scheme_end + 3);
  const std::string host_port =
      url.substr(scheme_end + 3, path_start == std::string::npos ? std::string::npos
                                                                 : path_start - scheme_end - 3);
  if (host_port.empty()) throw invalid("base_url has no host: '" + url + "'");
  std::string prefix = path_start == std::string::npos ? std::string() : url.substr(path_start);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  if (prefix.size() >= 3 && prefix.compare(prefix.size() - 3, 3, "/v1") == 0) {
    prefix.resize(prefix.size() - 3);
  }
  if (config_.model.empty()) throw invalid("model must not be empty");
  if (config_.dimensions == 0) throw invalid("dimensions must be at least 1");
  if (config_.max_batch == 0) throw invalid("max_batch must be at least 1");
  if (config_.max_retries < 0) throw invalid("max_retries must not be negative");
  if (config_.deadline.count() <= 0) throw invalid("deadline must be positive");
  if (config_.connect_timeout.count() <= 0 || config_.read_timeout.count() <= 0) {
    throw invalid("connect_timeout and read_timeout must be positive");
  }
  if (config_.initial_backoff.count() < 0 || config_.max_backoff.count() < 0 ||
      config_.max_retry_after.count() < 0) {
    throw invalid("backoff durations must not be negative");
  }
  scheme_host_port_ = scheme + "://" + host_port;
  path_ = prefix + "/v1/embeddings";
  endpoint_ = scheme_host_port_ + path_;
  name_ = config_.name.empty() ? "openai:" + config_.model : config_.name;
}

std::string OpenAIEmbedder::identity() const {
  return "openai/" + endpoint_ + "/" + config_.model + "/" + std::to_string(config_.dimensions) +
         (config_.send_dimensions ? "/send-dimensions" : "");
}

std::vector<std::vector<float>> OpenAIEmbedder::embed(std::span<const std::string_view> texts) {
  if (texts.empty()) return {};
  if (texts.size() > config_.max_batch) {
    throw EmbedderInputError(name_ + ": " + std::to_string(texts.size()) +
                             " texts in one call, at most " + std::to_string(config_.max_batch));
  }
  json request = {{"model", config_.model},
                  {"input", json::array()},
                  {"encoding_format", "float"}};
  for (const std::string_view text : texts) request["input"].push_back(std::string(text));
  if (config_.send_dimensions) request["dimensions"] = config_.dimensions;
  // A text that is not valid UTF-8 cannot be sent as JSON: that is the caller's input.
  std::string body;
  try {
    body = request.dump();
  } catch (const json::exception& e) {
    throw EmbedderInputError(name_ + ": a text is not valid UTF-8 (" + e.what() + ")");
  }

  const auto give_up_at = std::chrono::steady_clock::now() + config_.deadline;
  auto time_left = [&give_up_at] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(give_up_at -
                                                                 std::chrono::steady_clock::now());
  };
  auto attempt_once = [&]() {
    Attempt attempt;
    httplib::Client client(scheme_host_port_);
    const std::chrono::milliseconds left = std::max(time_left(), std::chrono::milliseconds(1));
    client.set_connection_timeout(std::min(config_.connect_timeout, left));
    client.set_read_timeout(std::min(config_.read_timeout, left));
    client.set_write_timeout(std::min(config_.read_timeout, left));
    if (!config_.api_key.empty()) client.set_bearer_token_auth(config_.api_key);
    const httplib::Result result = client.Post(path_, body, "application/json");
    if (!result) {
      const httplib::Error err = result.error();
      attempt.error = "network error: " + httplib::to_string(err);
      if (err == httplib::Error::Read) {
        attempt.error += " (no complete answer within the read timeout of " +
                         std::to_string(config_.read_timeout.count()) + " ms?)";
      }
      // TLS verification and certificate failures will not fix themselves.
      attempt.retryable = err != httplib::Error::SSLServerVerification &&
                          err != httplib::Error::SSLLoadingCerts;
      return attempt;
    }
    const int status = result->status;
    if (status < 200 || status >= 300) {
      attempt.error = "HTTP " + std::to_string(status) + ": " + server_message(result->body);
      attempt.retryable = status == 429 || status >= 500;
      attempt.input_error = status == 400 || status == 413 || status == 422;
      attempt.retry_after = parse_retry_after(result->get_header_value("Retry-After"));
      return attempt;
    }
    attempt.error = parse_embeddings(result->body, texts.size(), config_.dimensions,
                                     attempt.vectors);
    if (!attempt.error.empty()) attempt.error = "invalid response: " + attempt.error;
    return attempt;
  };

  const int attempts_allowed = config_.max_retries + 1;
  for (int attempt_no = 0;; ++attempt_no) {
    Attempt attempt = attempt_once();
    if (attempt.error.empty()) return std::move(attempt.vectors);
    if (!attempt.retryable || attempt_no + 1 >= attempts_allowed) {
      std::string message = name_ + ": POST " + endpoint_ + " failed";
      if (attempt_no > 0) message += " after " + std::to_string(attempt_no + 1) + " attempts";
      message += ": " + attempt.error;
      if (attempt.input_error) throw EmbedderInputError(message);
      throw EmbedderError(message);
    }
    std::chrono::milliseconds delay;
    if (attempt.retry_after) {
      delay = std::min(*attempt.retry_after, config_.max_retry_after);
    } else {
      // initial * 2^attempt, computed so that it cannot overflow.
      const long long cap = config_.max_backoff.count();
      long long grown = config_.initial_backoff.count();
      for (int k = 0; k < attempt_no && grown < cap; ++k) grown *= 2;
      delay = std::chrono::milliseconds(std::min(grown, cap));
    }
    if (delay >= time_left()) {
      throw EmbedderError(name_ + ": POST " + endpoint_ + " failed after " +
                          std::to_string(attempt_no + 1) +
                          " attempts, and the next would pass the call's deadline of " +
                          std::to_string(config_.deadline.count()) + " ms: " + attempt.error);
    }
    std::this_thread::sleep_for(delay);
  }
}

}  // namespace pagekeeper
