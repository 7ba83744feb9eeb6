#include "pagekeeper/resource_pool.hpp"

#include <nlohmann/json.hpp>

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
                     {"rejectedOversize", s.rejected_oversize}};
}

void to_json(nlohmann::json& j, const EntrySnapshot& e) {
  j = nlohmann::json{{"key", e.key},
                     {"sizeBytes", e.size_bytes},
                     {"pinnedCount", e.pin_count},
                     {"loadedAt", e.loaded_at_ms},
                     {"lastAccessAt", e.last_access_at_ms},
                     {"accessCount", e.access_count}};
}

}  // namespace pagekeeper
