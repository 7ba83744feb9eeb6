// A GGUF model's identity, which its tier keys carry, is the digest of the file's bytes (with
// the settings that change its vectors): another file under the same name never reads this
// one's vectors from a shared tier, and the same file at another path does.

#include <gtest/gtest.h>

#include "embedding/llama_test_support.hpp"
#include "pagekeeper/detail/content_hash.hpp"
#include "pagekeeper/llama_embedder.hpp"

namespace pagekeeper {
namespace {

TEST(LlamaIdentity, IsTheModelFilesDigest) {
  PAGEKEEPER_REQUIRE_LLAMA();
#ifdef PAGEKEEPER_HAVE_LLAMA
  const std::filesystem::path mean = llama_test::tiny_model();
  const std::filesystem::path cls = llama_test::tiny_cls_model();
  const std::filesystem::path copy = llama_test::scratch_dir() / "copy-of-tiny-mean.gguf";
  std::filesystem::copy_file(mean, copy, std::filesystem::copy_options::overwrite_existing);
  auto identity = [](const std::filesystem::path& path) {
    LlamaEmbedderConfig config;
    config.model_path = path;
    config.name = "same-name";
    return LlamaEmbedder::create(config)->identity();
  };
  const std::string a = identity(mean);
  EXPECT_EQ(a.rfind("gguf/" + to_hex(sha256_file(mean.string())) + "/", 0), 0u) << a;
  EXPECT_NE(a, identity(cls));   // another file under the same name
  EXPECT_EQ(a, identity(copy));  // the same bytes elsewhere
#endif
}

}  // namespace
}  // namespace pagekeeper
