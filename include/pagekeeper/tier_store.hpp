// pagekeeper/tier_store.hpp
//
// TierStore: a tier below a process's memory that keeps byte records under byte keys (the
// local LMDB tier, the Redis fleet tier). The pool's tier chain (pagekeeper/detail/
// tier_chain.hpp) asks the stores below it, in order, for a call's missing keys at once and
// writes loaded values down to them in the background; a store never sees a value type,
// only the bytes its codec made (pagekeeper/tier_record.hpp for embedding vectors).
//
// Failures: a store throws (TierUnavailable, or any std::exception) when it cannot answer;
// the chain counts that, skips the store for that call and, after repeated failures, stops
// asking it for a while (a failing store never fails a request).
//
// Thread safety: every method of every implementation may be called concurrently from any
// thread.

#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pagekeeper {

class TierStore {
 public:
  virtual ~TierStore() = default;

  // Stable name, used in metrics and logs ("disk", "redis").
  virtual std::string name() const = 0;

  // The record of each key, in order; nullopt for a key the store does not hold.
  virtual std::vector<std::optional<std::string>> get_many(std::span<const std::string> keys) = 0;

  // Stores (or replaces) records. May drop some it has no room for (counted by the store).
  virtual void put_many(std::span<const std::pair<std::string, std::string>> records) = 0;

  // Removes a record (a corrupt one the caller found); absent keys are ignored.
  virtual void erase(std::string_view key) = 0;
};

}  // namespace pagekeeper
