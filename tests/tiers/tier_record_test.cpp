// The byte form of vectors in lower tiers: every kind of damage is refused, keys separate
// models that share a name but not an identity.

#include "pagekeeper/tier_record.hpp"

#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "pagekeeper/detail/vector_slab.hpp"
#include "tiers/tier_test_support.hpp"

namespace pagekeeper {
namespace {

using testing::vector_for;

TEST(TierRecord, RoundTripsExactBits) {
  const std::vector<float> values = vector_for(7, 384);
  const std::string record = encode_vector_record("key", values);
  EXPECT_EQ(record.size(), kTierRecordHeaderBytes + 384 * sizeof(float));
  auto decoded = decode_vector_record("key", record, 384);
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(decoded->to_vector(), values);
}

TEST(TierRecord, DecodesIntoASlabOfItsDimensions) {
  VectorSlab slab(16);
  const std::vector<float> values = vector_for(3, 16);
  auto decoded = decode_vector_record("k", encode_vector_record("k", values), 16, &slab);
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(decoded->to_vector(), values);
  EXPECT_EQ(slab.stats().live_vectors, 1u);
}

TEST(TierRecord, EveryFlippedBitIsRefused) {
  const std::string record = encode_vector_record("key", vector_for(1, 8));
  for (std::size_t byte = 0; byte < record.size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string damaged = record;
      damaged[byte] = static_cast<char>(damaged[byte] ^ (1 << bit));
      EXPECT_FALSE(decode_vector_record("key", damaged, 8).has_value()) << byte << ":" << bit;
    }
  }
}

TEST(TierRecord, RefusesTruncatedExtendedWrongKeyAndWrongDimensions) {
  const std::string record = encode_vector_record("key", vector_for(1, 8));
  EXPECT_FALSE(decode_vector_record("key", record.substr(0, record.size() - 4), 8));
  EXPECT_FALSE(decode_vector_record("key", record + "xxxx", 8));
  EXPECT_FALSE(decode_vector_record("key", record.substr(0, 10), 8));
  EXPECT_FALSE(decode_vector_record("key", "", 8));
  EXPECT_FALSE(decode_vector_record("other", record, 8));  // stored under another key
  EXPECT_FALSE(decode_vector_record("key", record, 16));   // another model's length
  EXPECT_FALSE(decode_vector_record("key", record, 0));
}

TEST(TierRecord, RefusesNonFiniteValuesEvenWithAValidChecksum) {
  std::vector<float> values = vector_for(1, 8);
  values[3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_FALSE(decode_vector_record("k", encode_vector_record("k", values), 8));
  values[3] = std::numeric_limits<float>::infinity();
  EXPECT_FALSE(decode_vector_record("k", encode_vector_record("k", values), 8));
}

TEST(TierKey, ModelIdentityAndTextAllSeparateKeys) {
  const ContentHash text = sha256("hello");
  const std::string a = *tier_key("m", identity_digest("gguf:aaaa"), text);
  EXPECT_EQ(a, "m|" + identity_digest("gguf:aaaa") + "|" + to_hex(text));
  EXPECT_EQ(identity_digest("x").size(), 32u);
  EXPECT_NE(a, *tier_key("m", identity_digest("gguf:bbbb"), text));  // same name, other file
  EXPECT_NE(a, *tier_key("n", identity_digest("gguf:aaaa"), text));
  EXPECT_NE(a, *tier_key("m", identity_digest("gguf:aaaa"), sha256("hello ")));
}

TEST(TierKey, AbsurdlyLongModelNameHasNoKey) {
  EXPECT_FALSE(tier_key(std::string(500, 'm'), identity_digest("x"), sha256("t")).has_value());
  EXPECT_TRUE(tier_key(std::string(300, 'm'), identity_digest("x"), sha256("t")).has_value());
}

}  // namespace
}  // namespace pagekeeper
