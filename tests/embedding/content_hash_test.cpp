#include "pagekeeper/detail/content_hash.hpp"

#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "pagekeeper/embedding_key.hpp"

namespace pagekeeper {
namespace {

// FIPS 180-2 / NIST test vectors.
TEST(ContentHash, MatchesKnownSha256Vectors) {
  EXPECT_EQ(to_hex(sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(to_hex(sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(to_hex(sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(to_hex(sha256(std::string(1000000, 'a'))),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(ContentHash, HashesExactBytesIncludingNulAndUtf8) {
  const std::string with_nul("a\0b", 3);
  EXPECT_NE(sha256(with_nul), sha256("a"));
  EXPECT_NE(sha256("caf\xc3\xa9"), sha256("cafe"));
  EXPECT_NE(sha256("Text"), sha256("text"));  // no normalization
}

TEST(ContentHash, SameResultFromManyThreads) {
  const ContentHash expected = sha256("concurrent hashing");
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        if (sha256("concurrent hashing") != expected) ++mismatches[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int m : mismatches) EXPECT_EQ(m, 0);
}

TEST(EmbeddingKey, EqualityAndHashAreNamespacedByModel) {
  const EmbeddingKey a = EmbeddingKey::of("lexical", "hello");
  const EmbeddingKey b = EmbeddingKey::of("lexical", "hello");
  const EmbeddingKey other_model = EmbeddingKey::of("openai:x", "hello");
  const EmbeddingKey other_text = EmbeddingKey::of("lexical", "hello!");
  EXPECT_EQ(a, b);
  EXPECT_EQ(std::hash<EmbeddingKey>{}(a), std::hash<EmbeddingKey>{}(b));
  EXPECT_NE(a, other_model);
  EXPECT_NE(a, other_text);
  EXPECT_NE(std::hash<EmbeddingKey>{}(a), std::hash<EmbeddingKey>{}(other_text));
  EXPECT_EQ(a.to_string(),
            "lexical:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
}

}  // namespace
}  // namespace pagekeeper
