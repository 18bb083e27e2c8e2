// msg_agent_proc: the `morph-agent run` command line and run loop (morph_agent_run_cli) in a binary that
// links only the uplink, so the messaging process tests do not depend on the BPF probes and libvirt being
// buildable.
#include <CLI/CLI.hpp>

#include "common/log.h"
#include "hostagent/cli/run_command.h"

int main(int argc, char** argv) {
  CLI::App app{"msg_agent_proc: morph-agent run for messaging tests"};
  auto run = morph::agent::cli::add_run_command(app, "test");
  app.require_subcommand(1, 1);
  CLI11_PARSE(app, argc, argv);
  if (!morph::log::init("info", "msg-agent")) return 2;
  return morph::agent::cli::run_run_command(*run);
}
