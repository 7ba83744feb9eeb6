// The files the Debian package installs for an operator (packaging/): the default
// configuration must load with the daemon's own loader and keep the daemon on loopback, and
// the systemd unit must start the daemon with that file, as its dedicated user, hardened.

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "pagekeeper/server_config.hpp"

namespace pagekeeper {
namespace {

const std::string kPackaging = std::string(PAGEKEEPER_SOURCE_DIR) + "/packaging/";

TEST(PackagedConfig, LoadsWithTheDaemonsLoaderAndBindsLoopback) {
  const ServerConfig config = load_server_config(kPackaging + "pagekeeperd.toml");
  EXPECT_EQ(config.host, "127.0.0.1");
  EXPECT_EQ(config.port, 8077);
  EXPECT_EQ(config.default_model, "lexical");
  EXPECT_EQ(config.embedding_budget_bytes, 256ull << 20);
  EXPECT_TRUE(config.host_memory);
}

TEST(PackagedUnit, StartsTheDaemonWithThePackagedConfigAsItsUserHardened) {
  std::ifstream in(kPackaging + "pagekeeperd.service");
  ASSERT_TRUE(in) << "packaging/pagekeeperd.service is missing";
  std::stringstream text;
  text << in.rdbuf();
  const std::string unit = text.str();
  for (const char* line :
       {"ExecStart=/usr/bin/pagekeeperd --config /etc/pagekeeper/pagekeeperd.toml\n",
        "User=pagekeeper\n", "Restart=on-failure\n", "ProtectSystem=strict\n",
        "NoNewPrivileges=yes\n", "ProtectHome=yes\n", "PrivateTmp=yes\n",
        "WantedBy=multi-user.target\n"}) {
    EXPECT_NE(unit.find(line), std::string::npos) << "the unit lacks: " << line;
  }
}

}  // namespace
}  // namespace pagekeeper
