// What the dashboard reads besides the other commands: system/history, the samples the
// daemon's MetricsHistory keeps (history.hpp), and how the daemon reads its counters for it.

#include <chrono>

#include "server/requests.hpp"
#include "server/daemon_impl.hpp"

namespace pagekeeper {

server::MetricsReading Daemon::Impl::read_metrics() const {
  server::MetricsReading r;
  r.at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
                .count();
  const HttpMetrics::Totals totals = metrics.totals();
  r.requests = totals.requests;
  r.latency_buckets = totals.buckets;
  const BrokerSnapshot snap = broker->snapshot();
  for (const PoolPressure& p : snap.pools) {
    r.pools.push_back(p.stats);
    r.pools.back().name = p.name;
  }
  if (snap.host_memory && snap.host_memory->known()) {
    r.host_used_bytes = snap.host_memory->used_bytes;
    r.host_limit_bytes = snap.host_memory->limit_bytes;
  }
  return r;
}

void Daemon::Impl::install_dashboard_commands() {
  history = std::make_unique<server::MetricsHistory>([this] { return read_metrics(); }, config.history_interval,
                                                     config.history_samples);
  add_command("system/history", false, [this](const HttpRequest& req, HttpResponse& res) {
    parse_command_params(req.body);
    res.set_content(history->to_json().dump(), "application/json");
  });
}

}  // namespace pagekeeper
