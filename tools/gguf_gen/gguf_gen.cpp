// pagekeeper-gguf-gen: writes small, deterministic GGUF files for tests and benchmarks, with
// ggml's own GGUF writer (libggml-base), so no model download is ever needed.
//
//   pagekeeper-gguf-gen bert --vocab VOCAB.gguf --out MODEL.gguf [--preset tiny|minilm]
//       [--layers N] [--hidden N] [--heads N] [--ffn N] [--context N] [--pooling mean|cls]
//       [--seed N]
//     A `bert` text-embedding model (the architecture of all-MiniLM-L6-v2 and bge-small) with
//     pseudo-random F32 weights and the real WordPiece vocabulary copied from VOCAB (llama.cpp's
//     models/ggml-vocab-bert-bge.gguf). Presets: tiny = 2 layers, hidden 32, 4 heads, ffn 64,
//     context 512 (about 4.7 MB); minilm = 6 layers, hidden 384, 12 heads, ffn 1536, context
//     512 (the shape of all-MiniLM-L6-v2, about 90 MB).
//
//   pagekeeper-gguf-gen lora --base MODEL.gguf --out ADAPTER.gguf [--rank N] [--alpha X]
//       [--targets attn_q,attn_v] [--scale X] [--seed N]
//     A LoRA adapter for MODEL as llama_adapter_lora_init() expects it: general.type=adapter,
//     adapter.type=lora, adapter.lora.alpha, general.architecture equal to the base's, and for
//     every targeted weight W (blk.<i>.<target>.weight, shape {n_in, n_out}) a pair
//     <W>.lora_a {n_in, rank} and <W>.lora_b {rank, n_out}.
//
// Determinism: every tensor's values come from a SplitMix64 stream seeded by (seed, tensor
// name), and the GGUF header is written in a fixed order, so the same arguments give a
// byte-identical file on every run and platform.
//
// The weights are random: these models prove that the runtime is used correctly (tokenizer,
// batching, pooling, the forward pass against a reference), not semantic quality.

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <ggml.h>
#include <gguf.h>

namespace {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// SplitMix64: tiny, well-mixed, and identical on every platform (only integer arithmetic
// until the final conversion, which is exact for 24-bit mantissas).
class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [-1, 1), a multiple of 2^-23.
  float symmetric() {
    const auto bits = static_cast<std::int32_t>(next() >> 40);  // 24 bits
    return static_cast<float>(bits - (1 << 23)) / static_cast<float>(1 << 23);
  }

 private:
  std::uint64_t state_;
};

std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : s) {
    h = (h ^ c) * 0x100000001B3ull;
  }
  return h;
}

struct GgufDeleter {
  void operator()(gguf_context* ctx) const { gguf_free(ctx); }
};
struct GgmlDeleter {
  void operator()(ggml_context* ctx) const { ggml_free(ctx); }
};
using GgufPtr = std::unique_ptr<gguf_context, GgufDeleter>;
using GgmlPtr = std::unique_ptr<ggml_context, GgmlDeleter>;

GgufPtr read_gguf_metadata(const std::string& path) {
  gguf_init_params params{};
  params.no_alloc = true;
  params.ctx = nullptr;
  GgufPtr ctx(gguf_init_from_file(path.c_str(), params));
  if (!ctx) {
    throw std::runtime_error("cannot read GGUF file '" + path + "'");
  }
  return ctx;
}

// Tensors of the file being written. Data lives in one ggml context sized up front.
class TensorWriter {
 public:
  TensorWriter(gguf_context* out, std::size_t data_bytes, std::size_t n_tensors,
               std::uint64_t seed)
      : out_(out), seed_(seed) {
    ggml_init_params params{};
    params.mem_size = data_bytes + n_tensors * ggml_tensor_overhead() + 1024;
    params.mem_buffer = nullptr;
    params.no_alloc = false;
    ctx_.reset(ggml_init(params));
    if (!ctx_) {
      throw std::runtime_error("cannot allocate " + std::to_string(data_bytes) +
                               " bytes for tensor data");
    }
  }

  // values = center + scale * U(-1, 1), from the stream of (seed, name).
  void add(const std::string& name, std::vector<std::int64_t> ne, float scale,
           float center = 0.0f) {
    ggml_tensor* t = nullptr;
    switch (ne.size()) {
      case 1: t = ggml_new_tensor_1d(ctx_.get(), GGML_TYPE_F32, ne[0]); break;
      case 2: t = ggml_new_tensor_2d(ctx_.get(), GGML_TYPE_F32, ne[0], ne[1]); break;
      default: throw std::logic_error("tensors here have 1 or 2 dimensions");
    }
    ggml_set_name(t, name.c_str());
    SplitMix64 rng(seed_ ^ fnv1a(name));
    auto* data = static_cast<float*>(t->data);
    const std::int64_t n = ggml_nelements(t);
    for (std::int64_t i = 0; i < n; ++i) {
      data[i] = center + scale * rng.symmetric();
    }
    gguf_add_tensor(out_, t);
  }

 private:
  gguf_context* out_;
  std::uint64_t seed_;
  GgmlPtr ctx_;
};

void write_file(gguf_context* ctx, const std::string& path) {
  if (!gguf_write_to_file(ctx, path.c_str(), /*only_meta=*/false)) {
    throw std::runtime_error("cannot write '" + path + "'");
  }
}

// Copies every tokenizer.* key of `vocab` into `out`, in the vocabulary file's order.
void copy_tokenizer(const gguf_context* vocab, gguf_context* out) {
  for (std::int64_t i = 0; i < gguf_get_n_kv(vocab); ++i) {
    const std::string key = gguf_get_key(vocab, i);
    if (key.rfind("tokenizer.", 0) != 0) continue;
    const gguf_type type = gguf_get_kv_type(vocab, i);
    switch (type) {
      case GGUF_TYPE_STRING: gguf_set_val_str(out, key.c_str(), gguf_get_val_str(vocab, i)); break;
      case GGUF_TYPE_UINT32: gguf_set_val_u32(out, key.c_str(), gguf_get_val_u32(vocab, i)); break;
      case GGUF_TYPE_INT32: gguf_set_val_i32(out, key.c_str(), gguf_get_val_i32(vocab, i)); break;
      case GGUF_TYPE_BOOL: gguf_set_val_bool(out, key.c_str(), gguf_get_val_bool(vocab, i)); break;
      case GGUF_TYPE_FLOAT32: gguf_set_val_f32(out, key.c_str(), gguf_get_val_f32(vocab, i)); break;
      case GGUF_TYPE_ARRAY: {
        const gguf_type elem = gguf_get_arr_type(vocab, i);
        const std::size_t n = gguf_get_arr_n(vocab, i);
        if (elem == GGUF_TYPE_STRING) {
          std::vector<const char*> strings(n);
          for (std::size_t k = 0; k < n; ++k) strings[k] = gguf_get_arr_str(vocab, i, k);
          gguf_set_arr_str(out, key.c_str(), strings.data(), n);
        } else {
          gguf_set_arr_data(out, key.c_str(), elem, gguf_get_arr_data(vocab, i), n);
        }
        break;
      }
      default:
        throw std::runtime_error("vocabulary key '" + key + "' has unsupported type " +
                                 gguf_type_name(type));
    }
  }
}

std::uint32_t vocab_u32(const gguf_context* vocab, const char* key, std::uint32_t fallback) {
  const std::int64_t id = gguf_find_key(vocab, key);
  return id < 0 ? fallback : gguf_get_val_u32(vocab, id);
}

// Parsed `--name value` options, each consumed at most once; leftovers are an error.
class Options {
 public:
  Options(int argc, char** argv, int first) {
    for (int i = first; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg.rfind("--", 0) != 0 || i + 1 >= argc) {
        throw UsageError("expected '--option value', got '" + arg + "'");
      }
      values_[arg.substr(2)] = argv[++i];
    }
  }
  std::optional<std::string> take(const std::string& name) {
    auto it = values_.find(name);
    if (it == values_.end()) return std::nullopt;
    std::string v = it->second;
    values_.erase(it);
    return v;
  }
  std::string required(const std::string& name) {
    auto v = take(name);
    if (!v) throw UsageError("missing --" + name);
    return *v;
  }
  std::uint64_t number(const std::string& name, std::uint64_t fallback) {
    auto v = take(name);
    if (!v) return fallback;
    char* end = nullptr;
    const unsigned long long n = std::strtoull(v->c_str(), &end, 10);
    if (v->empty() || *end != '\0') throw UsageError("--" + name + " needs a number, got '" + *v + "'");
    return n;
  }
  float real(const std::string& name, float fallback) {
    auto v = take(name);
    if (!v) return fallback;
    char* end = nullptr;
    const float x = std::strtof(v->c_str(), &end);
    if (v->empty() || *end != '\0' || !std::isfinite(x)) {
      throw UsageError("--" + name + " needs a finite number, got '" + *v + "'");
    }
    return x;
  }
  void finish() const {
    if (!values_.empty()) throw UsageError("unknown option --" + values_.begin()->first);
  }

 private:
  std::map<std::string, std::string> values_;
};

struct BertShape {
  std::uint32_t layers, hidden, heads, ffn, context;
};

void generate_bert(Options& opt) {
  const std::string vocab_path = opt.required("vocab");
  const std::string out_path = opt.required("out");
  const std::string preset = opt.take("preset").value_or("tiny");
  BertShape shape{};
  if (preset == "tiny") {
    shape = {2, 32, 4, 64, 512};
  } else if (preset == "minilm") {
    shape = {6, 384, 12, 1536, 512};
  } else {
    throw UsageError("--preset must be tiny or minilm, got '" + preset + "'");
  }
  shape.layers = static_cast<std::uint32_t>(opt.number("layers", shape.layers));
  shape.hidden = static_cast<std::uint32_t>(opt.number("hidden", shape.hidden));
  shape.heads = static_cast<std::uint32_t>(opt.number("heads", shape.heads));
  shape.ffn = static_cast<std::uint32_t>(opt.number("ffn", shape.ffn));
  shape.context = static_cast<std::uint32_t>(opt.number("context", shape.context));
  const std::string pooling = opt.take("pooling").value_or("mean");
  const std::uint64_t seed = opt.number("seed", 20240601);
  opt.finish();
  if (shape.layers == 0 || shape.hidden == 0 || shape.heads == 0 || shape.ffn == 0 ||
      shape.context == 0 || shape.hidden % shape.heads != 0) {
    throw UsageError("layers, hidden, heads, ffn and context must be positive and heads must "
                     "divide hidden");
  }
  // llama.cpp's enum llama_pooling_type: MEAN = 1, CLS = 2.
  std::uint32_t pooling_type = 0;
  if (pooling == "mean") {
    pooling_type = 1;
  } else if (pooling == "cls") {
    pooling_type = 2;
  } else {
    throw UsageError("--pooling must be mean or cls, got '" + pooling + "'");
  }

  GgufPtr vocab = read_gguf_metadata(vocab_path);
  const std::int64_t tokens_key = gguf_find_key(vocab.get(), "tokenizer.ggml.tokens");
  const std::int64_t model_key = gguf_find_key(vocab.get(), "tokenizer.ggml.model");
  if (tokens_key < 0 || model_key < 0 ||
      gguf_get_kv_type(vocab.get(), model_key) != GGUF_TYPE_STRING ||
      std::string_view(gguf_get_val_str(vocab.get(), model_key)) != "bert") {
    throw std::runtime_error("'" + vocab_path + "' is not a bert WordPiece vocabulary");
  }
  const auto n_vocab = static_cast<std::int64_t>(gguf_get_arr_n(vocab.get(), tokens_key));
  const std::uint32_t n_token_types = vocab_u32(vocab.get(), "tokenizer.ggml.token_type_count", 2);

  GgufPtr out(gguf_init_empty());
  gguf_context* g = out.get();
  gguf_set_val_str(g, "general.architecture", "bert");
  gguf_set_val_str(g, "general.name", ("pagekeeper-test-bert-" + preset).c_str());
  gguf_set_val_u32(g, "general.file_type", 0);  // all F32
  gguf_set_val_u32(g, "bert.context_length", shape.context);
  gguf_set_val_u32(g, "bert.embedding_length", shape.hidden);
  gguf_set_val_u32(g, "bert.feed_forward_length", shape.ffn);
  gguf_set_val_u32(g, "bert.block_count", shape.layers);
  gguf_set_val_u32(g, "bert.attention.head_count", shape.heads);
  gguf_set_val_f32(g, "bert.attention.layer_norm_epsilon", 1e-12f);
  gguf_set_val_bool(g, "bert.attention.causal", false);
  gguf_set_val_u32(g, "bert.pooling_type", pooling_type);
  copy_tokenizer(vocab.get(), g);
  // llama.cpp takes [CLS] from the BOS id (default 101): state it rather than rely on it.
  gguf_set_val_u32(g, "tokenizer.ggml.bos_token_id",
                   vocab_u32(vocab.get(), "tokenizer.ggml.cls_token_id", 101));

  const std::int64_t h = shape.hidden;
  const std::int64_t f = shape.ffn;
  const std::size_t n_tensors = 5 + 16 * static_cast<std::size_t>(shape.layers);
  const std::size_t floats =
      static_cast<std::size_t>(h * (n_vocab + shape.context + n_token_types + 2)) +
      shape.layers * static_cast<std::size_t>(4 * h * h + 2 * h * f + 10 * h + f);
  TensorWriter w(g, floats * sizeof(float) + n_tensors * GGML_MEM_ALIGN, n_tensors, seed);

  const float embed_scale = 0.5f;
  const float hidden_scale = 1.0f / std::sqrt(static_cast<float>(h));
  const float ffn_scale = 1.0f / std::sqrt(static_cast<float>(f));
  w.add("token_embd.weight", {h, n_vocab}, embed_scale);
  w.add("token_types.weight", {h, n_token_types}, embed_scale);
  w.add("position_embd.weight", {h, shape.context}, embed_scale);
  w.add("token_embd_norm.weight", {h}, 0.1f, 1.0f);
  w.add("token_embd_norm.bias", {h}, 0.05f);
  for (std::uint32_t l = 0; l < shape.layers; ++l) {
    const std::string blk = "blk." + std::to_string(l) + ".";
    for (const char* proj : {"attn_q", "attn_k", "attn_v", "attn_output"}) {
      w.add(blk + proj + ".weight", {h, h}, 2.0f * hidden_scale);
      w.add(blk + proj + ".bias", {h}, 0.05f);
    }
    w.add(blk + "attn_output_norm.weight", {h}, 0.1f, 1.0f);
    w.add(blk + "attn_output_norm.bias", {h}, 0.05f);
    w.add(blk + "ffn_up.weight", {h, f}, 2.0f * hidden_scale);
    w.add(blk + "ffn_up.bias", {f}, 0.05f);
    w.add(blk + "ffn_down.weight", {f, h}, 2.0f * ffn_scale);
    w.add(blk + "ffn_down.bias", {h}, 0.05f);
    w.add(blk + "layer_output_norm.weight", {h}, 0.1f, 1.0f);
    w.add(blk + "layer_output_norm.bias", {h}, 0.05f);
  }
  write_file(g, out_path);
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> parts;
  std::stringstream in(s);
  for (std::string part; std::getline(in, part, ',');) {
    if (!part.empty()) parts.push_back(part);
  }
  return parts;
}

void generate_lora(Options& opt) {
  const std::string base_path = opt.required("base");
  const std::string out_path = opt.required("out");
  const auto rank = static_cast<std::int64_t>(opt.number("rank", 4));
  const float alpha = opt.real("alpha", static_cast<float>(rank));
  const float scale = opt.real("scale", 0.5f);
  const std::vector<std::string> targets = split_commas(opt.take("targets").value_or("attn_q,attn_v"));
  const std::uint64_t seed = opt.number("seed", 7);
  opt.finish();
  if (rank <= 0 || targets.empty()) {
    throw UsageError("--rank must be positive and --targets must name at least one weight");
  }

  GgufPtr base = read_gguf_metadata(base_path);
  const std::int64_t arch_key = gguf_find_key(base.get(), "general.architecture");
  if (arch_key < 0 || gguf_get_kv_type(base.get(), arch_key) != GGUF_TYPE_STRING) {
    throw std::runtime_error("'" + base_path + "' has no general.architecture");
  }

  // Every base tensor blk.<i>.<target>.weight gets an A/B pair.
  struct Pair {
    std::string name;
    std::int64_t n_in, n_out;
  };
  std::vector<Pair> pairs;
  for (std::int64_t t = 0; t < gguf_get_n_tensors(base.get()); ++t) {
    const std::string name = gguf_get_tensor_name(base.get(), t);
    for (const auto& target : targets) {
      const std::string suffix = "." + target + ".weight";
      if (name.rfind("blk.", 0) == 0 && name.size() > suffix.size() &&
          name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
        const std::int64_t* ne = gguf_get_tensor_ne(base.get(), t);
        pairs.push_back({name, ne[0], ne[1]});
      }
    }
  }
  if (pairs.empty()) {
    throw std::runtime_error("no tensor of '" + base_path + "' matches --targets");
  }

  GgufPtr out(gguf_init_empty());
  gguf_context* g = out.get();
  gguf_set_val_str(g, "general.architecture", gguf_get_val_str(base.get(), arch_key));
  gguf_set_val_str(g, "general.type", "adapter");
  gguf_set_val_str(g, "general.name", ("pagekeeper-test-lora-" + std::to_string(seed)).c_str());
  gguf_set_val_str(g, "adapter.type", "lora");
  gguf_set_val_f32(g, "adapter.lora.alpha", alpha);

  std::size_t floats = 0;
  for (const auto& p : pairs) floats += static_cast<std::size_t>(rank * (p.n_in + p.n_out));
  TensorWriter w(g, floats * sizeof(float) + 2 * pairs.size() * GGML_MEM_ALIGN, 2 * pairs.size(),
                 seed);
  for (const auto& p : pairs) {
    const std::string stem = p.name.substr(0, p.name.size() - std::string(".weight").size());
    // llama.cpp computes W x + (alpha / rank) * B (A x), with A {n_in, rank}, B {rank, n_out}.
    w.add(stem + ".weight.lora_a", {p.n_in, rank}, scale / std::sqrt(static_cast<float>(p.n_in)));
    w.add(stem + ".weight.lora_b", {rank, p.n_out}, scale / std::sqrt(static_cast<float>(rank)));
  }
  write_file(g, out_path);
}

void usage(std::FILE* to) {
  std::fputs(
      "usage:\n"
      "  pagekeeper-gguf-gen bert --vocab VOCAB.gguf --out MODEL.gguf [--preset tiny|minilm]\n"
      "      [--layers N] [--hidden N] [--heads N] [--ffn N] [--context N]\n"
      "      [--pooling mean|cls] [--seed N]\n"
      "  pagekeeper-gguf-gen lora --base MODEL.gguf --out ADAPTER.gguf [--rank N] [--alpha X]\n"
      "      [--targets attn_q,attn_v] [--scale X] [--seed N]\n",
      to);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  try {
    Options options(argc, argv, 2);
    const std::string command = argv[1];
    if (command == "bert") {
      generate_bert(options);
    } else if (command == "lora") {
      generate_lora(options);
    } else {
      throw UsageError("unknown command '" + command + "'");
    }
  } catch (const UsageError& e) {
    std::fprintf(stderr, "pagekeeper-gguf-gen: %s\n", e.what());
    usage(stderr);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pagekeeper-gguf-gen: %s\n", e.what());
    return 1;
  }
  return 0;
}
