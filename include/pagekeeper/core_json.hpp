// pagekeeper/core_json.hpp
//
// The JSON wire form of the core's values, as pagekeeperd answers them: camelCase fields, the
// field names of the original system's HTTP API, so its clients keep working. The core
// itself knows nothing of JSON (it is header-only and free of third-party dependencies);
// the broker, the lowest component that speaks JSON (its reports embed pool stats), owns
// these forms.
//
// Thread safety: free functions over values; safe from any thread.

#pragma once

#include <nlohmann/json.hpp>

#include "pagekeeper/errors.hpp"
#include "pagekeeper/resource_pool.hpp"

namespace pagekeeper {

// {name, entryCount, pinnedCount, totalBytes, maxBytes, pressure, hitCount, missCount,
//  evictionCount, inflightCount, rejectedOversize}
void to_json(nlohmann::json& j, const PoolStats& s);
// {key, sizeBytes, pinnedCount, loadedAt, lastAccessAt, accessCount}
void to_json(nlohmann::json& j, const EntrySnapshot& e);

// Typed paging errors, tagged with `kind`:
//   {"kind":"tierExhausted","tier":..,"requestedBytes":..,"availableBytes":..,"evictedBytes":..}
//   {"kind":"diskCapacity","tier":..,"usedBytes":..,"capacityBytes":..,"projectedBytes":..,
//    "maxPressureBasisPoints":..}
//   {"kind":"tierUnavailable","tier":..,"reason":..}
void to_json(nlohmann::json& j, const TierExhausted& e);
void to_json(nlohmann::json& j, const DiskCapacity& e);
void to_json(nlohmann::json& j, const TierUnavailable& e);
// Any PagingError: the form of its concrete type above; {"kind":"pagingError","message":..}
// for a type this file does not know.
void to_json(nlohmann::json& j, const PagingError& e);

}  // namespace pagekeeper
