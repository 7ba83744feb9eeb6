// Conventions of both command-line programs, run as built: usage errors exit 2 naming the
// unknown subcommand or option, --version prints the version, and PAGEKEEPER_SERVER (with or
// without a scheme) names the daemon a client subcommand talks to.

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "cli/server_client.hpp"
#include "server/server_test_util.hpp"

namespace pagekeeper::test {
namespace {

struct ProgramRun {
  int status = -1;
  std::string output;  // stdout and stderr together
};

// Runs `program args` through the shell with `env` (NAME=value ... or ""), output captured.
ProgramRun run(const char* program, const std::string& args, const std::string& env = "") {
  const std::string command = env + (env.empty() ? "" : " ") + "'" + program + "' " + args + " 2>&1";
  ProgramRun r;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return r;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) r.output.append(buf, n);
  const int raw = ::pclose(pipe);
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return r;
}

bool mentions(const ProgramRun& r, const std::string& text) { return r.output.find(text) != std::string::npos; }

TEST(CliConventions, UnknownSubcommandExitsTwoNamingIt) {
  const ProgramRun r = run(PAGEKEEPER_CLI_PATH, "frob");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(mentions(r, "unknown subcommand 'frob'")) << r.output;
  EXPECT_TRUE(mentions(r, "sim")) << "lists the subcommands: " << r.output;
}

TEST(CliConventions, UnknownOptionsAndBadValuesExitTwoNamingThem) {
  ProgramRun r = run(PAGEKEEPER_CLI_PATH, "stats --frobnicate");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(mentions(r, "--frobnicate")) << r.output;
  r = run(PAGEKEEPERD_PATH, "--frobnicate");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(mentions(r, "--frobnicate")) << r.output;
  r = run(PAGEKEEPERD_PATH, "--port notaport");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(mentions(r, "notaport")) << r.output;
  r = run(PAGEKEEPER_CLI_PATH, "");
  EXPECT_EQ(r.status, 2) << r.output;
  r = run(PAGEKEEPER_CLI_PATH, "--help");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(mentions(r, "Subcommands")) << r.output;
}

TEST(CliConventions, BothProgramsPrintTheirVersion) {
  const std::regex version(R"(\d+\.\d+\.\d+)");
  for (const char* program : {PAGEKEEPER_CLI_PATH, PAGEKEEPERD_PATH}) {
    const ProgramRun r = run(program, "--version");
    EXPECT_EQ(r.status, 0) << program << ": " << r.output;
    EXPECT_TRUE(std::regex_search(r.output, version)) << program << ": " << r.output;
  }
  // The daemon says the same over HTTP.
  TestServer s;
  auto c = s.client();
  const auto health = nlohmann::json::parse(c.Get("/healthz")->body);
  ASSERT_TRUE(health.contains("version")) << health.dump();
  EXPECT_NE(run(PAGEKEEPERD_PATH, "--version").output.find(health["version"].get<std::string>()), std::string::npos);
  EXPECT_NE(c.Get("/metrics")->body.find("pagekeeper_build_info{version=\"" + health["version"].get<std::string>() + "\"} 1"),
            std::string::npos);
}

TEST(CliConventions, ServerUrlWithoutSchemeMeansHttp) {
  EXPECT_EQ(cli::server_url("127.0.0.1:8077"), "http://127.0.0.1:8077");
  EXPECT_EQ(cli::server_url("http://h:1"), "http://h:1");
  EXPECT_THROW(cli::ServerClient("https://h:1"), std::invalid_argument);
}

TEST(CliConventions, PagekeeperServerNamesTheDaemonForClientSubcommands) {
  TestServer s;
  const std::string env = "PAGEKEEPER_SERVER=127.0.0.1:" + std::to_string(s.port());
  ProgramRun r = run(PAGEKEEPER_CLI_PATH, "stats --json", env);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(mentions(r, "embedding-cache")) << r.output;
  r = run(PAGEKEEPER_CLI_PATH, "embed 'a text for the daemon'", env);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(s.daemon->embeddings().stats().entry_count, 1U) << "embedded by the daemon, not in-process";
  // An explicit --server wins over the environment.
  r = run(PAGEKEEPER_CLI_PATH, "stats --server 127.0.0.1:1", env);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_TRUE(mentions(r, "127.0.0.1:1")) << r.output;
}

TEST(CliConventions, EveryDaemonFlagIsDocumented) {
  const ProgramRun help = run(PAGEKEEPERD_PATH, "--help");
  ASSERT_EQ(help.status, 0) << help.output;
  std::ifstream in(std::string(PAGEKEEPER_SOURCE_DIR) + "/docs/CONFIG.md");
  std::stringstream doc;
  doc << in.rdbuf();
  const std::string config = doc.str();
  ASSERT_FALSE(config.empty()) << "docs/CONFIG.md not found";
  std::set<std::string> flags;
  const std::regex flag("--[a-z][a-z0-9-]+");
  for (auto it = std::sregex_iterator(help.output.begin(), help.output.end(), flag); it != std::sregex_iterator(); ++it)
    flags.insert(it->str());
  EXPECT_GE(flags.size(), 10U) << help.output;
  for (const std::string& f : flags) EXPECT_NE(config.find("`" + f), std::string::npos) << f << " is not in docs/CONFIG.md";
}

}  // namespace
}  // namespace pagekeeper::test
