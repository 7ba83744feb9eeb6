// Loads the dashboard in headless Chromium (Debian's `chromium`) at 1,280 px against a daemon
// that has seen traffic and alerts (its host memory simulated near full), and checks what an operator would: every chart drew data
// from the daemon's history as soon as the page opened (app.js writes the values each chart
// drew into its data-points), the page does not scroll horizontally and no card is wider than
// itself, the pools and models tables are filled, and repeated alerts are grouped. Screenshots
// of the page go to <build>/test-output/ (dashboard-1280.png).

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <regex>

#include "pagekeeper/host_memory.hpp"
#include "server_test_util.hpp"
#include "support/critical_host.hpp"

namespace pagekeeper::test {
namespace {

using nlohmann::json;

std::string run(const std::string& command) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

// The integer in attribute `attribute` of the element with `id` ("" for <body>), or -1.
long attribute_of(const std::string& dom, const std::string& id, const std::string& attribute) {
  const std::string element = id.empty() ? "<body[^>]*" : "id=\"" + id + "\"[^>]*";
  std::smatch m;
  if (!std::regex_search(dom, m, std::regex(element + attribute + "=\"(-?\\d+)\""))) return -1;
  return std::stol(m[1]);
}

json history(const TestServer& s) {
  auto c = s.client();
  auto r = c.Post("/api/system/history", "{}", "application/json");
  return r && r->status == 200 ? json::parse(r->body) : json();
}

TEST(DashboardChromium, ChartsFilledFromHistoryAndReadableAt1280) {
  const char* chromium = std::getenv("PAGEKEEPER_CHROMIUM");
  const std::string browser = chromium ? chromium : "/usr/bin/chromium";
  if (!std::filesystem::exists(browser)) {
    // CI installs chromium and sets PAGEKEEPER_REQUIRE_CHROMIUM=1, so there a missing browser
    // fails the test instead of skipping it.
    const char* required = std::getenv("PAGEKEEPER_REQUIRE_CHROMIUM");
    if (required != nullptr && std::string(required) == "1") {
      FAIL() << browser << " is not installed (apt-get install chromium)";
    }
    GTEST_SKIP() << browser << " is not installed (apt-get install chromium)";
  }

  ServerConfig config = small_config();
  config.history_interval = std::chrono::milliseconds(100);
  // A global budget: the broker divides it by the pools' curves, which the embedding cache
  // then samples (the curve chart draws them).
  config.broker.memory_budget_bytes = std::uint64_t{16} << 20;
  // The host's memory, simulated at 99% of 1 GiB: the broker sheds for it on every pass and
  // reports the same condition again and again (alerts that the page must group).
  auto host = test_support::critical_host();
  DaemonServices services;
  services.broker = std::make_shared<PressureBroker>(config.broker, host);
  TestServer s(config, std::move(services));
  auto c = s.client();
  // Traffic spread over several history samples: repeated texts (hits) and new ones, paced so
  // that the broker and the history sampler get the cores between rounds.
  int round = 0;
  test_support::eventually(
      [&] {
        json texts = json::array();
        for (int i = 0; i < 50; ++i) texts.push_back("dashboard text " + std::to_string(round * 50 + i));
        c.Post("/v1/embeddings", json{{"input", texts}}.dump(), "application/json");
        c.Post("/v1/embeddings", R"({"input":["dashboard one","dashboard two"]})", "application/json");
        ++round;
        const json h = history(s);
        int busy = 0;
        for (const json& sample : h["samples"]) busy += sample["requestsPerSecond"].get<double>() > 0 ? 1 : 0;
        return busy >= 3 && s.daemon->recent_alerts().size() >= 2;
      },
      std::chrono::milliseconds(10));
  ASSERT_GE(s.daemon->recent_alerts().size(), 2U) << "the simulated host pressure raised too few alerts";

  const auto out_dir = std::filesystem::path(PAGEKEEPER_BINARY_DIR) / "test-output";
  std::filesystem::create_directories(out_dir);
  const auto screenshot = out_dir / "dashboard-1280.png";
  std::filesystem::remove(screenshot);
  const auto profile = std::filesystem::temp_directory_path() / ("pagekeeper-chromium-" + std::to_string(::getpid()));
  std::filesystem::create_directories(profile);
  const std::string flags =
      " --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking"
      " --disable-component-update --disable-sync --disable-dev-shm-usage --hide-scrollbars"
      " --user-data-dir=" + profile.string() + " --virtual-time-budget=4000";
  const std::string url = s.daemon->url() + "/";
  const std::string dom =
      run("timeout 120 " + browser + flags + " --window-size=1280,1000 --dump-dom " + url + " 2>/dev/null");
  run("timeout 120 " + browser + flags + " --window-size=1280,2000 --screenshot=" + screenshot.string() + " " + url +
      " >/dev/null 2>&1");
  std::filesystem::remove_all(profile);

  ASSERT_GT(attribute_of(dom, "", "data-rendered"), 0) << dom.substr(0, 3000);
  for (const char* chart : {"chart-requests", "chart-latency", "chart-pool-bytes", "chart-hit-ratio", "chart-pool-budgets",
                            "chart-curves", "chart-host-memory"})
    EXPECT_GE(attribute_of(dom, chart, "data-points"), 2) << chart << " is empty after traffic";
  const long scroll = attribute_of(dom, "", "data-scroll-width");
  const long client = attribute_of(dom, "", "data-client-width");
  ASSERT_GT(client, 0);
  EXPECT_LE(scroll, client) << "the page scrolls horizontally at 1,280 px";
  std::smatch m;
  ASSERT_TRUE(std::regex_search(dom, m, std::regex(R"re(data-overflow="([^"]*)")re")));
  EXPECT_EQ(m[1].str(), "") << "cards wider than themselves: " << m[1];
  EXPECT_NE(dom.find(">embedding-cache</td>"), std::string::npos) << "pools table";
  EXPECT_NE(dom.find(">lexical"), std::string::npos) << "models table";
  const long alerts = attribute_of(dom, "alerts", "data-alerts");
  const long groups = attribute_of(dom, "alerts", "data-groups");
  EXPECT_GE(alerts, 2);
  EXPECT_GE(groups, 1);
  EXPECT_LT(groups, alerts) << "repeated alerts of one pool are not grouped";
  EXPECT_TRUE(std::filesystem::exists(screenshot) && std::filesystem::file_size(screenshot) > 10000)
      << "no screenshot at " << screenshot;
}

}  // namespace
}  // namespace pagekeeper::test
