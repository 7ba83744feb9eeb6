// pagekeeper/embedding_tiers.hpp
//
// EmbeddingTiers: the embedding cache's SecondaryTiers, i.e. the codec between the pool's
// (EmbeddingKey, EmbeddingVector) and a TierChain's byte keys and records.
//
//   - Keys: tier_key(canonical model, identity digest, text SHA-256) (tier_record.hpp). A
//     model whose description is absent (no identity: an embedder that cannot say what makes
//     its vectors what they are) bypasses the tiers: its keys are neither looked up nor
//     written, so no tier can hand it a vector of another model.
//   - Records: encode_vector_record/decode_vector_record. A record that fails to decode is a
//     miss; the chain counts it and erases it from the tier that held it.
//   - Promotion: a vector found in a tier is also written (in the background) to the tiers
//     above that one, so a host that reads a vector from Redis keeps it on its local disk.
//
// Thread safety: every method may be called concurrently from any thread; `describe` must
// be thread-safe too.

#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pagekeeper/detail/secondary_tiers.hpp"
#include "pagekeeper/embedding_key.hpp"
#include "pagekeeper/embedding_vector.hpp"
#include "pagekeeper/tier_chain.hpp"

namespace pagekeeper {

class VectorSlab;

class EmbeddingTiers final : public SecondaryTiers<EmbeddingKey, EmbeddingVector> {
 public:
  // What the codec needs to know about one model.
  struct Model {
    std::string identity_digest;    // identity_digest(Embedder::identity())
    std::size_t dimensions = 0;     // every vector's length
    VectorSlab* storage = nullptr;  // where decoded vectors are built (null: the heap)
  };
  // The description of a canonical model name, or nullopt to bypass the tiers for it. May
  // throw (then the model's keys are looked up nowhere: misses).
  using Describe = std::function<std::optional<Model>(const std::string& canonical)>;

  EmbeddingTiers(std::shared_ptr<TierChain> chain, Describe describe);

  std::vector<std::optional<EmbeddingVector>> lookup(const std::vector<EmbeddingKey>& keys,
                                                     std::vector<std::size_t>& found_in) override;
  void loaded(const std::vector<EmbeddingKey>& keys, const std::vector<EmbeddingVector>& values) override;

  TierChain& chain() const { return *chain_; }
  const std::shared_ptr<TierChain>& chain_ptr() const { return chain_; }

 private:
  // Tier keys of `keys` (nullopt where the model bypasses the tiers) and each model's
  // description, one describe() call per distinct model.
  struct Keyed {
    std::vector<std::optional<std::string>> tier_keys;
    std::vector<const Model*> models;
    std::vector<Model> owned;
  };
  Keyed key_all(const std::vector<EmbeddingKey>& keys) const;

  std::shared_ptr<TierChain> chain_;
  Describe describe_;
};

}  // namespace pagekeeper
