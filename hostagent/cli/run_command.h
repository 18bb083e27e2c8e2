#pragma once
// `morph-agent run`'s command line: --config, --set KEY=VALUE and the typed flags bound to configuration
// keys (common/config_schemas.h agent_schema()), the key files, --synthetic-vms, --vm and --raw-tp. It
// loads the configuration they name and hands it to the run loop (hostagent/uplink/run_agent.h). A library
// of its own (morph_agent_run_cli, no probes, shifter or libvirt) so the messaging tests' msg_agent_proc
// runs the same command line.

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "common/config.h"
#include "hostagent/uplink/run_agent.h"

namespace morph::agent::cli {

struct RunCommand {
  CLI::App* command = nullptr;
  std::unique_ptr<config::CommandLine> config;  // --config, --set and the typed flags
  int interval_ms = 0;                          // legacy --interval-ms; 0 = unset (agent.interval)
  RunOptions options;
};

std::shared_ptr<RunCommand> add_run_command(CLI::App& app, std::string version);
// Loads the configuration (exit 2 naming what is wrong) and runs the agent until it is stopped.
int run_run_command(const RunCommand& run, const HostRuntimeFactory& runtime = {});

}  // namespace morph::agent::cli
