// morphctl: noun-verb command line for operators and tenants; talks to the controller's api endpoint.
#include <CLI/CLI.hpp>

#include <iostream>

#include "common/msg/curve_keys.h"

int main(int argc, char** argv) {
  CLI::App app{"morphctl: operate and trade on a Morph controller"};
  app.set_version_flag("--version", "0.1.0");
  // keys gen: a CURVE key pair for an agent, a tenant client, an admin or the controller (docs/security.md).
  auto* keys = app.add_subcommand("keys", "CURVE key pairs");
  auto* gen = keys->add_subcommand("gen", "write NAME.key (secret, mode 0600) and NAME.pub into DIR");
  std::string key_dir, key_name;
  gen->add_option("--out", key_dir, "directory (created mode 0700 if missing)")->required();
  gen->add_option("--name", key_name, "key name: the host id for agents")->required();
  CLI11_PARSE(app, argc, argv);
  if (gen->parsed()) {
    auto kp = morph::msg::generate_keypair();
    if (kp) {
      if (auto st = morph::msg::write_keypair(key_dir, key_name, *kp); !st) {
        std::cerr << "morphctl: " << st.error().what() << "\n";
        return 1;
      }
      std::cout << kp->public_z85 << "\n";
      return 0;
    }
    std::cerr << "morphctl: " << kp.error().what() << "\n";
    return 1;
  }
  std::cout << app.help();
  return 0;
}
