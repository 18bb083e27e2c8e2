// morph-agent entry point: parses the command line and hands off to morph_agent_core.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <exception>

#include "common/log.h"
#include "hostagent/agent.h"

int main(int argc, char** argv) {
  CLI::App app{"morph-agent: per-VM KPIs from eBPF and resource shifting for libvirt hosts"};
  app.set_version_flag("--version", morph::agent::version());
  std::string level = "info";
  app.add_option("--log-level", level, "trace, debug, info, warn, error");
  app.require_subcommand(0, 1);
  CLI11_PARSE(app, argc, argv);
  try {
    if (auto st = morph::log::init(level, "morph-agent"); !st) {
      spdlog::error("{}", st.error().what());
      return 2;
    }
    std::cout << app.help();
    return 0;
  } catch (const std::exception& e) {
    spdlog::critical("morph-agent: {}", e.what());
    return 1;
  }
}
