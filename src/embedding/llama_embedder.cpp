// LlamaEmbedder: see include/pagekeeper/llama_embedder.hpp for the contract.

#include "pagekeeper/llama_embedder.hpp"

#include <algorithm>
#include <bit>
#include <climits>
#include <cmath>
#include <thread>

#include "pagekeeper/detail/content_hash.hpp"
#include "pagekeeper/errors.hpp"
#include "llama/llama_model_pool.hpp"

#ifdef PAGEKEEPER_HAVE_LLAMA
#include <llama.h>
#endif

namespace pagekeeper {

struct LlamaEmbedder::AdapterSet {
  std::vector<std::shared_ptr<LlamaLoraAdapter>> adapters;
  std::vector<float> scales;
};

#ifdef PAGEKEEPER_HAVE_LLAMA

namespace {

// The most sequences one llama.cpp batch may carry (LLAMA_MAX_SEQ in llama.cpp's sources).
constexpr std::size_t kMaxSequences = 256;
// llama.cpp pads n_ctx to a multiple of this; n_batch and n_ubatch must match it.
constexpr std::uint32_t kContextQuantum = 256;
constexpr std::uint32_t kMaxBatchTokens = 1u << 16;

// Strict UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    const unsigned char c = *p;
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++p;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (static_cast<std::size_t>(end - p) < len) return false;
    for (std::size_t i = 1; i < len; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    p += len;
  }
  return true;
}

std::string default_name(const std::filesystem::path& path) {
  std::string stem = path.filename().string();
  constexpr std::string_view kSuffix = ".gguf";
  if (stem.size() > kSuffix.size() &&
      stem.compare(stem.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0) {
    stem.resize(stem.size() - kSuffix.size());
  }
  return stem;
}

}  // namespace

struct LlamaEmbedder::Worker {
  llama_context* ctx = nullptr;
  llama_batch batch{};
  bool has_batch = false;
  // The adapter set applied to ctx (kept alive while applied).
  std::shared_ptr<const AdapterSet> applied;

  ~Worker() {
    if (has_batch) llama_batch_free(batch);
    if (ctx != nullptr) llama_free(ctx);
  }
};

namespace {

// Runs `load`, turning the runtime's errors (LlamaError, TierUnavailable when there is no
// backend) into the EmbedderError the Embedder contract promises.
template <class Load>
auto load_for_embedder(Load&& load) {
  try {
    return load();
  } catch (const PagingError& e) {
    throw EmbedderError(std::string("llama.cpp embedder: ") + e.what());
  } catch (const LlamaError& e) {
    throw EmbedderError(std::string("llama.cpp embedder: ") + e.what());
  }
}

}  // namespace

std::unique_ptr<LlamaEmbedder> LlamaEmbedder::create(const LlamaEmbedderConfig& config) {
  return create(load_for_embedder([&] { return LlamaModel::load(config.model_path); }), config);
}

std::unique_ptr<LlamaEmbedder> LlamaEmbedder::create(std::shared_ptr<LlamaModel> model,
                                                     const LlamaEmbedderConfig& config) {
  if (!model) throw EmbedderError("llama.cpp embedder: no model given");
  return std::unique_ptr<LlamaEmbedder>(new LlamaEmbedder(std::move(model), config));
}

std::unique_ptr<LlamaEmbedder> LlamaEmbedder::create(LlamaModelPool& pool,
                                                     const LlamaEmbedderConfig& config) {
  return create(load_for_embedder([&] { return pool.acquire(config.model_path); }), config);
}

std::unique_ptr<LlamaEmbedder> LlamaEmbedder::create(std::shared_ptr<LlamaModelLease> lease,
                                                     const LlamaEmbedderConfig& config) {
  if (!lease || !lease->model()) throw EmbedderError("llama.cpp embedder: no model given");
  auto embedder = create(lease->model(), config);
  embedder->lease_ = std::move(lease);
  return embedder;
}

std::string LlamaEmbedder::identity() const {
  std::call_once(identity_once_, [&] {
    identity_ = "gguf/" + to_hex(sha256_file(model_->path().string())) + "/pooling" +
                std::to_string(static_cast<int>(config_.pooling)) + "/" +
                (config_.overflow == LlamaEmbedderConfig::Overflow::kTruncate ? "truncate" : "refuse") +
                std::to_string(max_tokens_);
  });
  return identity_;
}

LlamaEmbedder::LlamaEmbedder(std::shared_ptr<LlamaModel> model, const LlamaEmbedderConfig& config)
    : model_(std::move(model)), config_(config) {
  const std::string where = "llama.cpp embedder (" + model_->path().string() + "): ";
  if (config.max_batch == 0 || config.max_batch > kMaxSequences) {
    throw EmbedderError(where + "max_batch must be 1.." + std::to_string(kMaxSequences) +
                        ", got " + std::to_string(config.max_batch));
  }
  if (config.contexts == 0) throw EmbedderError(where + "contexts must be at least 1");
  if (config.threads < 0) throw EmbedderError(where + "threads must be 0 (auto) or positive");
  if (config.batch_tokens == 0 || config.batch_tokens > kMaxBatchTokens) {
    throw EmbedderError(where + "batch_tokens must be 1.." + std::to_string(kMaxBatchTokens));
  }
  if (model_->embedding_length() <= 0) {
    throw EmbedderError(where + "the model has no embedding output");
  }
  name_ = config.name.empty() ? default_name(model_->path()) : config.name;
  dimensions_ = static_cast<std::size_t>(model_->embedding_length());
  max_batch_ = config.max_batch;
  batch_tokens_ = (config.batch_tokens + kContextQuantum - 1) / kContextQuantum * kContextQuantum;
  if (config.pack_tokens == 0) throw EmbedderError(where + "pack_tokens must be at least 1");
  pack_tokens_ = std::min(config.pack_tokens, batch_tokens_);
  max_tokens_ = batch_tokens_;
  if (model_->trained_context() > 0) {
    max_tokens_ = std::min<std::size_t>(max_tokens_, model_->trained_context());
  }

  const int threads = config.threads > 0
                          ? config.threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency() / 2));
  llama_context_params params = llama_context_default_params();
  params.embeddings = true;
  // n_ctx = n_batch = n_ubatch: a non-causal encode must fit one micro-batch, and a unified
  // buffer keeps llama.cpp from rounding n_ctx per sequence (which would break that equality).
  params.n_ctx = batch_tokens_;
  params.n_batch = batch_tokens_;
  params.n_ubatch = batch_tokens_;
  params.n_seq_max = static_cast<std::uint32_t>(std::bit_ceil(max_batch_));
  params.kv_unified = true;
  params.n_threads = threads;
  params.n_threads_batch = threads;
  // Plain attention: flash attention would round K/V to F16 on CPU for no gain at this size.
  params.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
  params.no_perf = true;
  switch (config.pooling) {
    case LlamaEmbedderConfig::Pooling::kModel: params.pooling_type = LLAMA_POOLING_TYPE_UNSPECIFIED; break;
    case LlamaEmbedderConfig::Pooling::kMean: params.pooling_type = LLAMA_POOLING_TYPE_MEAN; break;
    case LlamaEmbedderConfig::Pooling::kCls: params.pooling_type = LLAMA_POOLING_TYPE_CLS; break;
    case LlamaEmbedderConfig::Pooling::kLast: params.pooling_type = LLAMA_POOLING_TYPE_LAST; break;
  }

  for (std::size_t i = 0; i < config.contexts; ++i) {
    auto worker = std::make_unique<Worker>();
    worker->ctx = llama_init_from_model(model_->get(), params);
    if (worker->ctx == nullptr) {
      throw EmbedderError(where + "llama.cpp could not create a context (see the log)");
    }
    const enum llama_pooling_type pooling = llama_pooling_type(worker->ctx);
    if (pooling == LLAMA_POOLING_TYPE_NONE || pooling == LLAMA_POOLING_TYPE_RANK) {
      throw EmbedderError(where + "the model declares no sentence pooling (" +
                          (pooling == LLAMA_POOLING_TYPE_RANK ? "rank" : "none") +
                          "); configure pooling mean, cls or last");
    }
    worker->batch = llama_batch_init(static_cast<std::int32_t>(batch_tokens_), 0, 1);
    worker->has_batch = true;
    free_.push_back(worker.get());
    workers_.push_back(std::move(worker));
  }
}

LlamaEmbedder::~LlamaEmbedder() = default;

std::vector<std::int32_t> LlamaEmbedder::tokenize(std::string_view text, bool add_special) const {
  if (!valid_utf8(text)) throw EmbedderInputError("llama.cpp embedder: text is not valid UTF-8");
  if (text.size() > static_cast<std::size_t>(INT32_MAX) / 2) {
    throw EmbedderInputError("llama.cpp embedder: text of " + std::to_string(text.size()) +
                             " bytes is too large to tokenize");
  }
  const llama_vocab* vocab = llama_model_get_vocab(model_->get());
  const auto length = static_cast<std::int32_t>(text.size());
  std::vector<llama_token> tokens(text.size() + 8);
  std::int32_t n = llama_tokenize(vocab, text.data(), length, tokens.data(),
                                  static_cast<std::int32_t>(tokens.size()), add_special, false);
  if (n < 0 && n != INT32_MIN) {
    tokens.resize(static_cast<std::size_t>(-n));
    n = llama_tokenize(vocab, text.data(), length, tokens.data(),
                       static_cast<std::int32_t>(tokens.size()), add_special, false);
  }
  if (n < 0) throw EmbedderError("llama.cpp embedder: tokenization failed");
  tokens.resize(static_cast<std::size_t>(n));
  return tokens;
}

std::vector<std::vector<std::int32_t>> LlamaEmbedder::prepare(
    std::span<const std::string_view> texts) const {
  if (texts.size() > max_batch_) {
    throw EmbedderInputError("llama.cpp embedder: " + std::to_string(texts.size()) +
                             " texts in one call, at most " + std::to_string(max_batch_));
  }
  const llama_vocab* vocab = llama_model_get_vocab(model_->get());
  const llama_token sep = llama_vocab_sep(vocab);
  const llama_token eos = llama_vocab_eos(vocab);
  std::vector<std::vector<std::int32_t>> all;
  all.reserve(texts.size());
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const std::string_view text = texts[i];
    const std::string which = "llama.cpp embedder: text " + std::to_string(i);
    if (text.empty()) throw EmbedderInputError(which + " is empty");
    if (!valid_utf8(text)) throw EmbedderInputError(which + " is not valid UTF-8");
    std::vector<std::int32_t> tokens = tokenize(text, /*add_special=*/true);
    if (tokens.empty()) throw EmbedderInputError(which + " has no tokens");
    if (tokens.size() > max_tokens_) {
      if (config_.overflow == LlamaEmbedderConfig::Overflow::kRefuse) {
        throw EmbedderInputError(which + " has " + std::to_string(tokens.size()) +
                                 " tokens; the model takes at most " + std::to_string(max_tokens_));
      }
      const std::int32_t closing = tokens.back();
      tokens.resize(max_tokens_);
      if (closing != LLAMA_TOKEN_NULL && (closing == sep || closing == eos)) {
        tokens.back() = closing;
      }
    }
    all.push_back(std::move(tokens));
  }
  return all;
}

LlamaEmbedder::Worker& LlamaEmbedder::acquire() {
  MutexLock lock(mutex_);
  worker_freed_.wait(lock, [&] {
    mutex_.assert_held();
    return !free_.empty();
  });
  Worker* worker = free_.back();
  free_.pop_back();
  return *worker;
}

void LlamaEmbedder::release(Worker& worker) {
  {
    MutexLock lock(mutex_);
    free_.push_back(&worker);
  }
  worker_freed_.notify_one();
}

void LlamaEmbedder::set_adapters(
    const std::vector<std::pair<std::shared_ptr<LlamaLoraAdapter>, float>>& adapters) {
  auto set = std::make_shared<AdapterSet>();
  for (const auto& [adapter, scale] : adapters) {
    if (!adapter || adapter->model() != model_) {
      throw EmbedderError("llama.cpp embedder: a LoRA adapter given to " + name_ +
                          " was not loaded onto its model");
    }
    if (!std::isfinite(scale)) throw EmbedderError("llama.cpp embedder: LoRA scale is not finite");
    set->adapters.push_back(adapter);
    set->scales.push_back(scale);
  }
  MutexLock lock(mutex_);
  adapters_ = std::move(set);
}

void LlamaEmbedder::run(Worker& worker, const std::vector<std::vector<std::int32_t>>& tokens,
                        std::size_t first, std::size_t count,
                        std::vector<std::vector<float>>& out) {
  llama_batch& batch = worker.batch;
  batch.n_tokens = 0;
  for (std::size_t s = 0; s < count; ++s) {
    const auto& seq = tokens[first + s];
    for (std::size_t p = 0; p < seq.size(); ++p) {
      const auto n = batch.n_tokens++;
      batch.token[n] = seq[p];
      batch.pos[n] = static_cast<llama_pos>(p);
      batch.n_seq_id[n] = 1;
      batch.seq_id[n][0] = static_cast<llama_seq_id>(s);
      batch.logits[n] = 1;
    }
  }
  int rc = 0;
  if (model_->bidirectional()) {
    rc = llama_encode(worker.ctx, batch);
  } else {
    llama_memory_clear(llama_get_memory(worker.ctx), true);
    rc = llama_decode(worker.ctx, batch);
  }
  if (rc != 0) {
    throw EmbedderError("llama.cpp embedder: " + name_ + ": llama.cpp failed to encode " +
                        std::to_string(count) + " texts (code " + std::to_string(rc) + ")");
  }
  for (std::size_t s = 0; s < count; ++s) {
    const float* pooled = llama_get_embeddings_seq(worker.ctx, static_cast<llama_seq_id>(s));
    if (pooled == nullptr) {
      throw EmbedderError("llama.cpp embedder: " + name_ + ": no pooled vector for text " +
                          std::to_string(first + s));
    }
    double sum = 0.0;
    for (std::size_t d = 0; d < dimensions_; ++d) sum += static_cast<double>(pooled[d]) * pooled[d];
    const double norm = std::sqrt(sum);
    if (!(norm > 0.0) || !std::isfinite(norm)) {
      throw EmbedderError("llama.cpp embedder: " + name_ + ": zero or non-finite vector for text " +
                          std::to_string(first + s));
    }
    auto& vec = out[first + s];
    vec.resize(dimensions_);
    for (std::size_t d = 0; d < dimensions_; ++d) {
      vec[d] = static_cast<float>(pooled[d] / norm);
    }
  }
}

std::vector<std::vector<float>> LlamaEmbedder::embed(std::span<const std::string_view> texts) {
  const auto tokens = prepare(texts);
  std::vector<std::vector<float>> out(texts.size());
  if (texts.empty()) return out;

  Worker& worker = acquire();
  struct Release {
    LlamaEmbedder* self;
    Worker* worker;
    ~Release() { self->release(*worker); }
  } release_on_exit{this, &worker};

  std::shared_ptr<const AdapterSet> wanted;
  {
    MutexLock lock(mutex_);
    wanted = adapters_;
  }
  if (wanted != worker.applied) {
    std::vector<llama_adapter_lora*> handles;
    std::vector<float> scales;
    if (wanted) {
      for (const auto& a : wanted->adapters) handles.push_back(a->get());
      scales = wanted->scales;
    }
    if (llama_set_adapters_lora(worker.ctx, handles.data(), handles.size(), scales.data()) != 0) {
      throw EmbedderError("llama.cpp embedder: " + name_ + ": llama.cpp refused the LoRA adapters");
    }
    worker.applied = std::move(wanted);
  }

  // Greedy packing in input order: as many whole texts per encode as pack_tokens allows; a
  // text longer than that goes alone (it fits batch_tokens: prepare() enforced max_tokens).
  std::size_t first = 0;
  while (first < tokens.size()) {
    std::size_t count = 1;
    std::size_t used = tokens[first].size();
    while (first + count < tokens.size() && used + tokens[first + count].size() <= pack_tokens_) {
      used += tokens[first + count].size();
      ++count;
    }
    run(worker, tokens, first, count, out);
    first += count;
  }
  return out;
}

#else  // !PAGEKEEPER_HAVE_LLAMA

// Without llama.cpp no LlamaEmbedder can exist: create() always throws, so the members below
// are unreachable and throw the same error should that ever change.

struct LlamaEmbedder::Worker {};

namespace {
[[noreturn]] void throw_unavailable() {
  throw EmbedderError(
      "llama.cpp embedder: llama.cpp backend not available in this build (run "
      "scripts/fetch-llama.sh or set LLAMA_ROOT, then reconfigure)");
}
}  // namespace

std::unique_ptr<LlamaEmbedder> LlamaEmbedder::create(const LlamaEmbedderConfig&) {
  throw_unavailable();
}

std::unique_ptr<LlamaEmbedder> LlamaEmbedder::create(std::shared_ptr<LlamaModel>,  // NOLINT(performance-unnecessary-value-param): the llama build takes ownership
                                                     const LlamaEmbedderConfig&) {
  throw_unavailable();
}

std::unique_ptr<LlamaEmbedder> LlamaEmbedder::create(LlamaModelPool&, const LlamaEmbedderConfig&) {
  throw_unavailable();
}

std::unique_ptr<LlamaEmbedder> LlamaEmbedder::create(std::shared_ptr<LlamaModelLease>,  // NOLINT(performance-unnecessary-value-param): the llama build takes ownership
                                                     const LlamaEmbedderConfig&) {
  throw_unavailable();
}

LlamaEmbedder::~LlamaEmbedder() = default;

std::vector<std::int32_t> LlamaEmbedder::tokenize(std::string_view, bool) const {
  throw_unavailable();
}

std::string LlamaEmbedder::identity() const { throw_unavailable(); }

std::vector<std::vector<float>> LlamaEmbedder::embed(std::span<const std::string_view>) {
  throw_unavailable();
}

void LlamaEmbedder::set_adapters(
    const std::vector<std::pair<std::shared_ptr<LlamaLoraAdapter>, float>>&) {
  throw_unavailable();
}

#endif  // PAGEKEEPER_HAVE_LLAMA

}  // namespace pagekeeper
