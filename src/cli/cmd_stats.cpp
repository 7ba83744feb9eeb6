// `pagekeeper stats`: a running server's pools, broker state, cache and recent alerts, as a
// readable report (or the raw JSON with --json).

#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

#include "cli/commands.hpp"
#include "cli/server_client.hpp"

namespace pagekeeper::cli {

namespace {

std::string bytes(std::uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int i = 0;
  while (v >= 1024 && i < 4) {
    v /= 1024;
    ++i;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), i == 0 ? "%.0f %s" : "%.1f %s", v, units[i]);
  return buf;
}

}  // namespace

void add_stats_command(CLI::App& app) {
  auto server = std::make_shared<std::string>(kDefaultServerUrl);
  auto json = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("stats", "Show a running pagekeeperd's pools, broker state and cache");
  cmd->add_option("--server", *server, "pagekeeperd URL (a bare host:port means http)")
      ->capture_default_str()
      ->envname("PAGEKEEPER_SERVER");
  cmd->add_flag("--json", *json, "Print the raw JSON");
  cmd->callback([server, json] {
    ServerClient client(*server);
    const auto broker = client.post_json("/api/system/pressure-broker-state", nlohmann::json::object());
    const auto cache = client.post_json("/api/embedding/cache/stats", nlohmann::json::object());
    const auto alerts = client.post_json("/api/system/pressure-alerts", nlohmann::json::object());
    if (*json) {
      std::cout << nlohmann::json{{"broker", broker}, {"cache", cache}, {"alerts", alerts}}.dump(2) << std::endl;
      return;
    }
    std::printf("pagekeeperd at %s\n", server->c_str());
    std::printf("broker: tier %s, global pressure %.3f, %s; effective passes %llu, freed %s\n",
                broker["globalTier"].get<std::string>().c_str(), broker["globalPressure"].get<double>(),
                broker["running"].get<bool>() ? "running" : "stopped",
                static_cast<unsigned long long>(broker["evictionsFired"].get<std::uint64_t>()),
                bytes(broker["bytesFreedTotal"].get<std::uint64_t>()).c_str());
    if (broker.contains("hostMemory") && broker["hostMemory"].is_object())
      std::printf("host memory: %s of %s (pressure %.3f, %s)\n",
                  bytes(broker["hostMemory"]["usedBytes"].get<std::uint64_t>()).c_str(),
                  bytes(broker["hostMemory"]["limitBytes"].get<std::uint64_t>()).c_str(),
                  broker["hostMemory"]["pressure"].get<double>(),
                  broker["hostMemory"]["source"].get<std::string>().c_str());
    std::printf("\n%-28s %-9s %9s %11s %11s %9s %7s %10s %10s %8s %10s\n", "pool", "tier", "pressure", "bytes",
                "budget", "entries", "pinned", "hits", "misses", "hit%", "evictions");
    for (const auto& p : broker["pools"]) {
      const auto& s = p["stats"];
      const auto hits = s["hitCount"].get<std::uint64_t>(), misses = s["missCount"].get<std::uint64_t>();
      char rate[16] = "-";
      if (hits + misses > 0) std::snprintf(rate, sizeof(rate), "%.1f", 100.0 * hits / (hits + misses));
      std::printf("%-28s %-9s %9.3f %11s %11s %9llu %7llu %10llu %10llu %8s %10llu\n",
                  p["name"].get<std::string>().substr(0, 28).c_str(), p["tier"].get<std::string>().c_str(),
                  p["pressure"].get<double>(), bytes(s["totalBytes"].get<std::uint64_t>()).c_str(),
                  p["managed"].get<bool>() ? bytes(s["maxBytes"].get<std::uint64_t>()).c_str() : "unmanaged",
                  static_cast<unsigned long long>(s["entryCount"].get<std::uint64_t>()),
                  static_cast<unsigned long long>(s["pinnedCount"].get<std::uint64_t>()),
                  static_cast<unsigned long long>(hits), static_cast<unsigned long long>(misses), rate,
                  static_cast<unsigned long long>(s["evictionCount"].get<std::uint64_t>()));
    }
    std::printf("\nembedding cache: %llu entries, hit rate %s%% (%llu hits, %llu misses)\n",
                static_cast<unsigned long long>(cache["size"].get<std::uint64_t>()),
                cache["hitRatePercent"].get<std::string>().c_str(),
                static_cast<unsigned long long>(cache["hits"].get<std::uint64_t>()),
                static_cast<unsigned long long>(cache["misses"].get<std::uint64_t>()));
    std::printf("alerts: %llu in total", static_cast<unsigned long long>(alerts["alertsTotal"].get<std::uint64_t>()));
    const auto& list = alerts["alerts"];
    std::printf(list.empty() ? "\n" : ", most recent:\n");
    for (std::size_t i = list.size() > 5 ? list.size() - 5 : 0; i < list.size(); ++i)
      std::printf("  %s %s pressure %.3f freed %s (%s)\n", list[i]["tier"].get<std::string>().c_str(),
                  list[i]["tierName"].get<std::string>().c_str(), list[i]["pressure"].get<double>(),
                  bytes(list[i]["bytesFreed"].get<std::uint64_t>()).c_str(), list[i]["cause"].get<std::string>().c_str());
  });
}

}  // namespace pagekeeper::cli
