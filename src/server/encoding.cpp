#include "server/encoding.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace pagekeeper::server {

void append_json_floats(std::string& out, std::span<const float> values) {
  // The shortest round-trip text of a float is at most 15 bytes ("-1.1754944e-38"); with its
  // comma, 16. Values are written into a block on the stack and appended a block at a time:
  // growing `out` to the worst case first would fill three times the answer with zeros.
  constexpr std::size_t kMaxFloatText = 16;
  constexpr std::size_t kBlockValues = 128;
  std::array<char, kBlockValues * kMaxFloatText> block;  // NOLINT(cppcoreguidelines-pro-type-member-init)
  // Shortest formatting is most of an answer's cost, and embedding vectors repeat values:
  // sparse ones are mostly 0, quantised ones hold few distinct values. A value's text is
  // remembered in a small table keyed by its bits, for this call only.
  struct Remembered {
    std::uint32_t bits = 0;  // 0 (+0.0f) marks an empty slot: zero has its own fast path
    std::uint8_t size = 0;
    std::array<char, kMaxFloatText> text{};
  };
  constexpr std::size_t kSlots = 64;
  std::array<Remembered, kSlots> seen{};
  out.reserve(out.size() + values.size() * 8 + 2);
  out += '[';
  for (std::size_t first = 0; first < values.size(); first += kBlockValues) {
    const std::size_t last = std::min(values.size(), first + kBlockValues);
    char* at = block.data();
    char* const limit = block.data() + block.size();
    for (std::size_t i = first; i < last; ++i) {
      if (i != 0) *at++ = ',';
      const float v = std::isfinite(values[i]) ? values[i] : 0.0f;
      const auto bits = std::bit_cast<std::uint32_t>(v);
      if (bits == 0) {
        *at++ = '0';
        continue;
      }
      Remembered& slot = seen[(bits * 0x9E3779B1u) >> 26];
      if (slot.bits == bits) {
        std::memcpy(at, slot.text.data(), slot.size);
        at += slot.size;
        continue;
      }
      const auto [end, ec] = std::to_chars(at, limit, v);
      if (ec != std::errc()) continue;  // cannot happen: a block has room for its values
      const auto size = static_cast<std::size_t>(end - at);
      if (size <= kMaxFloatText) {
        slot.bits = bits;
        slot.size = static_cast<std::uint8_t>(size);
        std::memcpy(slot.text.data(), at, size);
      }
      at = end;
    }
    out.append(block.data(), at);
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
