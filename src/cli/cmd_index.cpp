// `pagekeeper index DIR`: embeds every text chunk of a tree through a running server (--server)
// or in-process, with a progress bar, rate and ETA on a terminal and plain lines otherwise,
// then a summary of cache hits and misses.

#include <CLI/CLI.hpp>
#include <unistd.h>

#include <cstdio>

#include "cli/commands.hpp"
#include "cli/indexer.hpp"
#include "cli/tier_flags.hpp"

namespace pagekeeper::cli {

void add_index_command(CLI::App& app) {
  auto o = std::make_shared<IndexOptions>();
  auto root = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("index", "Embed every text chunk of a directory tree and report cache hits");
  cmd->add_option("dir", *root, "Directory to index")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--server", o->server, "pagekeeperd URL (http://host:port; a bare host:port means http); in-process when absent")
      ->envname("PAGEKEEPER_SERVER");
  cmd->add_option("--model", o->model, "Model name or alias")->capture_default_str();
  cmd->add_option("--chunk-bytes", o->chunk_bytes, "Largest chunk in bytes")->check(CLI::Range(16, 1 << 20))->capture_default_str();
  cmd->add_option("--batch", o->batch, "Chunks per request")->check(CLI::Range(1, 4096))->capture_default_str();
  cmd->add_option("--token", o->token, "Bearer token")->envname("PAGEKEEPER_TOKEN");
  cmd->add_flag("--json", *json, "Print the summary as one JSON object");
  auto tier_flags = add_tier_flags(*cmd);
  cmd->callback([o, root, json, tier_flags] {
    o->root = *root;
    const Tiers tiers = o->server.empty() ? init_in_process_tiers(*tier_flags) : Tiers{};
    const bool tty = ::isatty(STDERR_FILENO) == 1;
    double last_line = -1;
    const IndexSummary s = run_index(*o, [&](const IndexProgress& p) {
      const double rate = p.seconds > 0 ? p.done / p.seconds : 0;
      const double eta = rate > 0 ? (p.total - p.done) / rate : 0;
      if (tty) {
        constexpr int kWidth = 30;
        const int filled = p.total ? static_cast<int>(kWidth * p.done / p.total) : kWidth;
        std::fprintf(stderr, "\r[%s%s] %5.1f%% %zu/%zu chunks  %.0f chunks/s  ETA %.0fs  hits %zu misses %zu ",
                     std::string(filled, '#').c_str(), std::string(kWidth - filled, '.').c_str(),
                     p.total ? 100.0 * p.done / p.total : 100.0, p.done, p.total, rate, eta, p.hits, p.misses);
        if (p.done == p.total) std::fputc('\n', stderr);
      } else if (p.done == p.total || p.seconds - last_line >= 1.0) {
        last_line = p.seconds;
        std::fprintf(stderr, "index: %zu/%zu chunks, %.0f chunks/s, ETA %.0fs, hits %zu, misses %zu\n", p.done,
                     p.total, rate, eta, p.hits, p.misses);
      }
    });
    if (tiers.chain) tiers.chain->flush();  // what this process embedded stays below
    if (*json) {
      std::printf("{\"files\":%zu,\"skippedFiles\":%zu,\"chunks\":%zu,\"hits\":%zu,\"misses\":%zu,"
                  "\"hitRatePercent\":%.1f,\"seconds\":%.3f}\n",
                  s.files, s.skipped_files, s.chunks, s.hits, s.misses, s.hit_rate_percent(), s.seconds);
      return;
    }
    std::printf("indexed %zu files (%zu skipped), %zu chunks in %.2fs: %zu hits, %zu misses, hit rate %.1f%%\n",
                s.files, s.skipped_files, s.chunks, s.seconds, s.hits, s.misses, s.hit_rate_percent());
  });
}

}  // namespace pagekeeper::cli
