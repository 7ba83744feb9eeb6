// The tiers below the embedding cache in /metrics: per-tier counters, lookup latency
// histograms, the local tier's bytes, and the texts each model's embedder was sent.

#pragma once

#include "pagekeeper/embedding_service.hpp"
#include "server/metrics.hpp"
#include "pagekeeper/tiers_config.hpp"

namespace pagekeeper::server {

// Appends pagekeeper_embedder_texts_total{model} and, when tiers are configured,
// pagekeeper_tier_{hits,misses,errors,corrupt,skipped,writes,dropped}_total{tier},
// pagekeeper_tier_{read,written}_bytes_total{tier}, pagekeeper_tier_open{tier},
// pagekeeper_tier_lookup_duration_seconds{tier} and pagekeeper_tier_disk_{used,max}_bytes.
void write_tier_metrics(PrometheusWriter& out, const Tiers& tiers, const EmbeddingService& embeddings);

}  // namespace pagekeeper::server
