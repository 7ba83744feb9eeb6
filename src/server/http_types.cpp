// HttpRequest / HttpResponse helpers (see http_types.hpp).

#include "server/http_types.hpp"

#include <algorithm>

namespace pagekeeper::server {

namespace {

char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool equal_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return ascii_lower(x) == ascii_lower(y); });
}

void HttpHeaders::add(std::string name, std::string value) { fields_.emplace_back(std::move(name), std::move(value)); }

void HttpHeaders::set(std::string name, std::string value) {
  erase(name);
  add(std::move(name), std::move(value));
}

void HttpHeaders::erase(std::string_view name) {
  std::erase_if(fields_, [name](const Field& f) { return equal_ignoring_case(f.first, name); });
}

const std::string* HttpHeaders::find(std::string_view name) const {
  for (const Field& f : fields_)
    if (equal_ignoring_case(f.first, name)) return &f.second;
  return nullptr;
}

std::size_t HttpHeaders::count(std::string_view name) const {
  return static_cast<std::size_t>(
      std::count_if(fields_.begin(), fields_.end(), [name](const Field& f) { return equal_ignoring_case(f.first, name); }));
}

std::optional<std::string> percent_decode(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return std::nullopt;
      const int hi = hex_digit(in[i + 1]);
      const int lo = hex_digit(in[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

std::string_view HttpRequest::header(std::string_view name) const {
  const std::string* v = headers.find(name);
  return v == nullptr ? std::string_view() : std::string_view(*v);
}

std::optional<std::string> HttpRequest::query_param(std::string_view name) const {
  std::string_view rest = query;
  while (!rest.empty()) {
    const std::size_t amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    const std::size_t eq = pair.find('=');
    const auto key = percent_decode(pair.substr(0, eq), true);
    if (!key || *key != name) continue;
    if (eq == std::string_view::npos) return std::string();
    if (auto value = percent_decode(pair.substr(eq + 1), true)) return value;
  }
  return std::nullopt;
}

bool HttpRequest::split_target() {
  if (target.empty() || target.front() != '/') return false;
  const std::size_t q = target.find('?');
  auto decoded = percent_decode(std::string_view(target).substr(0, q), false);
  if (!decoded || decoded->find('\0') != std::string::npos) return false;
  path = std::move(*decoded);
  query = q == std::string::npos ? std::string() : target.substr(q + 1);
  return true;
}

}  // namespace pagekeeper::server
