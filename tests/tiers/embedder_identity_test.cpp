// Embedder identities, which tier keys carry: they separate what changes the vectors.

#include <fstream>

#include <gtest/gtest.h>

#include "pagekeeper/detail/content_hash.hpp"
#include "pagekeeper/lexical_embedder.hpp"
#include "pagekeeper/openai_embedder.hpp"
#include "tiers/tier_test_support.hpp"

namespace pagekeeper {
namespace {

TEST(EmbedderIdentity, LexicalNamesAlgorithmVersionAndDimensions) {
  EXPECT_EQ(LexicalEmbedder().identity(), "lexical/v" + std::to_string(LexicalEmbedder::kAlgorithmVersion) + "/384");
  EXPECT_NE(LexicalEmbedder().identity(), LexicalEmbedder({.dimensions = 17}).identity());
}

TEST(EmbedderIdentity, RemoteNamesEndpointModelAndDimensions) {
  auto identity = [](std::string url, std::string model, std::size_t dims) {
    OpenAIEmbedderConfig config;
    config.base_url = std::move(url);
    config.model = std::move(model);
    config.dimensions = dims;
    config.name = "remote";
    return OpenAIEmbedder(config).identity();
  };
  const std::string base = identity("http://127.0.0.1:9000", "nomic", 768);
  EXPECT_NE(base.find("nomic"), std::string::npos);
  EXPECT_NE(base, identity("http://127.0.0.1:9001", "nomic", 768));
  EXPECT_NE(base, identity("http://127.0.0.1:9000", "bge", 768));
  EXPECT_NE(base, identity("http://127.0.0.1:9000", "nomic", 512));
}

TEST(EmbedderIdentity, DefaultIsEmptySoTheTiersAreBypassed) {
  struct Plain final : Embedder {
    std::string name() const override { return "plain"; }
    std::size_t dimensions() const override { return 1; }
    std::size_t max_batch() const override { return 1; }
    using Embedder::embed;
    std::vector<std::vector<float>> embed(std::span<const std::string_view> texts) override {
      return std::vector<std::vector<float>>(texts.size(), std::vector<float>{1.0f});
    }
  };
  EXPECT_EQ(Plain().identity(), "");
}

TEST(Sha256File, DigestsTheFileInPieces) {
  testing::TempDir dir;
  std::string bytes(3 * (1 << 20) + 12345, '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 31 + 7);
  std::ofstream(dir.path() / "f", std::ios::binary) << bytes;
  EXPECT_EQ(sha256_file((dir.path() / "f").string()), sha256(bytes));
  EXPECT_THROW(sha256_file((dir.path() / "missing").string()), std::runtime_error);
}

}  // namespace
}  // namespace pagekeeper
