// Response encodings of pagekeeperd: float arrays as JSON text (shortest round-trip form),
// base64 of little-endian float32, and raw little-endian float32 bytes.
//
// Thread safety: pure functions.

#pragma once

#include <span>
#include <string>
#include <string_view>

namespace pagekeeper::server {

// Appends `values` as a JSON array ("[0.1,-2,...]"); non-finite values (never produced by the
// embedding service, which refuses them) are written as 0 to keep the JSON valid.
void append_json_floats(std::string& out, std::span<const float> values);

// Appends the little-endian float32 bytes of `values`.
void append_le_float32(std::string& out, std::span<const float> values);

// Standard base64 (RFC 4648, with padding) of `bytes`, appended to `out`.
void append_base64(std::string& out, std::string_view bytes);

// Appends `text` as a JSON string literal (quotes included), escaping as RFC 8259 requires.
void append_json_string(std::string& out, std::string_view text);

}  // namespace pagekeeper::server
