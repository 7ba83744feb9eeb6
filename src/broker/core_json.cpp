// The JSON wire form of the core's values (pagekeeper/core_json.hpp documents each shape).

#include "pagekeeper/core_json.hpp"

namespace pagekeeper {

void to_json(nlohmann::json& j, const PoolStats& s) {
  j = nlohmann::json{{"name", s.name},
                     {"entryCount", s.entry_count},
                     {"pinnedCount", s.pinned_count},
                     {"totalBytes", s.total_bytes},
                     {"maxBytes", s.max_bytes},
                     {"pressure", s.pressure},
                     {"hitCount", s.hits},
                     {"missCount", s.misses},
                     {"evictionCount", s.evictions},
                     {"inflightCount", s.inflight},
                     {"rejectedOversize", s.rejected_oversize},
                     {"ghostHits", s.ghost_hits}};
}

void to_json(nlohmann::json& j, const EntrySnapshot& e) {
  j = nlohmann::json{{"key", e.key},
                     {"sizeBytes", e.size_bytes},
                     {"pinnedCount", e.pin_count},
                     {"loadedAt", e.loaded_at_ms},
                     {"lastAccessAt", e.last_access_at_ms},
                     {"accessCount", e.access_count}};
}

void to_json(nlohmann::json& j, const TierExhausted& e) {
  j = nlohmann::json{{"kind", "tierExhausted"},
                     {"tier", e.tier},
                     {"requestedBytes", e.requested_bytes},
                     {"availableBytes", e.available_bytes},
                     {"evictedBytes", e.evicted_bytes}};
}

void to_json(nlohmann::json& j, const DiskCapacity& e) {
  j = nlohmann::json{{"kind", "diskCapacity"},
                     {"tier", e.tier},
                     {"usedBytes", e.used_bytes},
                     {"capacityBytes", e.capacity_bytes},
                     {"projectedBytes", e.projected_bytes},
                     {"maxPressureBasisPoints", e.max_pressure_basis_points}};
}

void to_json(nlohmann::json& j, const TierUnavailable& e) {
  j = nlohmann::json{{"kind", "tierUnavailable"}, {"tier", e.tier}, {"reason", e.reason}};
}

void to_json(nlohmann::json& j, const PagingError& e) {
  if (const auto* exhausted = dynamic_cast<const TierExhausted*>(&e)) {
    to_json(j, *exhausted);
  } else if (const auto* disk = dynamic_cast<const DiskCapacity*>(&e)) {
    to_json(j, *disk);
  } else if (const auto* unavailable = dynamic_cast<const TierUnavailable*>(&e)) {
    to_json(j, *unavailable);
  } else {
    j = nlohmann::json{{"kind", "pagingError"}, {"message", e.what()}};
  }
}

}  // namespace pagekeeper
