// HttpRequest / HttpResponse: what pagekeeperd's handlers read and write, independent of the
// HTTP engine that parsed the request and will write the answer. The engine fills an
// HttpRequest (method, target, headers, the whole body, already bounded by the configured
// limits), a handler fills an HttpResponse (status, content type, body, extra headers), and
// the engine writes it with the framing headers (Content-Length, Connection, Date) it owns.
//
// Thread safety: plain values; one request and its response belong to one handler call.

#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pagekeeper::server {

// Header fields in the order received (or set). Names compare case-insensitively; a name may
// occur more than once.
class HttpHeaders {
 public:
  using Field = std::pair<std::string, std::string>;

  // Appends a field (keeps earlier ones of the same name).
  void add(std::string name, std::string value);
  // Replaces every field named `name` with one field.
  void set(std::string name, std::string value);
  // Removes every field named `name`.
  void erase(std::string_view name);
  // The value of the first field named `name`, or nullptr.
  const std::string* find(std::string_view name) const;
  // Number of fields named `name`.
  std::size_t count(std::string_view name) const;

  // Makes room for `n` fields in all (no effect on the fields).
  void reserve(std::size_t n) { fields_.reserve(n); }
  std::size_t size() const { return fields_.size(); }
  bool empty() const { return fields_.empty(); }
  std::vector<Field>::const_iterator begin() const { return fields_.begin(); }
  std::vector<Field>::const_iterator end() const { return fields_.end(); }

 private:
  std::vector<Field> fields_;
};

// True when `a` and `b` are equal ignoring ASCII case.
bool equal_ignoring_case(std::string_view a, std::string_view b);

struct HttpRequest {
  std::string method;  // as sent, e.g. "GET", "POST" (methods are case-sensitive)
  std::string target;  // the request target as sent: path and query
  std::string path;    // the target's path, percent-decoded
  std::string query;   // the target after '?', not decoded ("" when none)
  HttpHeaders headers;
  std::string body;  // the whole body, decoded from its transfer framing
  // Set by the router: the part of the path after a route's prefix (the command name of
  // /api/<command>), "" otherwise.
  std::string route_tail;

  // The first value of header `name`, or "" when absent.
  std::string_view header(std::string_view name) const;
  bool has_header(std::string_view name) const { return headers.find(name) != nullptr; }
  // The percent-decoded value of query parameter `name` ('+' reads as a space), or nullopt.
  std::optional<std::string> query_param(std::string_view name) const;

  // Fills path and query from target. Returns false when the target is not origin-form
  // ("/..." with an optional query) or its path holds a malformed percent escape or a NUL.
  bool split_target();
};

struct HttpResponse {
  int status = 200;
  std::string content_type;  // the Content-Type header; empty: none
  std::string body;
  // Extra header fields. The engine writes Content-Type from content_type and owns
  // Content-Length, Transfer-Encoding, Connection and Date: fields of those names are ignored.
  HttpHeaders headers;

  void set_content(std::string content, std::string_view type) {
    body = std::move(content);
    content_type = type;
  }
  void set_header(std::string name, std::string value) { headers.set(std::move(name), std::move(value)); }
};

// Decodes %XX escapes (and '+' as a space when `plus_is_space`). nullopt on a malformed escape.
std::optional<std::string> percent_decode(std::string_view in, bool plus_is_space);

}  // namespace pagekeeper::server
