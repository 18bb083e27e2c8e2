// morph-agent entry point: parses the command line and hands off to morph_agent_core.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <exception>

#include "common/log.h"
#include "hostagent/agent.h"
#include "hostagent/agent_runtime/agent_runtime.h"
#include "hostagent/inventory/inventory.h"
#include "hostagent/probes/inventory_vm_source.h"
#include "hostagent/probes/kpis_command.h"
#include "hostagent/shifter/cmd_shift.h"
#include "hostagent/uplink/run_command.h"

int main(int argc, char** argv) {
  CLI::App app{"morph-agent: per-VM KPIs from eBPF and resource shifting for libvirt hosts"};
  app.set_version_flag("--version", morph::agent::version());
  std::string level = "info";
  app.add_option("--log-level", level, "trace, debug, info, warn, error");
  auto shift_cli = morph::agent::shifter::add_shift_command(app);
  auto run_cli = morph::agent::add_run_command(app, morph::agent::version());
  auto kpis_cli = morph::agent::add_kpis_command(app);
  app.require_subcommand(0, 1);
  CLI11_PARSE(app, argc, argv);
  try {
    if (auto st = morph::log::init(level, "morph-agent"); !st) {
      spdlog::error("{}", st.error().what());
      return 2;
    }
    if (shift_cli->command->parsed()) return morph::agent::shifter::run_shift_command(*shift_cli);
    if (run_cli->command->parsed()) return morph::agent::run_agent(*run_cli, morph::agent::make_host_runtime);
    if (kpis_cli->command->parsed()) {
      // VMs from libvirt through the inventory; `--vm` replaces it for hosts without libvirtd.
      return morph::agent::run_kpis_command(*kpis_cli, []() -> morph::Result<std::unique_ptr<morph::agent::VmSource>> {
        MORPH_TRY_ASSIGN(std::shared_ptr<morph::agent::Inventory> inv, morph::agent::Inventory::open());
        return std::unique_ptr<morph::agent::VmSource>(
            std::make_unique<morph::agent::InventoryVmSource>(std::move(inv)));
      });
    }
    std::cout << app.help();
    return 0;
  } catch (const std::exception& e) {
    spdlog::critical("morph-agent: {}", e.what());
    return 1;
  }
}
