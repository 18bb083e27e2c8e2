#include "hostagent/cli/agent_cli.h"

#include <spdlog/spdlog.h>

#include <exception>
#include <iostream>

#include "common/log.h"
#include "hostagent/agent.h"

namespace morph::agent::cli {

#define MORPH_AGENT_COMMAND(x) void add_##x(AgentCommands& c);
#include "hostagent/cli/commands.def"
#undef MORPH_AGENT_COMMAND

int run_agent_cli(int argc, char** argv) {
  CLI::App app{"morph-agent: per-VM KPIs from eBPF and resource shifting for libvirt hosts"};
  app.set_version_flag("--version", version());
  std::string level = "info";
  app.add_option("--log-level", level, "trace, debug, info, warn, error");
  AgentCommands commands(app);
#define MORPH_AGENT_COMMAND(x) add_##x(commands);
#include "hostagent/cli/commands.def"
#undef MORPH_AGENT_COMMAND
  app.require_subcommand(0, 1);
  CLI11_PARSE(app, argc, argv);
  try {
    if (auto st = log::init(level, "morph-agent"); !st) {
      spdlog::error("{}", st.error().what());
      return 2;
    }
    if (commands.chosen()) return commands.chosen()();
    std::cout << app.help();
    return 0;
  } catch (const std::exception& e) {
    spdlog::critical("morph-agent: {}", e.what());
    return 1;
  }
}

}  // namespace morph::agent::cli
