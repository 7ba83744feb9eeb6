// What each route of pagekeeperd does (the framework around them is in daemon.cpp).

#include <chrono>
#include <cstdio>

#include "server/requests.hpp"
#include "server/daemon_impl.hpp"
#include "server/encoding.hpp"
#include "server/tier_metrics.hpp"

namespace pagekeeper {

namespace {

void set_cache_headers(server::HttpResponse& res, const EmbedAccounting& a, const EmbeddingService& service) {
  res.headers.reserve(res.headers.size() + 5);
  res.set_header("X-Pagekeeper-Cache-Hits", std::to_string(a.hits));
  res.set_header("X-Pagekeeper-Cache-Misses", std::to_string(a.misses));
  res.set_header("X-Pagekeeper-Cache-Joined", std::to_string(a.joined));
  // Of the misses: texts a tier below memory (local disk, Redis) held, so not embedded.
  res.set_header("X-Pagekeeper-Cache-Tier-Hits", std::to_string(a.from_tiers));
  // Which tier served them: "tier-disk=3, redis=61" (tiers in lookup order).
  const std::shared_ptr<TierChain> chain = service.tiers();
  if (!chain) return;
  std::string detail;
  for (std::size_t i = 0; i < chain->size() && i < a.from_tier.size(); ++i) {
    if (!detail.empty()) detail += ", ";
    detail += chain->tiers()[i]->name() + "=" + std::to_string(a.from_tier[i]);
  }
  res.set_header("X-Pagekeeper-Cache-Tier-Hits-By-Tier", detail);
}

// OpenAI reports tokens of its own tokenizer; we have none for every model, so usage uses
// the common estimate of one token per 4 bytes (rounded up, at least 1 per input).
std::uint64_t estimated_tokens(const std::vector<std::string>& texts) {
  std::uint64_t n = 0;
  for (const auto& t : texts) n += std::max<std::uint64_t>(1, (t.size() + 3) / 4);
  return n;
}

std::string hit_rate_percent(std::uint64_t hits, std::uint64_t misses) {
  const std::uint64_t lookups = hits + misses;
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", lookups == 0 ? 0.0 : 100.0 * static_cast<double>(hits) / lookups);
  return buf;
}

bool wants_json(const server::HttpRequest& req, bool asked_in_body) {
  if (asked_in_body) return true;
  if (const std::optional<std::string> f = req.query_param("format")) {
    if (*f == "json") return true;
    if (*f != "binary") throw RequestError(400, "invalid_value", "query parameter format must be binary or json", "format");
    return false;
  }
  const std::string_view accept = req.header("Accept");
  return accept.find("application/json") != std::string::npos &&
         accept.find("application/octet-stream") == std::string::npos;
}

}  // namespace

void Daemon::Impl::handle_openai_embeddings(const HttpRequest& req, HttpResponse& res) {
  const EmbeddingsRequest request = parse_embeddings_request(req.body, config.limits);
  const std::string_view model = request.model.empty() ? std::string_view("default") : request.model;
  check_dimensions(request, model);
  write_openai_embeddings(request, embeddings->embed_batch(request.inputs, model), res);
}

bool Daemon::Impl::answer_embeddings_if_cached(const HttpRequest& req, HttpResponse& res) {
  const EmbeddingsRequest request = parse_embeddings_request(req.body, config.limits);
  // Checking `dimensions` may load a model: that is a worker's job.
  if (request.dimensions) return false;
  const std::string_view model = request.model.empty() ? std::string_view("default") : request.model;
  std::optional<EmbedBatchResult> result = embeddings->embed_batch_if_cached(request.inputs, model);
  if (!result) return false;
  write_openai_embeddings(request, *result, res);
  return true;
}

void Daemon::Impl::check_dimensions(const EmbeddingsRequest& request, std::string_view model) const {
  if (request.dimensions) {
    const auto embedder = embeddings->models().embedder(model);
    if (static_cast<std::uint64_t>(*request.dimensions) != embedder->dimensions())
      throw RequestError(400, "unsupported_dimensions",
                         "dimensions=" + std::to_string(*request.dimensions) + " is not supported: model '" +
                             embedder->name() + "' produces " + std::to_string(embedder->dimensions()) +
                             "-dimensional vectors and cannot shorten them",
                         "dimensions");
  }
}

void Daemon::Impl::write_openai_embeddings(const EmbeddingsRequest& request, const EmbedBatchResult& result,
                                           HttpResponse& res) const {
  std::string body;
  const std::size_t dims = result.vectors.empty() ? 0 : result.vectors.front().size();
  body.reserve(128 + result.vectors.size() * (dims * 12 + 64));
  body += R"({"object":"list","data":[)";
  std::string bytes;
  for (std::size_t i = 0; i < result.vectors.size(); ++i) {
    if (i != 0) body += ',';
    body += R"({"object":"embedding","index":)";
    body += std::to_string(i);
    body += R"(,"embedding":)";
    if (request.encoding_format == EncodingFormat::kBase64) {
      bytes.clear();
      server::append_le_float32(bytes, result.vectors[i].values());
      body += '"';
      server::append_base64(body, bytes);
      body += '"';
    } else {
      server::append_json_floats(body, result.vectors[i].values());
    }
    body += '}';
  }
  body += R"(],"model":)";
  server::append_json_string(body, result.model);
  const std::string tokens = std::to_string(estimated_tokens(request.inputs));
  body += R"(,"usage":{"prompt_tokens":)" + tokens + R"(,"total_tokens":)" + tokens + "}}";
  set_cache_headers(res, result.accounting, *embeddings);
  res.set_content(std::move(body), "application/json");
}

void Daemon::Impl::install_command_handlers() {
  add_command("embedding/generate", false, [this](const HttpRequest& req, HttpResponse& res) {
    const GenerateRequest request = parse_generate_request(req.body, config.limits);
    const bool json = wants_json(req, request.json);
    const auto t0 = std::chrono::steady_clock::now();
    const EmbedBatchResult result =
        embeddings->embed_batch(request.texts, request.model.empty() ? std::string_view("default") : request.model);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    // The original's shape: dims is the length of the first vector (0 when there is none).
    const std::size_t dims = result.vectors.empty() ? 0 : result.vectors.front().size();
    set_cache_headers(res, result.accounting, *embeddings);
    if (json) {
      std::string body = R"({"type":"json","dtype":"f32","shape":[)" + std::to_string(dims) +
                         R"(],"batchSize":)" + std::to_string(result.vectors.size()) + R"(,"durationMs":)" +
                         std::to_string(ms) + R"(,"model":)";
      server::append_json_string(body, result.model);
      body += R"(,"hits":)" + std::to_string(result.accounting.hits) + R"(,"misses":)" +
              std::to_string(result.accounting.misses) + R"(,"embeddings":[)";
      for (std::size_t i = 0; i < result.vectors.size(); ++i) {
        if (i != 0) body += ',';
        server::append_json_floats(body, result.vectors[i].values());
      }
      body += "]}";
      res.set_content(body, "application/json");
      return;
    }
    std::string body;
    body.reserve(result.vectors.size() * dims * sizeof(float));
    for (const auto& v : result.vectors) server::append_le_float32(body, v.values());
    res.set_header("X-Pagekeeper-Type", "binary");
    res.set_header("X-Pagekeeper-Dtype", "f32");
    res.set_header("X-Pagekeeper-Byte-Order", "little-endian");
    res.set_header("X-Pagekeeper-Length", std::to_string(body.size()));
    res.set_header("X-Pagekeeper-Shape", std::to_string(dims));
    res.set_header("X-Pagekeeper-Batch-Size", std::to_string(result.vectors.size()));
    res.set_header("X-Pagekeeper-Duration-Ms", std::to_string(ms));
    res.set_header("X-Pagekeeper-Model", result.model);
    res.set_content(body, "application/octet-stream");
  });

  add_command("embedding/cache/stats", false, [this](const HttpRequest& req, HttpResponse& res) {
    parse_command_params(req.body);
    const PoolStats s = embeddings->stats();
    nlohmann::json body = {
        {"hits", s.hits},
        {"misses", s.misses},
        {"size", s.entry_count},
        {"pinned", s.pinned_count},
        {"totalBytes", s.total_bytes},
        {"maxBytes", s.max_bytes},
        {"pressure", s.pressure},
        {"evictions", s.evictions},
        {"hitRatePercent", hit_rate_percent(s.hits, s.misses)},
        {"tiers", tiers_json(tiers)},
        {"embedderTexts", embeddings->embedded_texts()},
    };
    res.set_content(body.dump(), "application/json");
  });

  add_command("embedding/cache/clear", true, [this](const HttpRequest& req, HttpResponse& res) {
    parse_command_params(req.body);
    const std::size_t cleared = embeddings->clear();
    res.set_content(nlohmann::json{{"cleared", cleared}, {"success", true}}.dump(), "application/json");
  });

  add_command("embedding/model/list", false, [this](const HttpRequest& req, HttpResponse& res) {
    parse_command_params(req.body);
    const std::string default_model = embeddings->models().default_model();
    nlohmann::json models = nlohmann::json::array();
    for (const auto& name : embeddings->models().models()) models.push_back(model_entry(name));
    res.set_content(nlohmann::json{{"models", models}, {"default", default_model}}.dump(), "application/json");
  });

  add_command("system/pressure-broker-state", false, [this](const HttpRequest& req, HttpResponse& res) {
    parse_command_params(req.body);
    res.set_content(nlohmann::json(broker->snapshot()).dump(), "application/json");
  });

  add_command("system/pressure-alerts", false, [this](const HttpRequest& req, HttpResponse& res) {
    parse_command_params(req.body);
    nlohmann::json list = nlohmann::json::array();
    std::uint64_t total = 0;
    {
      MutexLock lock(alerts_mutex);
      for (const auto& a : alerts) list.push_back(a);
      total = alerts_total;
    }
    res.set_content(nlohmann::json{{"alerts", list}, {"alertsTotal", total}}.dump(), "application/json");
  });

  install_cognition_handlers();
  install_vector_commands();
  install_model_commands();
  install_dashboard_commands();

}

std::string Daemon::Impl::prometheus_text() const {
  PrometheusWriter out;
  const BrokerSnapshot snap = broker->snapshot();
  struct PoolFamily {
    const char* name;
    const char* type;
    const char* help;
    double (*value)(const PoolPressure&);
  };
  static const PoolFamily kPoolFamilies[] = {
      {"pagekeeper_pool_bytes", "gauge", "Bytes held by the pool.",
       [](const PoolPressure& p) { return static_cast<double>(p.stats.total_bytes); }},
      {"pagekeeper_pool_max_bytes", "gauge", "Byte budget of the pool (0: unmanaged).",
       [](const PoolPressure& p) { return static_cast<double>(p.stats.max_bytes); }},
      {"pagekeeper_pool_entries", "gauge", "Entries resident in the pool.",
       [](const PoolPressure& p) { return static_cast<double>(p.stats.entry_count); }},
      {"pagekeeper_pool_pinned_entries", "gauge", "Entries with at least one live pin.",
       [](const PoolPressure& p) { return static_cast<double>(p.stats.pinned_count); }},
      {"pagekeeper_pool_inflight_loads", "gauge", "Loads running in the pool's single-flight slots.",
       [](const PoolPressure& p) { return static_cast<double>(p.stats.inflight); }},
      {"pagekeeper_pool_hits_total", "counter", "Lookups that found their entry.",
       [](const PoolPressure& p) { return static_cast<double>(p.stats.hits); }},
      {"pagekeeper_pool_misses_total", "counter", "Lookups that did not find their entry.",
       [](const PoolPressure& p) { return static_cast<double>(p.stats.misses); }},
      {"pagekeeper_pool_evictions_total", "counter", "Entries evicted from the pool.",
       [](const PoolPressure& p) { return static_cast<double>(p.stats.evictions); }},
      {"pagekeeper_pool_ghost_hits_total", "counter",
       "Misses that re-loaded an entry the pool had evicted shortly before (its ghost of evicted keys).",
       [](const PoolPressure& p) { return static_cast<double>(p.stats.ghost_hits); }},
      {"pagekeeper_pool_pressure", "gauge",
       "Highest pressure that binds on the pool: its own past its budget, the global budget's or the host's.",
       [](const PoolPressure& p) { return p.pressure; }},
      {"pagekeeper_pool_own_pressure", "gauge", "Bytes held / byte budget once past the budget, else 0.",
       [](const PoolPressure& p) { return p.own_pressure; }},
      {"pagekeeper_pool_shed_bytes_total", "counter", "Bytes the broker shed from the pool for host or budget pressure.",
       [](const PoolPressure& p) { return static_cast<double>(p.counters.shed_bytes); }},
      {"pagekeeper_pool_tier", "gauge", "Pressure tier of the pool: 0 normal, 1 warning, 2 high, 3 critical.",
       [](const PoolPressure& p) { return static_cast<double>(p.tier); }},
      {"pagekeeper_pool_reliefs_total", "counter", "Times the broker relieved the pool for its own pressure.",
       [](const PoolPressure& p) { return static_cast<double>(p.counters.relief_count); }},
      {"pagekeeper_pool_relief_bytes_freed_total", "counter", "Bytes the broker's reliefs freed from the pool.",
       [](const PoolPressure& p) { return static_cast<double>(p.counters.relief_bytes_freed); }},
  };
  for (const auto& f : kPoolFamilies) {
    out.family(f.name, f.type, f.help);
    for (const auto& p : snap.pools) out.sample(f.name, {{"pool", p.name}}, f.value(p));
  }
  out.family("pagekeeper_pool_miss_ratio_estimate", "gauge",
             "Estimated miss ratio of a pool that reports utility, at a multiple of its budget.");
  for (const auto& p : snap.pools) {
    if (!p.utility) continue;
    for (const auto& point : p.utility->curve) {
      out.sample("pagekeeper_pool_miss_ratio_estimate", {{"pool", p.name}, {"bytes", std::to_string(point.bytes)}},
                 point.miss_ratio);
    }
  }
  out.family("pagekeeper_broker_alerts_suppressed_total", "counter",
             "Alerts of an unchanged condition held back by the exponential backoff.");
  out.sample("pagekeeper_broker_alerts_suppressed_total", {}, static_cast<double>(snap.alerts_suppressed_total));
  out.family("pagekeeper_broker_global_pressure", "gauge",
             "Highest pressure that binds: a pool past its budget, the global budget or the host.");
  out.sample("pagekeeper_broker_global_pressure", {}, snap.global_pressure);
  out.family("pagekeeper_broker_tier", "gauge", "Global pressure tier: 0 normal, 1 warning, 2 high, 3 critical.");
  out.sample("pagekeeper_broker_tier", {}, static_cast<double>(snap.global_tier));
  out.family("pagekeeper_broker_tier_info", "gauge", "1 for the current global tier's label.");
  for (const auto tier : {PressureTier::normal, PressureTier::warning, PressureTier::high, PressureTier::critical})
    out.sample("pagekeeper_broker_tier_info", {{"tier", std::string(tier_label(tier))}},
               tier == snap.global_tier ? 1.0 : 0.0);
  out.family("pagekeeper_broker_effective_passes_total", "counter",
             "Broker relief passes that freed at least one byte (the original's evictionsFired).");
  out.sample("pagekeeper_broker_effective_passes_total", {}, static_cast<double>(snap.evictions_fired));
  out.family("pagekeeper_broker_pool_reliefs_total", "counter", "Pool reliefs that freed bytes, over all pools.");
  out.sample("pagekeeper_broker_pool_reliefs_total", {}, static_cast<double>(snap.pool_reliefs_total));
  out.family("pagekeeper_broker_bytes_freed_total", "counter", "Bytes freed by relief and host shedding.");
  out.sample("pagekeeper_broker_bytes_freed_total", {}, static_cast<double>(snap.bytes_freed_total));
  out.family("pagekeeper_broker_running", "gauge", "1 while background relief runs.");
  out.sample("pagekeeper_broker_running", {}, snap.running ? 1.0 : 0.0);
  {
    MutexLock lock(alerts_mutex);
    out.family("pagekeeper_broker_alerts_total", "counter", "Pressure alerts raised by the broker.");
    out.sample("pagekeeper_broker_alerts_total", {}, static_cast<double>(alerts_total));
  }
  if (snap.host_memory && snap.host_memory->known()) {
    out.family("pagekeeper_host_memory_used_bytes", "gauge", "Host memory in use (cgroup or /proc/meminfo).");
    out.sample("pagekeeper_host_memory_used_bytes", {}, static_cast<double>(snap.host_memory->used_bytes));
    out.family("pagekeeper_host_memory_limit_bytes", "gauge", "Host memory limit (cgroup or /proc/meminfo).");
    out.sample("pagekeeper_host_memory_limit_bytes", {}, static_cast<double>(snap.host_memory->limit_bytes));
  }
  // The embedding cache's real memory: its budget counts vectors, its storage maps blocks.
  const std::vector<VectorSlab::Stats> storage = embeddings->storage_stats();
  out.family("pagekeeper_embedding_storage_bytes", "gauge",
             "Resident memory of the vector storage, by dimension count: blocks mapped (a block mapped "
             "ahead included) less the pages given back to the kernel.");
  for (const VectorSlab::Stats& st : storage) {
    out.sample("pagekeeper_embedding_storage_bytes", {{"dimensions", std::to_string(st.dimensions)}},
               static_cast<double>(st.mapped_bytes - st.released_bytes));
  }
  out.family("pagekeeper_embedding_storage_vectors", "gauge",
             "Vectors alive in that storage: cached, or held by a request in flight.");
  for (const VectorSlab::Stats& st : storage) {
    out.sample("pagekeeper_embedding_storage_vectors", {{"dimensions", std::to_string(st.dimensions)}},
               static_cast<double>(st.live_vectors));
  }
  out.family("pagekeeper_build_info", "gauge", "1, labelled with the version of this pagekeeperd.");
  out.sample("pagekeeper_build_info", {{"version", PAGEKEEPER_BUILD_VERSION}}, 1.0);
  out.family("pagekeeper_http_in_flight_requests", "gauge", "Requests being handled now.");
  out.sample("pagekeeper_http_in_flight_requests", {}, static_cast<double>(in_flight.load(std::memory_order_relaxed)));
  server::write_tier_metrics(out, tiers, *embeddings);
  metrics.write(out);
  return out.str();
}

}  // namespace pagekeeper
