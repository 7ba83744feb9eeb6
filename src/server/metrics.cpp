// Prometheus text exposition (see metrics.hpp).

#include "server/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace pagekeeper {

namespace {

std::string format_number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return ec == std::errc() ? std::string(buf, end) : "NaN";
}

}  // namespace

std::string PrometheusWriter::escape(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

void PrometheusWriter::family(std::string_view name, std::string_view type, std::string_view help) {
  out_ << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
}

void PrometheusWriter::sample(std::string_view name, const Labels& labels, double value) {
  out_ << name;
  if (!labels.empty()) {
    out_ << '{';
    bool first = true;
    for (const auto& [k, v] : labels) {
      if (!first) out_ << ',';
      first = false;
      out_ << k << "=\"" << escape(v) << '"';
    }
    out_ << '}';
  }
  out_ << ' ' << format_number(value) << '\n';
}

HttpMetrics::HttpMetrics() { routes_.emplace_back("other"); }

std::size_t HttpMetrics::add_route(std::string route) {
  routes_.emplace_back(std::move(route));
  return routes_.size() - 1;
}

void HttpMetrics::observe(std::size_t route, int status, double seconds) noexcept {
  if (route >= routes_.size()) route = kOtherRoute;
  Route& r = routes_[route];
  const int index = (status < 100 || status > 599) ? 499 : status - 100;
  r.by_status[static_cast<std::size_t>(index)].fetch_add(1, std::memory_order_relaxed);
  std::size_t bucket = std::lower_bound(kBuckets.begin(), kBuckets.end(), seconds) - kBuckets.begin();
  r.buckets[bucket].fetch_add(1, std::memory_order_relaxed);
  r.count.fetch_add(1, std::memory_order_relaxed);
  const double nanos = std::max(0.0, seconds) * 1e9;
  r.sum_nanos.fetch_add(static_cast<std::uint64_t>(std::min(nanos, 1e18)), std::memory_order_relaxed);
}

std::uint64_t HttpMetrics::count(std::size_t route) const noexcept {
  return route < routes_.size() ? routes_[route].count.load(std::memory_order_relaxed) : 0;
}

HttpMetrics::Totals HttpMetrics::totals() const noexcept {
  Totals t;
  for (const Route& r : routes_) {
    t.requests += r.count.load(std::memory_order_relaxed);
    for (std::size_t b = 0; b < t.buckets.size(); ++b) t.buckets[b] += r.buckets[b].load(std::memory_order_relaxed);
  }
  return t;
}

void HttpMetrics::write(PrometheusWriter& out) const {
  out.family("pagekeeper_http_requests_total", "counter", "HTTP requests answered, by route and status code.");
  for (const Route& r : routes_) {
    for (std::size_t i = 0; i < r.by_status.size(); ++i) {
      const auto n = r.by_status[i].load(std::memory_order_relaxed);
      if (n == 0) continue;
      out.sample("pagekeeper_http_requests_total", {{"route", r.name}, {"code", std::to_string(i + 100)}},
                 static_cast<double>(n));
    }
  }
  out.family("pagekeeper_http_request_duration_seconds", "histogram",
             "Time from routing a request to its response being ready, by route.");
  for (const Route& r : routes_) {
    std::uint64_t cumulative = 0;
    for (std::size_t b = 0; b < kBuckets.size(); ++b) {
      cumulative += r.buckets[b].load(std::memory_order_relaxed);
      out.sample("pagekeeper_http_request_duration_seconds_bucket",
                 {{"route", r.name}, {"le", format_number(kBuckets[b])}}, static_cast<double>(cumulative));
    }
    cumulative += r.buckets[kBuckets.size()].load(std::memory_order_relaxed);
    out.sample("pagekeeper_http_request_duration_seconds_bucket", {{"route", r.name}, {"le", "+Inf"}},
               static_cast<double>(cumulative));
    out.sample("pagekeeper_http_request_duration_seconds_sum", {{"route", r.name}},
               static_cast<double>(r.sum_nanos.load(std::memory_order_relaxed)) / 1e9);
    // _count equals the +Inf bucket by construction (both read the same cells).
    out.sample("pagekeeper_http_request_duration_seconds_count", {{"route", r.name}}, static_cast<double>(cumulative));
  }
}

}  // namespace pagekeeper
