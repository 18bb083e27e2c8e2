// morph-controller entry point: parses the command line and hands off to morph_controller_core.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <exception>

#include "common/log.h"
#include "controller/controller.h"
#include "controller/runtime/run_command.h"

int main(int argc, char** argv) {
  CLI::App app{"morph-controller: the market and orchestrator for Morph hosts"};
  app.set_version_flag("--version", morph::controller::version());
  std::string level = "info";
  app.add_option("--log-level", level, "trace, debug, info, warn, error");
  auto run_cli = morph::controller::add_run_command(app);
  CLI11_PARSE(app, argc, argv);
  try {
    if (auto st = morph::log::init(level, "morph-controller"); !st) {
      spdlog::error("{}", st.error().what());
      return 2;
    }
    if (run_cli->command->parsed()) return morph::controller::run_controller(*run_cli);
    std::cout << app.help();
    return 0;
  } catch (const std::exception& e) {
    spdlog::critical("morph-controller: {}", e.what());
    return 1;
  }
}
