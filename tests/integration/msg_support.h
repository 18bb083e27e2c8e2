#pragma once
// Shared by the messaging integration tests: a key set with an allow-list (in memory and on disk, in a
// private temporary directory). Free loopback ports and waiting are in tests/support.

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <thread>

#include "common/msg/curve_keys.h"
#include "common/msg/socket.h"
#include "tests/support/http.h"
#include "tests/support/wait.h"

namespace morph::test {

struct KeySet {
  std::filesystem::path dir;
  msg::KeyPair controller, host_a, host_b, tenant, admin, stranger;
  std::shared_ptr<msg::AllowList> allow = std::make_shared<msg::AllowList>();

  KeySet() {
    dir = std::filesystem::temp_directory_path() /
          ("morph-msg-" + std::to_string(getpid()) + "-" + std::to_string(msg::now_ns() % 1000000));
    std::filesystem::create_directories(dir);
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all, std::filesystem::perm_options::replace);
    std::string text;
    auto make = [&](msg::KeyPair& kp, const std::string& name, const char* role, const std::string& account,
                    bool listed) {
      kp = *msg::generate_keypair();
      EXPECT_TRUE(msg::write_keypair(dir.string(), name, kp));
      if (!listed) return;
      msg::Principal p{*msg::parse_role(role), name, account, kp.public_z85};
      EXPECT_TRUE(allow->add(p));
      text += std::string(role) + " " + name + " " + kp.public_z85 + (account.empty() ? "" : " " + account) + "\n";
    };
    make(controller, "controller", "admin", "", false);
    make(host_a, "host-a", "agent", "", true);
    make(host_b, "host-b", "agent", "", true);
    make(tenant, "tenant1", "tenant", "acct-1", true);
    make(admin, "ops", "admin", "", true);
    make(stranger, "stranger", "agent", "", false);
    std::ofstream(dir / "allow") << "# role name key [account]\n" << text;
  }
  ~KeySet() { std::filesystem::remove_all(dir); }
  std::string path(const std::string& f) const { return (dir / f).string(); }

  msg::ClientSecurity as(const msg::KeyPair& kp) const { return {kp, controller.public_z85, false}; }
};

}  // namespace morph::test
