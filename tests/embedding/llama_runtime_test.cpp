// llama.cpp runtime: model files that are missing, empty, truncated, corrupt, not GGUF or
// carry a duplicate vocabulary token give a clear error and the process lives; the generator
// is deterministic; LoRA adapters load, change the output exactly as merged weights predict,
// and can be removed again.

#include "llama/llama_runtime.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "embedding/llama_test_support.hpp"
#include "pagekeeper/errors.hpp"
#include "pagekeeper/llama_embedder.hpp"

namespace pagekeeper {
namespace {

class LlamaRuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override { PAGEKEEPER_REQUIRE_LLAMA(); }
};

#ifdef PAGEKEEPER_HAVE_LLAMA

std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::filesystem::path write_bytes(const std::string& name, const std::string& bytes) {
  const auto path = llama_test::scratch_dir() / name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

// Loading `path` must fail with an EmbedderError whose message contains `expected`; then a
// valid model must still load and embed (the process and llama.cpp are intact).
void expect_refused(const std::filesystem::path& path, const std::string& expected) {
  LlamaEmbedderConfig config;
  config.model_path = path;
  try {
    LlamaEmbedder::create(config);
    ADD_FAILURE() << path << " was accepted";
  } catch (const EmbedderError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(expected), std::string::npos) << message;
    EXPECT_NE(message.find(path.string()), std::string::npos) << message;
  }
  EXPECT_THROW(LlamaModel::load(path), LlamaError);
  config.model_path = llama_test::tiny_model();
  const std::vector<std::string> text = {"still alive"};
  EXPECT_EQ(LlamaEmbedder::create(config)->embed(text).size(), 1u);
}

TEST_F(LlamaRuntimeTest, MissingModelFile) {
  expect_refused(llama_test::scratch_dir() / "no-such-model.gguf", "does not exist");
}

TEST_F(LlamaRuntimeTest, DirectoryInsteadOfFile) {
  expect_refused(llama_test::scratch_dir(), "not a regular file");
}

TEST_F(LlamaRuntimeTest, EmptyModelFile) {
  expect_refused(write_bytes("empty.gguf", ""), "truncated");
}

TEST_F(LlamaRuntimeTest, NotAGgufFile) {
  expect_refused(write_bytes("text.gguf", "this is a text file, not a model at all\n"),
                 "not a GGUF file");
}

TEST_F(LlamaRuntimeTest, TruncatedModelFile) {
  const std::string bytes = read_bytes(llama_test::tiny_model());
  // Cut inside the tensor data: the header parses, the tensors do not fit.
  expect_refused(write_bytes("cut-data.gguf", bytes.substr(0, bytes.size() - 1000)), "truncated");
  // Cut inside the header (the vocabulary strings).
  expect_refused(write_bytes("cut-header.gguf", bytes.substr(0, 4096)), "corrupt or truncated");
}

TEST_F(LlamaRuntimeTest, CorruptModelHeader) {
  std::string bytes = read_bytes(llama_test::tiny_model());
  // Tensor count and key/value count (bytes 8..23) set to absurd values.
  for (std::size_t i = 8; i < 24; ++i) bytes[i] = '\xFF';
  expect_refused(write_bytes("corrupt-counts.gguf", bytes), "corrupt or truncated");
  std::string garbage = read_bytes(llama_test::tiny_model()).substr(0, 4);
  for (int i = 0; i < 5000; ++i) garbage.push_back(static_cast<char>((i * 131 + 7) & 0xFF));
  expect_refused(write_bytes("corrupt-garbage.gguf", garbage), "corrupt or truncated");
}

TEST_F(LlamaRuntimeTest, DuplicateVocabularyTokenIsRefusedInsteadOfAborting) {
  // Rewrite the tiny model with token 2000 repeated at 2001 (llama.cpp would GGML_ASSERT).
  gguf_init_params params{};
  ggml_context* data = nullptr;
  params.no_alloc = false;
  params.ctx = &data;
  gguf_context* src = gguf_init_from_file(llama_test::tiny_model().c_str(), params);
  ASSERT_NE(src, nullptr);
  gguf_context* dst = gguf_init_empty();
  gguf_set_kv(dst, src);
  const auto key = gguf_find_key(src, "tokenizer.ggml.tokens");
  std::vector<const char*> tokens(gguf_get_arr_n(src, key));
  for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = gguf_get_arr_str(src, key, i);
  tokens[2001] = tokens[2000];
  gguf_set_arr_str(dst, "tokenizer.ggml.tokens", tokens.data(), tokens.size());
  for (std::int64_t i = 0; i < gguf_get_n_tensors(src); ++i) {
    gguf_add_tensor(dst, ggml_get_tensor(data, gguf_get_tensor_name(src, i)));
  }
  const auto path = llama_test::scratch_dir() / "duplicate-token.gguf";
  ASSERT_TRUE(gguf_write_to_file(dst, path.c_str(), false));
  gguf_free(dst);
  gguf_free(src);
  ggml_free(data);
  expect_refused(path, "duplicate vocabulary token");
}

TEST_F(LlamaRuntimeTest, ModelFacts) {
  const auto model = LlamaModel::load(llama_test::tiny_model());
  EXPECT_EQ(model->architecture(), "bert");
  EXPECT_EQ(model->embedding_length(), 32);
  EXPECT_EQ(model->trained_context(), 512);
  EXPECT_TRUE(model->bidirectional());
  EXPECT_EQ(model->metadata("bert.pooling_type"), "1");
  EXPECT_EQ(model->metadata("no.such.key"), "");
  // The tensors: token embeddings alone are 30522 x 32 floats.
  EXPECT_GT(model->size_bytes(), 30522u * 32u * 4u);
  EXPECT_LT(model->size_bytes(), std::filesystem::file_size(llama_test::tiny_model()));
  const GgufFileInfo info = validate_gguf_file(llama_test::tiny_model());
  EXPECT_EQ(info.architecture, "bert");
  EXPECT_EQ(info.tensor_count, 5 + 16 * 2);
}

TEST_F(LlamaRuntimeTest, GeneratorIsDeterministic) {
  const auto a = llama_test::generate("det-a.gguf", "bert " + llama_test::vocab_arg());
  const auto b = llama_test::generate("det-b.gguf", "bert " + llama_test::vocab_arg());
  EXPECT_EQ(read_bytes(a), read_bytes(b));
  const auto c = llama_test::generate("det-c.gguf", "bert " + llama_test::vocab_arg() + " --seed 5");
  EXPECT_NE(read_bytes(a), read_bytes(c));
  const auto la = llama_test::generate("det-la.gguf", "lora --base '" + a.string() + "'");
  const auto lb = llama_test::generate("det-lb.gguf", "lora --base '" + a.string() + "'");
  EXPECT_EQ(read_bytes(la), read_bytes(lb));
}

std::filesystem::path adapter(const std::string& name, const std::string& args) {
  return llama_test::generate(name, "lora --base '" + llama_test::tiny_model().string() + "' " + args);
}

TEST_F(LlamaRuntimeTest, LoraAdaptersChangeTheOutputAsMergedWeightsPredict) {
  const auto model = LlamaModel::load(llama_test::tiny_model());
  const auto path_q = adapter("lora-q.gguf", "--targets attn_q,attn_v --seed 1");
  const auto path_ffn = adapter("lora-ffn.gguf", "--targets ffn_up,ffn_down --rank 2 --seed 2");
  const auto lora_q = LlamaLoraAdapter::load(model, path_q);
  const auto lora_ffn = LlamaLoraAdapter::load(model, path_ffn);
  EXPECT_EQ(lora_q->size_bytes(), 2u * 2u * (32u * 4u + 4u * 32u) * 4u);
  EXPECT_EQ(lora_q->model(), model);

  LlamaEmbedderConfig config;
  config.threads = 2;
  auto embedder = LlamaEmbedder::create(model, config);
  const std::vector<std::string> texts = {"Hello world", "adapters page through the pool"};
  const auto base = embedder->embed(texts);

  embedder->set_adapters({{lora_q, 1.0f}, {lora_ffn, 0.5f}});
  const auto both = embedder->embed(texts);
  llama_test::BertReference merged(llama_test::tiny_model());
  merged.apply_lora(path_q, 1.0);
  merged.apply_lora(path_ffn, 0.5);
  for (std::size_t i = 0; i < texts.size(); ++i) {
    EXPECT_GT(llama_test::max_abs_diff(both[i], base[i]), 1e-3) << "adapters had no effect";
    EXPECT_LT(llama_test::max_abs_diff(both[i], merged.embed(embedder->tokenize(texts[i], true))),
              1e-3);
  }

  // Drop one adapter (as the pager does when it evicts it): the other still applies.
  embedder->set_adapters({{lora_ffn, 0.5f}});
  const auto ffn_only = embedder->embed(texts);
  llama_test::BertReference ffn_ref(llama_test::tiny_model());
  ffn_ref.apply_lora(path_ffn, 0.5);
  EXPECT_LT(llama_test::max_abs_diff(ffn_only[0], ffn_ref.embed(embedder->tokenize(texts[0], true))),
            1e-3);

  embedder->set_adapters({});
  const auto again = embedder->embed(texts);
  EXPECT_LT(llama_test::max_abs_diff(again[0], base[0]), 1e-6);
}

TEST_F(LlamaRuntimeTest, MismatchedAdaptersAreRefused) {
  const auto model = LlamaModel::load(llama_test::tiny_model());
  // A model file is not an adapter.
  EXPECT_THROW(LlamaLoraAdapter::load(model, llama_test::tiny_model()), LlamaError);
  // An adapter whose shapes do not fit the model (made for the MiniLM-shaped one).
  const auto wide = llama_test::generate("wide.gguf", "bert " + llama_test::vocab_arg() +
                                                         " --hidden 64 --heads 4 --ffn 128");
  const auto wide_lora = llama_test::generate("wide-lora.gguf", "lora --base '" + wide.string() + "'");
  EXPECT_THROW(LlamaLoraAdapter::load(model, wide_lora), LlamaError);
  // An adapter of another model object cannot be applied to this embedder.
  const auto other = LlamaModel::load(llama_test::tiny_model());
  const auto foreign = LlamaLoraAdapter::load(other, adapter("lora-q.gguf", "--targets attn_q,attn_v --seed 1"));
  auto embedder = LlamaEmbedder::create(model, {});
  EXPECT_THROW(embedder->set_adapters({{foreign, 1.0f}}), EmbedderError);
  EXPECT_THROW(LlamaLoraAdapter::load(model, llama_test::scratch_dir() / "missing-lora.gguf"),
               LlamaError);
}

#endif  // PAGEKEEPER_HAVE_LLAMA

}  // namespace
}  // namespace pagekeeper
