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

EmbeddingsRequest parse_embeddings_request(std::string_view body, const ServerLimits& limits) {
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
