// Loads the dashboard in headless Chromium (Debian's `chromium`) against a running server and
// checks that the charts drew points from live data: app.js writes the number of points it
// drew into <body data-rendered> and each canvas's data-points.

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <regex>

#include "server_test_util.hpp"

namespace pagekeeper::test {
namespace {

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

TEST(DashboardChromium, ChartsRenderWithLiveData) {
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

  TestServer s;
  auto c = s.client();
  for (int i = 0; i < 5; ++i)
    c.Post("/v1/embeddings", R"({"input":["dashboard one","dashboard two"]})", "application/json");

  const auto profile = std::filesystem::temp_directory_path() /
                       ("pagekeeper-chromium-" + std::to_string(::getpid()));
  std::filesystem::create_directories(profile);
  const std::string command =
      "timeout 120 " + browser +
      " --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking"
      " --disable-component-update --disable-sync --disable-dev-shm-usage --user-data-dir=" + profile.string() +
      " --virtual-time-budget=4000 --dump-dom " + s.daemon->url() + "/ 2>/dev/null";
  const std::string dom = run(command);
  std::filesystem::remove_all(profile);

  std::smatch m;
  ASSERT_TRUE(std::regex_search(dom, m, std::regex(R"re(data-rendered="(\d+)")re"))) << dom.substr(0, 2000);
  EXPECT_GE(std::stoi(m[1]), 2) << "no points drawn";
  ASSERT_TRUE(std::regex_search(dom, m, std::regex(R"re(id="pressure-chart"[^>]*data-points="(\d+)")re")));
  EXPECT_GE(std::stoi(m[1]), 1);
  ASSERT_TRUE(std::regex_search(dom, m, std::regex(R"re(id="hitrate-chart"[^>]*data-points="(\d+)")re")));
  EXPECT_GE(std::stoi(m[1]), 1) << "the hit-rate chart drew nothing";
  EXPECT_NE(dom.find("<td>embedding-cache</td>"), std::string::npos);
  EXPECT_NE(dom.find("class=\"tier tier-normal\""), std::string::npos);
}

}  // namespace
}  // namespace pagekeeper::test
