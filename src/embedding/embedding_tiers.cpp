// EmbeddingTiers: embedding vectors through a TierChain.

#include "pagekeeper/embedding_tiers.hpp"

#include <algorithm>
#include <stdexcept>
#include <utility>

#include "pagekeeper/tier_record.hpp"

namespace pagekeeper {

EmbeddingTiers::EmbeddingTiers(std::shared_ptr<TierChain> chain, Describe describe)
    : chain_(std::move(chain)), describe_(std::move(describe)) {
  if (!chain_ || !describe_) throw std::invalid_argument("EmbeddingTiers: null chain or describe");
}

EmbeddingTiers::Keyed EmbeddingTiers::key_all(const std::vector<EmbeddingKey>& keys) const {
  Keyed k;
  k.tier_keys.resize(keys.size());
  k.models.resize(keys.size(), nullptr);
  k.owned.reserve(keys.size());  // never reallocates: pointers into it stay valid
  std::vector<std::pair<const std::string*, const Model*>> described;  // few models per call
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const std::string& model = keys[i].model;
    const Model* m = nullptr;
    auto it = std::find_if(described.begin(), described.end(),
                           [&](const auto& d) { return *d.first == model; });
    if (it != described.end()) {
      m = it->second;
    } else {
      std::optional<Model> d;
      try {
        d = describe_(model);
      } catch (const std::exception&) {
        d.reset();  // an embedder that cannot be described: its keys bypass the tiers
      }
      if (d && !d->identity_digest.empty() && d->dimensions > 0) m = &k.owned.emplace_back(std::move(*d));
      described.emplace_back(&model, m);
    }
    if (m == nullptr) continue;
    k.models[i] = m;
    k.tier_keys[i] = tier_key(model, m->identity_digest, keys[i].content_hash);
  }
  return k;
}

std::vector<std::optional<EmbeddingVector>> EmbeddingTiers::lookup(const std::vector<EmbeddingKey>& keys,
                                                                   std::vector<std::size_t>& found_in) {
  std::vector<std::optional<EmbeddingVector>> out(keys.size());
  found_in.assign(keys.size(), 0);
  Keyed k = key_all(keys);
  std::vector<std::string> asked;
  std::vector<std::size_t> positions;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (!k.tier_keys[i]) continue;
    asked.push_back(*k.tier_keys[i]);
    positions.push_back(i);
  }
  if (asked.empty()) return out;
  std::vector<TierChain::Found> found = chain_->lookup(asked);
  // Promotions, by the tier that held them (written to the tiers above it).
  std::vector<std::vector<std::pair<std::string, std::string>>> promote(chain_->size());
  for (std::size_t j = 0; j < found.size(); ++j) {
    if (!found[j].record) continue;
    const std::size_t i = positions[j];
    const Model& m = *k.models[i];
    out[i] = decode_vector_record(asked[j], *found[j].record, m.dimensions, m.storage);
    found_in[i] = found[j].tier;
    if (!out[i]) {
      chain_->corrupt(found[j].tier, std::move(asked[j]));
    } else if (found[j].tier > 0) {
      promote[found[j].tier].emplace_back(std::move(asked[j]), std::move(*found[j].record));
    }
  }
  for (std::size_t t = 1; t < promote.size(); ++t) chain_->write(std::move(promote[t]), t);
  return out;
}

void EmbeddingTiers::loaded(const std::vector<EmbeddingKey>& keys,
                            const std::vector<EmbeddingVector>& values) {
  Keyed k = key_all(keys);
  std::vector<std::pair<std::string, std::string>> records;
  records.reserve(keys.size());
  for (std::size_t i = 0; i < keys.size() && i < values.size(); ++i) {
    if (!k.tier_keys[i] || values[i].size() != k.models[i]->dimensions) continue;
    std::string record = encode_vector_record(*k.tier_keys[i], values[i].values());
    records.emplace_back(std::move(*k.tier_keys[i]), std::move(record));
  }
  chain_->write(std::move(records), chain_->size());
}

}  // namespace pagekeeper
