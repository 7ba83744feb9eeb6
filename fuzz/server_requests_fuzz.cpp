// libFuzzer target for pagekeeperd's request parsers (server_requests.hpp). The first byte
// picks the parser; the rest is the request body. Any exception other than RequestError, and
// any crash or sanitizer report, is a bug.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "server/requests.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  pagekeeper::ServerLimits limits;
  limits.max_texts_per_request = 64;
  limits.max_text_bytes = 256;
  try {
    switch (data[0] % 3) {
      case 0: {
        // The plain reader answers only where the full parser gives the same request.
        const auto plain = pagekeeper::parse_plain_embeddings_request(body, limits);
        const auto r = pagekeeper::parse_embeddings_request_json(body, limits);
        if (plain && (plain->inputs != r.inputs || plain->model != r.model ||
                      plain->encoding_format != r.encoding_format || plain->dimensions != r.dimensions))
          __builtin_trap();
        if (r.inputs.empty() || r.inputs.size() > limits.max_texts_per_request) __builtin_trap();
        for (const auto& t : r.inputs)
          if (t.empty() || t.size() > limits.max_text_bytes) __builtin_trap();
        break;
      }
      case 1: {
        const auto r = pagekeeper::parse_generate_request(body, limits);
        if (r.texts.empty()) __builtin_trap();
        break;
      }
      default: {
        const auto params = pagekeeper::parse_command_params(body);
        if (!params.is_object()) __builtin_trap();
        pagekeeper::optional_number(params, "target_pressure", "targetPressure", 0.0, 1000.0);
        pagekeeper::required_string(params, "persona_id", "personaId");
        break;
      }
    }
  } catch (const pagekeeper::RequestError& e) {
    if (e.status < 400 || e.status > 499) __builtin_trap();
    // A body the full parser refuses must not be read by the plain reader either.
    if (data[0] % 3 == 0 && pagekeeper::parse_plain_embeddings_request(body, limits)) __builtin_trap();
  }
  return 0;
}
