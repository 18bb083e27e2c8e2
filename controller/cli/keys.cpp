// `morphctl keys gen`: a CURVE key pair for an agent, a tenant, an operator or the controller. Local only:
// it needs no controller.
#include "common/msg/curve_keys.h"
#include "controller/cli/command.h"

namespace morph::cli {

namespace {

struct KeyArgs {
  std::string dir, name;
  bool json = false;
};

int generate(Session& s, const KeyArgs& a) {
  auto kp = msg::generate_keypair();
  if (!kp) fail(kRefused, kp.error().what());
  if (auto st = msg::write_keypair(a.dir, a.name, *kp); !st) fail(kRefused, st.error().what());
  if (!a.json) {
    s.out << kp->public_z85 << "\n";
    return kOk;
  }
  print({{"name", a.name},
         {"public_key", kp->public_z85},
         {"public_key_file", a.dir + "/" + a.name + ".pub"},
         {"secret_key_file", a.dir + "/" + a.name + ".key"}},
        true, s.out);
  return kOk;
}

}  // namespace

void add_keys(Commands& c) {
  // `keys` alone is not an error CLI11 reports (it has only the one verb): morphctl exits 2 without a verb.
  auto gen = verb<KeyArgs>(c.app().add_subcommand("keys", "CURVE key pairs"), "gen",
                           "write NAME.key (secret, mode 0600) and NAME.pub into DIR");
  gen.cmd->add_option("--out", gen.args->dir, "directory (created mode 0700 if missing)")->required();
  gen.cmd->add_option("--name", gen.args->name, "key name: the host id for agents")->required();
  c.on(gen, {"morphctl keys gen --out /etc/morph/keys --name host-a"},
       [a = gen.args](Session& s) { return generate(s, *a); });
}

}  // namespace morph::cli
