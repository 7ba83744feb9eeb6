// `pagekeeper bench`: a closed-loop load generator against a running pagekeeperd's
// /v1/embeddings: N keep-alive connections, each sending its next request as soon as the
// previous one is answered, for a fixed time; reports requests/s, latency percentiles, cache
// hits/misses and errors.

#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <thread>

#include "cli/commands.hpp"
#include "cli/server_client.hpp"
#include "pagekeeper/detail/mutex.hpp"

namespace pagekeeper::cli {

namespace {

struct BenchOptions {
  std::string server = kDefaultServerUrl;
  std::size_t connections = 8;
  double duration_s = 5;
  std::size_t batch = 1;
  double unique_fraction = 0.0;  // share of texts never sent before (misses)
  std::string encoding = "float";
  std::string model = "default";
};

}  // namespace

void add_bench_command(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand("bench", "Load-test a running pagekeeperd's /v1/embeddings");
  cmd->add_option("--server", o->server, "pagekeeperd URL (a bare host:port means http)")
      ->capture_default_str()
      ->envname("PAGEKEEPER_SERVER");
  cmd->add_option("-c,--connections", o->connections, "Concurrent keep-alive connections")
      ->check(CLI::Range(1, 1024))->capture_default_str();
  cmd->add_option("-d,--duration", o->duration_s, "Seconds")->check(CLI::Range(0.1, 3600.0))->capture_default_str();
  cmd->add_option("--batch", o->batch, "Texts per request")->check(CLI::Range(1, 4096))->capture_default_str();
  cmd->add_option("--unique", o->unique_fraction, "Fraction of texts that are new (cache misses), 0..1")
      ->check(CLI::Range(0.0, 1.0))->capture_default_str();
  cmd->add_option("--encoding", o->encoding, "encoding_format")->check(CLI::IsMember({"float", "base64"}))->capture_default_str();
  cmd->add_option("--model", o->model, "Model")->capture_default_str();
  cmd->callback([o] {
    // Warm the cached texts first so that --unique 0 measures pure hits.
    ServerClient warm(o->server);
    nlohmann::json hot = nlohmann::json::array();
    for (std::size_t i = 0; i < o->batch; ++i) hot.push_back("pagekeeper bench cached text " + std::to_string(i));
    warm.post("/v1/embeddings", nlohmann::json{{"input", hot}, {"model", o->model}}.dump());

    std::atomic<bool> stop{false};
    // Guards the five totals below until the threads are joined (locals: the analysis
    // checks only members and globals, so they are not marked GUARDED_BY).
    Mutex merge;
    std::vector<double> latencies_us;
    std::uint64_t hits = 0, misses = 0, errors = 0;
    std::string first_error;
    std::vector<std::thread> threads;
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t t = 0; t < o->connections; ++t) {
      threads.emplace_back([&, t] {
        ServerClient client(o->server);
        std::mt19937_64 rng(t + 1);
        std::uniform_real_distribution<double> coin(0, 1);
        std::vector<double> mine;
        std::uint64_t h = 0, m = 0, e = 0, n = 0;
        std::string err;
        const std::string run_id = std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
        while (!stop.load(std::memory_order_relaxed)) {
          nlohmann::json texts = nlohmann::json::array();
          for (std::size_t i = 0; i < o->batch; ++i) {
            if (coin(rng) < o->unique_fraction)
              texts.push_back("bench unique " + run_id + " " + std::to_string(t) + " " + std::to_string(n++));
            else
              texts.push_back(hot[i]);
          }
          const std::string body =
              nlohmann::json{{"input", texts}, {"model", o->model}, {"encoding_format", o->encoding}}.dump();
          const auto s = std::chrono::steady_clock::now();
          try {
            const ServerReply r = client.post("/v1/embeddings", body);
            h += r.cache_hits;
            m += r.cache_misses;
          } catch (const std::exception& ex) {
            if (e++ == 0) err = ex.what();
            continue;
          }
          mine.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - s).count());
        }
        MutexLock lock(merge);
        latencies_us.insert(latencies_us.end(), mine.begin(), mine.end());
        hits += h;
        misses += m;
        errors += e;
        if (first_error.empty()) first_error = err;
      });
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(o->duration_s));
    stop = true;
    for (auto& th : threads) th.join();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::sort(latencies_us.begin(), latencies_us.end());
    auto pct = [&](double q) {
      if (latencies_us.empty()) return 0.0;
      return latencies_us[std::min(latencies_us.size() - 1, static_cast<std::size_t>(q * latencies_us.size()))];
    };
    std::printf("bench %s: %zu connections, %.1fs, batch %zu, unique %.2f, %s\n", o->server.c_str(), o->connections,
                seconds, o->batch, o->unique_fraction, o->encoding.c_str());
    std::printf("requests %zu (%.0f req/s, %.0f texts/s), errors %llu\n", latencies_us.size(),
                latencies_us.size() / seconds, latencies_us.size() * o->batch / seconds,
                static_cast<unsigned long long>(errors));
    std::printf("latency us: p50 %.0f  p90 %.0f  p99 %.0f  max %.0f\n", pct(0.50), pct(0.90), pct(0.99),
                latencies_us.empty() ? 0.0 : latencies_us.back());
    std::printf("cache: %llu hits, %llu misses\n", static_cast<unsigned long long>(hits),
                static_cast<unsigned long long>(misses));
    if (errors) std::printf("first error: %s\n", first_error.c_str());
  });
}

}  // namespace pagekeeper::cli
