// Tier metrics in the Prometheus text format (see tier_metrics.hpp).

#include "server/tier_metrics.hpp"

#include <string>

namespace pagekeeper::server {

void write_tier_metrics(PrometheusWriter& out, const Tiers& tiers, const EmbeddingService& embeddings) {
  out.family("pagekeeper_embedder_texts_total", "counter",
             "Texts sent to an embedder (not served by memory or a lower tier), by model.");
  for (const auto& [model, texts] : embeddings.embedded_texts()) {
    out.sample("pagekeeper_embedder_texts_total", {{"model", model}}, static_cast<double>(texts));
  }
  if (!tiers.chain) return;
  const std::vector<TierChain::TierStats> stats = tiers.chain->stats();
  struct Counter {
    const char* name;
    const char* help;
    std::uint64_t TierChain::TierStats::*field;
  };
  static constexpr Counter kCounters[] = {
      {"pagekeeper_tier_hits_total", "Keys a tier below memory held when asked.", &TierChain::TierStats::hits},
      {"pagekeeper_tier_misses_total", "Keys a tier below memory was asked for and did not hold.",
       &TierChain::TierStats::misses},
      {"pagekeeper_tier_errors_total", "Lookups and write batches of a tier that failed.",
       &TierChain::TierStats::errors},
      {"pagekeeper_tier_corrupt_total", "Records refused by their checksum or format, then erased.",
       &TierChain::TierStats::corrupt},
      {"pagekeeper_tier_skipped_total", "Lookups and write batches bypassed while the tier's breaker was open.",
       &TierChain::TierStats::skipped},
      {"pagekeeper_tier_writes_total", "Records written down to the tier.", &TierChain::TierStats::writes},
      {"pagekeeper_tier_dropped_total", "Records not written down: queue full or breaker open.",
       &TierChain::TierStats::dropped},
      {"pagekeeper_tier_read_bytes_total", "Record bytes read from the tier.", &TierChain::TierStats::bytes_read},
      {"pagekeeper_tier_written_bytes_total", "Key and record bytes written to the tier.",
       &TierChain::TierStats::bytes_written},
  };
  for (const Counter& c : kCounters) {
    out.family(c.name, "counter", c.help);
    for (const TierChain::TierStats& s : stats) out.sample(c.name, {{"tier", s.name}}, static_cast<double>(s.*c.field));
  }
  out.family("pagekeeper_tier_open", "gauge", "1 while the tier's circuit breaker bypasses it.");
  for (const TierChain::TierStats& s : stats) out.sample("pagekeeper_tier_open", {{"tier", s.name}}, s.open ? 1.0 : 0.0);
  out.family("pagekeeper_tier_lookup_duration_seconds", "histogram", "Time of one batched lookup in a tier.");
  for (const TierChain::TierStats& s : stats) {
    std::uint64_t cumulative = 0;
    for (std::size_t b = 0; b < TierChain::kLatencyBuckets.size(); ++b) {
      cumulative += s.latency[b];
      out.sample("pagekeeper_tier_lookup_duration_seconds_bucket",
                 {{"tier", s.name}, {"le", std::to_string(TierChain::kLatencyBuckets[b])}},
                 static_cast<double>(cumulative));
    }
    cumulative += s.latency.back();
    out.sample("pagekeeper_tier_lookup_duration_seconds_bucket", {{"tier", s.name}, {"le", "+Inf"}},
               static_cast<double>(cumulative));
    out.sample("pagekeeper_tier_lookup_duration_seconds_sum", {{"tier", s.name}}, s.latency_sum_seconds);
    out.sample("pagekeeper_tier_lookup_duration_seconds_count", {{"tier", s.name}}, static_cast<double>(cumulative));
  }
  if (tiers.disk) {
    const LmdbTier::Stats d = tiers.disk->tier_stats();
    out.family("pagekeeper_tier_disk_used_bytes", "gauge", "Bytes of keys and records in the local tier.");
    out.sample("pagekeeper_tier_disk_used_bytes", {{"tier", tiers.disk->name()}}, static_cast<double>(d.bytes));
    out.family("pagekeeper_tier_disk_max_bytes", "gauge", "Byte budget of the local tier.");
    out.sample("pagekeeper_tier_disk_max_bytes", {{"tier", tiers.disk->name()}}, static_cast<double>(d.max_bytes));
  }
}

}  // namespace pagekeeper::server
