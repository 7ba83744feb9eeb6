// llama.cpp embedder throughput on a generated MiniLM-shaped model (bert, 384 hidden, 6 layers,
// 12 heads, 1536 ffn, random F32 weights, the real WordPiece vocabulary), texts of about 21
// tokens, 1 and 2 llama.cpp threads: texts per second (items_per_second) at batch 1 and 32, beside the
// tokenizer alone as the same run's baseline (what an embed costs before any compute).
// Registered only in builds with llama.cpp; the model is generated once, at first use.

#ifdef PAGEKEEPER_HAVE_LLAMA

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "pagekeeper/llama_embedder.hpp"

namespace {

using pagekeeper::LlamaEmbedder;
using pagekeeper::LlamaEmbedderConfig;

constexpr std::size_t kTexts = 64;

// One embedder per thread count, over one generated model file.
LlamaEmbedder& minilm_embedder(int threads) {
  static const std::filesystem::path model = [] {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("pagekeeper-llama-bench-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto path = dir / "minilm.gguf";
    const std::string command = std::string("'") + PAGEKEEPER_GGUF_GEN + "' bert --preset minilm --vocab '" +
                                PAGEKEEPER_LLAMA_VOCAB + "' --out '" + path.string() + "'";
    if (std::system(command.c_str()) != 0) throw std::runtime_error("cannot run " + command);
    static struct Cleanup {
      std::filesystem::path dir;
      ~Cleanup() { std::filesystem::remove_all(dir); }
    } cleanup{dir};
    return path;
  }();
  static std::unique_ptr<LlamaEmbedder> by_threads[3];
  if (!by_threads[threads]) {
    LlamaEmbedderConfig config;
    config.model_path = model;
    config.threads = threads;
    config.max_batch = 32;
    by_threads[threads] = LlamaEmbedder::create(config);
  }
  return *by_threads[threads];
}

// 64 distinct sentences of 19 words: 21 tokens each with [CLS] and [SEP].
const std::vector<std::string>& texts() {
  static const std::vector<std::string> all = [] {
    const char* words[] = {"memory", "budget",  "cache", "model",  "vector", "page",    "host",
                           "pressure", "adapter", "query", "server", "batch",  "thread", "token"};
    std::vector<std::string> out;
    for (std::size_t i = 0; i < kTexts; ++i) {
      std::string text = "the";
      for (std::size_t w = 0; w < 18; ++w) text += std::string(" ") + words[(i * 5 + w * 3) % 14];
      out.push_back(text);
    }
    return out;
  }();
  return all;
}

void BM_LlamaEmbedMiniLm(benchmark::State& state) {
  LlamaEmbedder& embedder = minilm_embedder(static_cast<int>(state.range(1)));
  const auto batch = static_cast<std::size_t>(state.range(0));
  std::size_t next = 0;
  for (auto _ : state) {
    if (next + batch > kTexts) next = 0;
    auto vectors = embedder.embed(std::span(texts().data() + next, batch));
    benchmark::DoNotOptimize(vectors.data());
    next += batch;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch));
  state.counters["tokens_per_text"] =
      static_cast<double>(embedder.tokenize(texts()[0], true).size());
}
// Arguments: batch size, llama.cpp threads.
BENCHMARK(BM_LlamaEmbedMiniLm)
    ->ArgNames({"batch", "threads"})
    ->Args({1, 1})
    ->Args({32, 1})
    ->Args({1, 2})
    ->Args({32, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Baseline: the tokenizer alone, per text.
void BM_LlamaTokenizeOnly(benchmark::State& state) {
  LlamaEmbedder& embedder = minilm_embedder(1);
  std::size_t next = 0;
  for (auto _ : state) {
    auto tokens = embedder.tokenize(texts()[next++ % kTexts], true);
    benchmark::DoNotOptimize(tokens.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_LlamaTokenizeOnly)->Unit(benchmark::kMicrosecond);

}  // namespace

#endif  // PAGEKEEPER_HAVE_LLAMA
