// pagekeeper/detail/secondary_tiers.hpp
//
// The pool's seam to the tiers below memory (in the spirit of RocksDB's SecondaryCache and
// CacheLib's NVM cache). A pool configured with SecondaryTiers asks them, on a miss, for all
// the keys its call claimed at once, before calling its loader: values found below are
// returned to every caller and promoted into memory like loaded ones; only the rest reach the
// loader, and what it produced is handed back to the tiers to be written down. Both steps run
// inside the pool's in-flight slots, so single flight covers the whole chain: one tier lookup
// and at most one loader call per key, however many callers wait.
//
// Implementations (pagekeeper/tier_chain.hpp) must never fail or block a request on a tier:
// lookup() swallows tier failures (as misses) and written() only queues.
//
// Thread safety: implementations are called concurrently from any thread.

#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace pagekeeper {

// Most tiers whose hits a call's accounting tells apart (LoadManyStats::from_tier).
inline constexpr std::size_t kMaxSecondaryTiers = 4;

template <class K, class V>
class SecondaryTiers {
 public:
  virtual ~SecondaryTiers() = default;

  // One entry per key, in order: the value a tier below holds, or nullopt. `keys` are
  // distinct. For each key found, `found_in` (resized to keys.size()) receives the index of
  // the tier that held it, nearest first. Never throws for a tier's failure (that is a
  // miss, counted by the tiers).
  virtual std::vector<std::optional<V>> lookup(const std::vector<K>& keys,
                                               std::vector<std::size_t>& found_in) = 0;

  // Values the loader produced for `keys` (same order), to be written down in the
  // background. Must not block on a tier; never throws for a tier's failure.
  virtual void loaded(const std::vector<K>& keys, const std::vector<V>& values) = 0;
};

namespace pool_detail {

// The values of `keys` (distinct, claimed by the caller's in-flight slots): from `tiers` where
// they hold them, the rest from `loader(const std::vector<K>&) -> std::vector<V>`, which is
// called only for the keys no tier held (not at all when they held every one). `from_tiers`
// receives how many came from the tiers, `from_tier[i]` how many from tier i (tiers beyond
// kMaxSecondaryTiers counted in the last). The loader's exceptions propagate (nothing is
// written down then); a loader that returns the wrong number of values is a
// std::length_error.
template <class K, class V, class BatchLoader>
std::vector<V> load_through(SecondaryTiers<K, V>& tiers, const std::vector<K>& keys,
                            BatchLoader& loader, std::size_t& from_tiers,
                            std::array<std::size_t, kMaxSecondaryTiers>& from_tier) {
  std::vector<std::size_t> found_in;
  std::vector<std::optional<V>> found = tiers.lookup(keys, found_in);
  found.resize(keys.size());
  found_in.resize(keys.size());
  std::vector<K> missing;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (!found[i]) {
      missing.push_back(keys[i]);
    } else {
      ++from_tier[std::min(found_in[i], kMaxSecondaryTiers - 1)];
    }
  }
  from_tiers = keys.size() - missing.size();
  std::vector<V> values;
  values.reserve(keys.size());
  if (missing.size() == keys.size()) {
    values = loader(static_cast<const std::vector<K>&>(keys));
    if (values.size() == keys.size()) tiers.loaded(keys, values);
    return values;  // a wrong count: the pool refuses it with its own message
  }
  std::vector<V> produced;
  if (!missing.empty()) {
    produced = loader(static_cast<const std::vector<K>&>(missing));
    if (produced.size() != missing.size()) {
      throw std::length_error("batch loader returned " + std::to_string(produced.size()) +
                              " values for " + std::to_string(missing.size()) + " keys");
    }
    tiers.loaded(missing, produced);
  }
  std::size_t next = 0;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    values.push_back(found[i] ? std::move(*found[i]) : std::move(produced[next++]));
  }
  return values;
}

}  // namespace pool_detail
}  // namespace pagekeeper
