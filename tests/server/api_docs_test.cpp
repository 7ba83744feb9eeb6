// The HTTP API's documents and OpenAI compatibility, checked on a real daemon with Node.js
// scripts (tests/server/node): docs/API.md's examples against web/openapi.json and the live
// answers, and the official `openai` npm client's models.list(). The npm packages come from
// scripts/fetch-node-deps.sh (run by scripts/setup-debian.sh) into third_party/node.

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>

#include "server_test_util.hpp"

namespace pagekeeper::test {
namespace {

// Runs a script of tests/server/node with `args`; returns its exit status, output in `out`.
int run_node(const std::string& script, const std::string& args, std::string& out) {
  const std::string repo = PAGEKEEPER_SOURCE_DIR;
  const std::string command = "node '" + repo + "/tests/server/node/" + script + "' " + args + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return -1;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  const int raw = ::pclose(pipe);
  return WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
}

bool node_packages_present() {
  return std::filesystem::exists(std::filesystem::path(PAGEKEEPER_SOURCE_DIR) / "third_party/node/node_modules/openai");
}

TEST(ApiDocs, ExamplesMatchTheOpenApiDescriptionAndTheDaemon) {
  ASSERT_TRUE(node_packages_present()) << "run scripts/fetch-node-deps.sh (scripts/setup-debian.sh does)";
  TestServer s;
  std::string out;
  const int status = run_node("check_api_docs.mjs", s.daemon->url() + " '" + PAGEKEEPER_SOURCE_DIR + "'", out);
  EXPECT_EQ(status, 0) << out;
  if (status == 0) std::printf("%s", out.c_str());
}

TEST(ApiDocs, OfficialOpenAIClientListsEveryModelAndAlias) {
  ASSERT_TRUE(node_packages_present()) << "run scripts/fetch-node-deps.sh (scripts/setup-debian.sh does)";
  TestServer s(parse_server_config("[[embedding.models]]\nname = \"mini\"\nbackend = \"lexical\"\ndimensions = 64\n"
                                   "aliases = [\"small\"]\n",
                                   "test.toml", small_config()));
  std::string out;
  const int status =
      run_node("openai_models.mjs", s.daemon->url() + " '" + PAGEKEEPER_SOURCE_DIR + "' lexical mini small default", out);
  EXPECT_EQ(status, 0) << out;
  if (status == 0) std::printf("%s", out.c_str());
}

}  // namespace
}  // namespace pagekeeper::test
