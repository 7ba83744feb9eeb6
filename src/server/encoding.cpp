#include "server/encoding.hpp"

#include <bit>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace pagekeeper::server {

void append_json_floats(std::string& out, std::span<const float> values) {
  out.reserve(out.size() + values.size() * 12 + 2);
  out += '[';
  char buf[32];
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i != 0) out += ',';
    const float v = std::isfinite(values[i]) ? values[i] : 0.0f;
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
    out.append(buf, ec == std::errc() ? end : buf);
  }
  out += ']';
}

void append_le_float32(std::string& out, std::span<const float> values) {
  const std::size_t start = out.size();
  out.resize(start + values.size() * sizeof(float));
  char* dst = out.data() + start;
  if constexpr (std::endian::native == std::endian::little) {
    if (!values.empty()) std::memcpy(dst, values.data(), values.size() * sizeof(float));
  } else {
    for (float v : values) {
      const auto bits = std::bit_cast<std::uint32_t>(v);
      for (int b = 0; b < 4; ++b) *dst++ = static_cast<char>((bits >> (8 * b)) & 0xff);
    }
  }
}

void append_base64(std::string& out, std::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  out.reserve(out.size() + (bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t n = (p[i] << 16) | (p[i + 1] << 8) | p[i + 2];
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  const std::size_t rest = bytes.size() - i;
  if (rest == 1) {
    const std::uint32_t n = p[i] << 16;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += "==";
  } else if (rest == 2) {
    const std::uint32_t n = (p[i] << 16) | (p[i + 1] << 8);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += '=';
  }
}

void append_json_string(std::string& out, std::string_view text) {
  out += '"';
  for (char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          static constexpr char kHex[] = "0123456789abcdef";
          out += "\\u00";
          out += kHex[(c >> 4) & 0xf];
          out += kHex[c & 0xf];
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

}  // namespace pagekeeper::server
