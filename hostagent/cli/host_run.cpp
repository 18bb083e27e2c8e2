// `morph-agent run` on a real host: the run command (run_command.h) with the libvirt + BPF + shifting
// engine runtime (hostagent/agent_runtime).
#include "hostagent/agent.h"
#include "hostagent/agent_runtime/agent_runtime.h"
#include "hostagent/cli/agent_cli.h"
#include "hostagent/cli/run_command.h"

namespace morph::agent::cli {

void add_run(AgentCommands& c) {
  auto run = add_run_command(c.app(), version());
  c.on(run->command, [run] { return run_run_command(*run, make_host_runtime); });
}

}  // namespace morph::agent::cli
