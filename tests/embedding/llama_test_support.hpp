// Test support for the llama.cpp backend: models generated at run time with the project's
// pagekeeper-gguf-gen tool, and a naive reference forward pass of a `bert` GGUF model
// (embedding lookup + position + token type, layer norms, multi-head attention, GELU FFN,
// pooling, L2 normalization) in double precision, written from the architecture's definition
// and reading the same weights with ggml's GGUF reader. It optionally merges LoRA adapters
// (W + alpha/rank * B A) so adapter application can be checked the same way.
//
// Only meaningful in builds with llama.cpp (PAGEKEEPER_HAVE_LLAMA); tests call
// PAGEKEEPER_REQUIRE_LLAMA() first, which skips them (with the reason) in builds without it.

#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unistd.h>
#include <vector>

#ifdef PAGEKEEPER_HAVE_LLAMA
#include <ggml.h>
#include <gguf.h>
#endif

#ifdef PAGEKEEPER_HAVE_LLAMA
#define PAGEKEEPER_REQUIRE_LLAMA() \
  do {                             \
  } while (false)
#else
#define PAGEKEEPER_REQUIRE_LLAMA()                                                             \
  GTEST_SKIP() << "this build has no llama.cpp backend (run scripts/fetch-llama.sh and "       \
                  "reconfigure to run it)"
#endif

#ifdef PAGEKEEPER_HAVE_LLAMA

namespace pagekeeper::llama_test {

// A folder private to this test process, removed at exit.
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() /
             ("pagekeeper-llama-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    static struct Cleanup {
      std::filesystem::path path;
      ~Cleanup() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
      }
    } cleanup{d};
    return d;
  }();
  return dir;
}

// Runs `pagekeeper-gguf-gen <args> --out <scratch>/<file>` once per process and file name.
inline std::filesystem::path generate(const std::string& file, const std::string& args) {
  static std::mutex mutex;
  static std::map<std::string, std::filesystem::path> made;
  std::lock_guard lock(mutex);
  if (auto it = made.find(file); it != made.end()) return it->second;
  const auto out = scratch_dir() / file;
  const std::string command = std::string("'") + PAGEKEEPER_GGUF_GEN + "' " + args + " --out '" +
                              out.string() + "'";
  if (std::system(command.c_str()) != 0) {
    throw std::runtime_error("model generation failed: " + command);
  }
  made[file] = out;
  return out;
}

inline std::string vocab_arg() { return std::string("--vocab '") + PAGEKEEPER_LLAMA_VOCAB + "'"; }

// The tiny bert model (2 layers, hidden 32, 4 heads, ffn 64, mean pooling).
inline std::filesystem::path tiny_model() { return generate("tiny-mean.gguf", "bert " + vocab_arg()); }
inline std::filesystem::path tiny_cls_model() {
  return generate("tiny-cls.gguf", "bert " + vocab_arg() + " --pooling cls --seed 99");
}

// Weights of a bert GGUF file, read with ggml's GGUF reader, as doubles.
class BertReference {
 public:
  explicit BertReference(const std::filesystem::path& model) {
    Loaded file(model);
    const gguf_context* g = file.gguf;
    hidden_ = u32(g, "bert.embedding_length");
    layers_ = u32(g, "bert.block_count");
    heads_ = u32(g, "bert.attention.head_count");
    ffn_ = u32(g, "bert.feed_forward_length");
    pooling_ = u32(g, "bert.pooling_type");
    eps_ = gguf_get_val_f32(g, gguf_find_key(g, "bert.attention.layer_norm_epsilon"));
    for (ggml_tensor* t : file.tensors()) {
      const auto* data = static_cast<const float*>(t->data);
      weights_[ggml_get_name(t)] = {t->ne[0], t->ne[1],
                                    std::vector<double>(data, data + ggml_nelements(t))};
    }
  }

  // Merges a LoRA adapter into the weights: W += scale * alpha / rank * B A.
  void apply_lora(const std::filesystem::path& adapter, double scale) {
    Loaded file(adapter);
    const double alpha = gguf_get_val_f32(file.gguf, gguf_find_key(file.gguf, "adapter.lora.alpha"));
    for (ggml_tensor* t : file.tensors()) {
      std::string name = ggml_get_name(t);
      const std::string suffix = ".lora_a";
      if (name.size() < suffix.size() || name.substr(name.size() - suffix.size()) != suffix) continue;
      const std::string base = name.substr(0, name.size() - suffix.size());
      const ggml_tensor* a = t;  // {n_in, rank}
      const ggml_tensor* b = ggml_get_tensor(file.ggml, (base + ".lora_b").c_str());  // {rank, n_out}
      Tensor& w = weights_.at(base);  // {n_in, n_out}
      const std::int64_t rank = a->ne[1];
      const auto* A = static_cast<const float*>(a->data);
      const auto* B = static_cast<const float*>(b->data);
      const double factor = scale * alpha / static_cast<double>(rank);
      for (std::int64_t o = 0; o < w.ne1; ++o) {
        for (std::int64_t i = 0; i < w.ne0; ++i) {
          double delta = 0.0;
          for (std::int64_t r = 0; r < rank; ++r) delta += B[o * rank + r] * A[r * a->ne[0] + i];
          w.data[o * w.ne0 + i] += factor * delta;
        }
      }
    }
  }

  // The unit-norm sentence vector of one token sequence ([CLS] ... [SEP] included).
  std::vector<float> embed(const std::vector<std::int32_t>& tokens) const {
    const std::size_t n = tokens.size();
    const std::size_t h = hidden_;
    std::vector<std::vector<double>> x(n, std::vector<double>(h));
    const Tensor& tok = weights_.at("token_embd.weight");
    const Tensor& pos = weights_.at("position_embd.weight");
    const Tensor& type = weights_.at("token_types.weight");
    for (std::size_t t = 0; t < n; ++t) {
      for (std::size_t d = 0; d < h; ++d) {
        x[t][d] = tok.data[tokens[t] * h + d] + pos.data[t * h + d] + type.data[d];
      }
      layer_norm(x[t], "token_embd_norm");
    }
    for (std::uint32_t l = 0; l < layers_; ++l) {
      const std::string blk = "blk." + std::to_string(l) + ".";
      std::vector<std::vector<double>> q(n), k(n), v(n);
      for (std::size_t t = 0; t < n; ++t) {
        q[t] = linear(blk + "attn_q", x[t]);
        k[t] = linear(blk + "attn_k", x[t]);
        v[t] = linear(blk + "attn_v", x[t]);
      }
      const std::size_t dh = h / heads_;
      const double inv_sqrt = 1.0 / std::sqrt(static_cast<double>(dh));
      for (std::size_t t = 0; t < n; ++t) {
        std::vector<double> context(h, 0.0);
        for (std::size_t head = 0; head < heads_; ++head) {
          const std::size_t off = head * dh;
          std::vector<double> score(n);
          double top = -1e300;
          for (std::size_t s = 0; s < n; ++s) {
            double dot = 0.0;
            for (std::size_t d = 0; d < dh; ++d) dot += q[t][off + d] * k[s][off + d];
            score[s] = dot * inv_sqrt;
            top = std::max(top, score[s]);
          }
          double total = 0.0;
          for (double& s : score) total += (s = std::exp(s - top));
          for (std::size_t s = 0; s < n; ++s) {
            for (std::size_t d = 0; d < dh; ++d) context[off + d] += score[s] / total * v[s][off + d];
          }
        }
        std::vector<double> attn = linear(blk + "attn_output", context);
        for (std::size_t d = 0; d < h; ++d) attn[d] += x[t][d];
        layer_norm(attn, blk + "attn_output_norm");
        std::vector<double> up = linear(blk + "ffn_up", attn);
        for (double& u : up) u = gelu(u);
        std::vector<double> out = linear(blk + "ffn_down", up);
        for (std::size_t d = 0; d < h; ++d) out[d] += attn[d];
        layer_norm(out, blk + "layer_output_norm");
        q[t].swap(out);  // q[t] is no longer needed; keep the layer output there
      }
      for (std::size_t t = 0; t < n; ++t) x[t].swap(q[t]);
    }
    std::vector<double> pooled(h, 0.0);
    if (pooling_ == 2) {  // CLS
      pooled = x[0];
    } else {  // MEAN
      for (const auto& row : x) {
        for (std::size_t d = 0; d < h; ++d) pooled[d] += row[d] / static_cast<double>(n);
      }
    }
    double norm = 0.0;
    for (double p : pooled) norm += p * p;
    norm = std::sqrt(norm);
    std::vector<float> result(h);
    for (std::size_t d = 0; d < h; ++d) result[d] = static_cast<float>(pooled[d] / norm);
    return result;
  }

  std::uint32_t hidden() const { return hidden_; }

 private:
  struct Tensor {
    std::int64_t ne0 = 0, ne1 = 0;
    std::vector<double> data;
  };
  struct Loaded {
    explicit Loaded(const std::filesystem::path& path) {
      gguf_init_params params{};
      params.no_alloc = false;
      params.ctx = &ggml;
      gguf = gguf_init_from_file(path.c_str(), params);
      if (gguf == nullptr) throw std::runtime_error("cannot read " + path.string());
    }
    ~Loaded() {
      gguf_free(gguf);
      ggml_free(ggml);
    }
    // The file's tensors (the ggml context also holds one tensor with the whole data blob).
    std::vector<ggml_tensor*> tensors() const {
      std::vector<ggml_tensor*> all;
      for (std::int64_t i = 0; i < gguf_get_n_tensors(gguf); ++i) {
        all.push_back(ggml_get_tensor(ggml, gguf_get_tensor_name(gguf, i)));
      }
      return all;
    }
    gguf_context* gguf = nullptr;
    ggml_context* ggml = nullptr;
  };

  static std::uint32_t u32(const gguf_context* g, const char* key) {
    const auto id = gguf_find_key(g, key);
    if (id < 0) throw std::runtime_error(std::string("missing ") + key);
    return gguf_get_val_u32(g, id);
  }
  // ggml's GELU is the tanh approximation.
  static double gelu(double x) {
    constexpr double kSqrt2OverPi = 0.79788456080286535588;
    return 0.5 * x * (1.0 + std::tanh(kSqrt2OverPi * (x + 0.044715 * x * x * x)));
  }
  // y = W x + b with W stored {n_in, n_out}: row o of W is contiguous.
  std::vector<double> linear(const std::string& name, const std::vector<double>& in) const {
    const Tensor& w = weights_.at(name + ".weight");
    const Tensor& b = weights_.at(name + ".bias");
    std::vector<double> out(static_cast<std::size_t>(w.ne1));
    for (std::int64_t o = 0; o < w.ne1; ++o) {
      double sum = b.data[o];
      for (std::int64_t i = 0; i < w.ne0; ++i) sum += w.data[o * w.ne0 + i] * in[i];
      out[o] = sum;
    }
    return out;
  }
  void layer_norm(std::vector<double>& v, const std::string& name) const {
    const Tensor& w = weights_.at(name + ".weight");
    const Tensor& b = weights_.at(name + ".bias");
    double mean = 0.0;
    for (double x : v) mean += x;
    mean /= static_cast<double>(v.size());
    double var = 0.0;
    for (double x : v) var += (x - mean) * (x - mean);
    var /= static_cast<double>(v.size());
    const double inv = 1.0 / std::sqrt(var + eps_);
    for (std::size_t d = 0; d < v.size(); ++d) v[d] = (v[d] - mean) * inv * w.data[d] + b.data[d];
  }

  std::uint32_t hidden_ = 0, layers_ = 0, heads_ = 0, ffn_ = 0, pooling_ = 0;
  double eps_ = 1e-12;
  std::map<std::string, Tensor> weights_;
};

inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double worst = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, std::abs(static_cast<double>(a[i]) - b[i]));
  }
  return worst;
}

}  // namespace pagekeeper::llama_test

#endif  // PAGEKEEPER_HAVE_LLAMA
