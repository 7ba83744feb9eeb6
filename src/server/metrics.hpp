// server/metrics.hpp (internal to the server component)
//
// Metrics of pagekeeperd in the Prometheus text exposition format (version 0.0.4):
//   * HttpMetrics: request counts by route and status, and a latency histogram per route.
//     Routes are a fixed set declared up front (route templates such as
//     "/api/embedding/generate", plus "other" for everything unmatched), so a client cannot
//     grow the label space by requesting random paths.
//   * PrometheusWriter: writes metric families (# HELP, # TYPE, samples) with label values
//     escaped as the format requires; used for the pool and broker gauges at scrape time.
//
// Thread safety: HttpMetrics::observe() is lock-free (relaxed atomics) and may run from any
// number of threads; add_route() must happen before the first observe() (the route table is
// then immutable). PrometheusWriter is a single-threaded builder.

#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <initializer_list>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pagekeeper {

class PrometheusWriter {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;
  // Starts a family; `type` is "counter", "gauge" or "histogram".
  void family(std::string_view name, std::string_view type, std::string_view help);
  // One sample line `name{labels} value`.
  void sample(std::string_view name, const Labels& labels, double value);
  std::string str() const { return out_.str(); }

  // Escapes a label value (backslash, double quote, newline).
  static std::string escape(std::string_view value);

 private:
  std::ostringstream out_;
};

class HttpMetrics {
 public:
  // Upper bounds of the latency buckets, in seconds (+Inf is implicit).
  static constexpr std::array<double, 16> kBuckets = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                                      0.005,   0.01,   0.025,   0.05,   0.1,   0.25,
                                                      0.5,     1.0,    2.5,     10.0};
  static constexpr std::size_t kOtherRoute = 0;

  HttpMetrics();
  // Declares a route and returns its index. Requires: no observe() has run yet.
  std::size_t add_route(std::string route);
  // Records one finished request. `route` is an index from add_route() (or kOtherRoute);
  // `status` outside [100, 599] is counted as 599.
  void observe(std::size_t route, int status, double seconds) noexcept;
  // Total requests recorded for `route` (all statuses).
  std::uint64_t count(std::size_t route) const noexcept;
  // Requests and their latency bucket counts (per bucket, not cumulative; last: +Inf),
  // summed over every route.
  struct Totals {
    std::uint64_t requests = 0;
    std::array<std::uint64_t, kBuckets.size() + 1> buckets{};
  };
  Totals totals() const noexcept;
  // Appends the families pagekeeper_http_requests_total and
  // pagekeeper_http_request_duration_seconds.
  void write(PrometheusWriter& out) const;

 private:
  struct Route {
    explicit Route(std::string n) : name(std::move(n)) {}
    std::string name;
    std::array<std::atomic<std::uint64_t>, 500> by_status{};  // index status - 100
    std::array<std::atomic<std::uint64_t>, kBuckets.size() + 1> buckets{};  // last: +Inf
    std::atomic<std::uint64_t> count{0};
    std::atomic<std::uint64_t> sum_nanos{0};
  };
  std::deque<Route> routes_;  // deque: stable addresses while routes are added
};

}  // namespace pagekeeper
