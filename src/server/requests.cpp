// Request parsers of pagekeeperd (see server_requests.hpp).

#include "server/requests.hpp"

#include <cmath>

namespace pagekeeper {

nlohmann::json error_body(int status, std::string_view code, std::string_view message,
                          std::string_view param) {
  nlohmann::json error = {
      {"message", message},
      {"type", status >= 500 ? "server_error" : "invalid_request_error"},
      {"code", code},
      {"param", param.empty() ? nlohmann::json(nullptr) : nlohmann::json(param)},
      {"status", status},
  };
  return {{"error", std::move(error)}};
}

namespace {

[[noreturn]] void bad(const std::string& code, const std::string& message, std::string param = {}) {
  throw RequestError(400, code, message, std::move(param));
}

// Nesting depth of a JSON text, counted outside strings; stops as soon as it passes `limit`.
// Refusing deep documents before parsing bounds the parser's and the destructor's work.
void check_depth(std::string_view body) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth)
        bad("json_too_deep", "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

nlohmann::json parse_object(std::string_view body, bool empty_is_object) {
  if (body.empty()) {
    if (empty_is_object) return nlohmann::json::object();
    bad("empty_body", "request body is empty; expected a JSON object");
  }
  check_depth(body);
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(body);
  } catch (const nlohmann::json::exception& e) {
    // parse_error names the byte position and what was expected; out_of_range is a number
    // too large for a double (1e400), found by the fuzzer.
    bad("invalid_json", std::string("body is not valid JSON: ") + e.what());
  }
  if (!doc.is_object())
    bad("invalid_json", std::string("body must be a JSON object, got ") + doc.type_name());
  return doc;
}

const nlohmann::json* field(const nlohmann::json& obj, std::string_view snake, std::string_view camel) {
  auto it = obj.find(snake);
  if (it != obj.end()) return &*it;
  if (!camel.empty()) {
    it = obj.find(camel);
    if (it != obj.end()) return &*it;
  }
  return nullptr;
}

void check_text(const std::string& text, std::size_t index, const char* param, const ServerLimits& limits) {
  if (text.empty())
    bad("empty_input", std::string(param) + "[" + std::to_string(index) + "] is an empty string", param);
  if (text.size() > limits.max_text_bytes)
    bad("limit_exceeded",
        std::string(param) + "[" + std::to_string(index) + "] is " + std::to_string(text.size()) +
            " bytes; limits.max_text_bytes is " + std::to_string(limits.max_text_bytes),
        param);
}

void check_count(std::size_t n, const char* param, const ServerLimits& limits) {
  if (n > limits.max_texts_per_request)
    bad("limit_exceeded",
        std::string(param) + " has " + std::to_string(n) + " entries; limits.max_texts_per_request is " +
            std::to_string(limits.max_texts_per_request),
        param);
}

std::string model_field(const nlohmann::json& obj) {
  const auto* m = field(obj, "model", "");
  if (m == nullptr || m->is_null()) return {};
  if (!m->is_string()) bad("invalid_type", std::string("model must be a string, got ") + m->type_name(), "model");
  std::string name = m->get<std::string>();
  if (name.empty()) bad("invalid_value", "model must not be empty", "model");
  return name;
}

// Strings of `value` (a string or an array of strings) into `out`.
void collect_texts(const nlohmann::json& value, const char* param, const ServerLimits& limits,
                   std::vector<std::string>& out, bool allow_single_string) {
  if (value.is_string()) {
    if (!allow_single_string) bad("invalid_type", std::string(param) + " must be an array of strings", param);
    out.push_back(value.get<std::string>());
    check_text(out.back(), 0, param, limits);
    return;
  }
  if (!value.is_array())
    bad("invalid_type", std::string(param) + " must be a string or an array of strings, got " + value.type_name(), param);
  if (value.empty()) bad("empty_input", std::string(param) + " is an empty array", param);
  check_count(value.size(), param, limits);
  out.reserve(value.size());
  std::size_t i = 0;
  for (const auto& item : value) {
    if (item.is_number_integer() || item.is_number_unsigned() ||
        (item.is_array() && !item.empty() && (item[0].is_number_integer() || item[0].is_number_unsigned())))
      bad("unsupported_input",
          std::string(param) + ": token-array input is not supported; send the texts as strings", param);
    if (!item.is_string())
      bad("invalid_type",
          std::string(param) + "[" + std::to_string(i) + "] must be a string, got " + item.type_name(), param);
    out.push_back(item.get<std::string>());
    check_text(out.back(), i, param, limits);
    ++i;
  }
}

}  // namespace

namespace {

// A reader of the plain shape nearly every embeddings request has: one flat object whose
// values are strings or arrays of strings, printable ASCII without escapes. It builds no
// DOM; anything else (escapes, other bytes, numbers, nesting, a repeated field, any value
// the full parser would refuse) makes it give up, so the full parser decides and words the
// error. Keys are compared as sent, as the full parser does.
class PlainReader {
 public:
  explicit PlainReader(std::string_view text) : text_(text) {}

  bool at_end() {
    skip_space();
    return pos_ == text_.size();
  }
  bool take(char c) {
    skip_space();
    if (pos_ == text_.size() || text_[pos_] != c) return false;
    ++pos_;
    return true;
  }
  bool peek(char c) {
    skip_space();
    return pos_ < text_.size() && text_[pos_] == c;
  }
  // A string of printable ASCII without escapes; its text (quotes excluded) into `out`.
  bool string(std::string_view& out) {
    if (!take('"')) return false;
    const std::size_t start = pos_;
    for (; pos_ < text_.size(); ++pos_) {
      const auto c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') {
        out = text_.substr(start, pos_ - start);
        ++pos_;
        return true;
      }
      if (c < 0x20 || c >= 0x7f || c == '\\') return false;
    }
    return false;
  }

 private:
  void skip_space() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\n' || text_[pos_] == '\r' || text_[pos_] == '\t'))
      ++pos_;
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

}  // namespace

std::optional<EmbeddingsRequest> parse_plain_embeddings_request(std::string_view body,
                                                                const ServerLimits& limits) {
  PlainReader in(body);
  EmbeddingsRequest req;
  bool has_input = false;
  bool has_model = false;
  bool has_format = false;
  if (!in.take('{')) return std::nullopt;
  if (in.take('}')) return std::nullopt;  // no input: the full parser words the refusal
  do {
    std::string_view key;
    if (!in.string(key) || !in.take(':')) return std::nullopt;
    std::string_view value;
    if (in.take('[')) {
      // Only `input` and unknown fields may be arrays of strings.
      if (key == "model" || key == "encoding_format" || key == "dimensions") return std::nullopt;
      const bool is_input = key == "input";
      if (is_input && has_input) return std::nullopt;
      if (in.take(']')) return std::nullopt;  // an empty array: the full parser refuses it
      do {
        if (!in.string(value)) return std::nullopt;
        if (is_input) {
          if (value.empty() || value.size() > limits.max_text_bytes ||
              req.inputs.size() >= limits.max_texts_per_request)
            return std::nullopt;
          req.inputs.emplace_back(value);
        }
      } while (in.take(','));
      if (!in.take(']')) return std::nullopt;
      has_input = has_input || is_input;
      continue;
    }
    if (!in.string(value)) return std::nullopt;
    if (key == "input") {
      if (has_input || value.empty() || value.size() > limits.max_text_bytes) return std::nullopt;
      req.inputs.emplace_back(value);
      has_input = true;
    } else if (key == "model") {
      if (has_model || value.empty()) return std::nullopt;
      req.model = value;
      has_model = true;
    } else if (key == "encoding_format") {
      if (has_format) return std::nullopt;
      if (value == "float") req.encoding_format = EncodingFormat::kFloat;
      else if (value == "base64") req.encoding_format = EncodingFormat::kBase64;
      else return std::nullopt;
      has_format = true;
    } else if (key == "dimensions") {
      return std::nullopt;  // a string: the full parser refuses it
    }
  } while (in.take(','));
  if (!in.take('}') || !in.at_end() || !has_input) return std::nullopt;
  return req;
}

EmbeddingsRequest parse_embeddings_request(std::string_view body, const ServerLimits& limits) {
  if (std::optional<EmbeddingsRequest> plain = parse_plain_embeddings_request(body, limits))
    return std::move(*plain);
  return parse_embeddings_request_json(body, limits);
}

EmbeddingsRequest parse_embeddings_request_json(std::string_view body, const ServerLimits& limits) {
  const nlohmann::json doc = parse_object(body, false);
  EmbeddingsRequest req;
  const auto* input = field(doc, "input", "");
  if (input == nullptr || input->is_null()) bad("missing_field", "input is required", "input");
  collect_texts(*input, "input", limits, req.inputs, true);
  req.model = model_field(doc);
  if (const auto* fmt = field(doc, "encoding_format", ""); fmt != nullptr && !fmt->is_null()) {
    if (!fmt->is_string())
      bad("invalid_type", std::string("encoding_format must be a string, got ") + fmt->type_name(), "encoding_format");
    const auto& f = fmt->get_ref<const std::string&>();
    if (f == "float") req.encoding_format = EncodingFormat::kFloat;
    else if (f == "base64") req.encoding_format = EncodingFormat::kBase64;
    else bad("invalid_value", "encoding_format must be \"float\" or \"base64\", got \"" + f.substr(0, 64) + "\"", "encoding_format");
  }
  if (const auto* dims = field(doc, "dimensions", ""); dims != nullptr && !dims->is_null()) {
    if (dims->is_number_unsigned() || dims->is_number_integer()) {
      const std::int64_t d = dims->is_number_unsigned()
                                 ? static_cast<std::int64_t>(std::min<std::uint64_t>(dims->get<std::uint64_t>(), INT64_MAX))
                                 : dims->get<std::int64_t>();
      if (d <= 0) bad("invalid_value", "dimensions must be a positive integer, got " + std::to_string(d), "dimensions");
      req.dimensions = d;
    } else {
      bad("invalid_type", std::string("dimensions must be an integer, got ") + dims->type_name(), "dimensions");
    }
  }
  return req;
}

GenerateRequest parse_generate_request(std::string_view body, const ServerLimits& limits) {
  const nlohmann::json doc = parse_object(body, false);
  GenerateRequest req;
  const auto* texts = field(doc, "texts", "");
  if (texts == nullptr || texts->is_null() || (texts->is_array() && texts->empty()))
    bad("empty_input", "No texts provided", "texts");
  collect_texts(*texts, "texts", limits, req.texts, false);
  req.model = model_field(doc);
  if (const auto* fmt = field(doc, "format", ""); fmt != nullptr && !fmt->is_null()) {
    if (!fmt->is_string() || (*fmt != "json" && *fmt != "binary"))
      bad("invalid_value", "format must be \"binary\" or \"json\"", "format");
    req.json = *fmt == "json";
  }
  return req;
}

nlohmann::json parse_command_params(std::string_view body) { return parse_object(body, true); }

std::string required_string(const nlohmann::json& params, std::string_view snake, std::string_view camel) {
  const auto* v = field(params, snake, camel);
  const std::string name(snake);
  if (v == nullptr || v->is_null()) bad("missing_field", name + " is required", name);
  if (!v->is_string()) bad("invalid_type", name + " must be a string, got " + v->type_name(), name);
  std::string s = v->get<std::string>();
  if (s.empty()) bad("invalid_value", name + " must not be empty", name);
  if (s.size() > 256) bad("invalid_value", name + " is longer than 256 bytes", name);
  return s;
}

std::optional<double> optional_number(const nlohmann::json& params, std::string_view snake,
                                      std::string_view camel, double min, double max) {
  const auto* v = field(params, snake, camel);
  const std::string name(snake);
  if (v == nullptr || v->is_null()) return std::nullopt;
  if (!v->is_number()) bad("invalid_type", name + " must be a number, got " + v->type_name(), name);
  const double d = v->get<double>();
  if (!std::isfinite(d) || d < min || d > max) {
    nlohmann::json shown = *v;
    bad("invalid_value", name + " = " + shown.dump() + " is not in [" + nlohmann::json(min).dump() + ", " +
                             nlohmann::json(max).dump() + "]",
        name);
  }
  return d;
}

}  // namespace pagekeeper
