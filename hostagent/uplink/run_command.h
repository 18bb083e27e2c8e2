#pragma once
// `morph-agent run`: connect to the controller, announce the host, heartbeat, publish KPIs, take shift
// commands. Configured from the agent's TOML file (common/config_schemas.h agent_schema()) with
// --config, --set KEY=VALUE and typed flags bound to keys. main.cpp only registers and dispatches it.
//
// This file links only the uplink, config and metrics: what measures and shifts real VMs (probes,
// inventory, shifter) is handed in as a HostRuntimeFactory (hostagent/agent_runtime), so the messaging
// tests can run the same code path with --synthetic-vms and no libvirt or BPF.

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/metrics.h"
#include "hostagent/uplink/uplink.h"

namespace morph::agent {

struct RunOptions {
  CLI::App* command = nullptr;
  std::unique_ptr<config::CommandLine> cli;  // --config, --set and the typed flags
  std::string key_file;                      // this agent's NAME.key (default: security.keys_dir/<host_id>.key)
  std::string server_key_file;               // the controller's NAME.pub (default: security.keys_dir/controller.pub)
  int interval_ms = 0;                       // legacy --interval-ms; 0 = unset (agent.interval)
  int synthetic_vms = 0;
  std::vector<std::string> static_vms;  // --vm NAME:CGROUP_PATH[:TAP,...]: measure cgroups, no libvirt
  bool raw_tp = false;
  std::string version;
};

// The host-side half of the agent: real (or static) VMs, their KPIs, and the shifting engine. The uplink
// only sees its KpiSource and ShiftHandler; start() hands it the uplink for HostHello updates and lease
// reverts. stop() is called before the uplink stops.
class HostRuntime {
 public:
  virtual ~HostRuntime() = default;
  virtual HostDescription host() = 0;
  virtual std::shared_ptr<KpiSource> kpi_source() = 0;
  virtual std::shared_ptr<ShiftHandler> shift_handler() = 0;
  virtual Status start(Uplink& uplink) = 0;
  virtual void stop() = 0;
};

struct RuntimeContext {
  const config::Config& config;
  const RunOptions& options;
  std::string host_id;
  metrics::Registry& metrics;
};
using HostRuntimeFactory = std::function<Result<std::unique_ptr<HostRuntime>>(const RuntimeContext&)>;

std::shared_ptr<RunOptions> add_run_command(CLI::App& app, std::string version);
// Without a factory only --synthetic-vms has VMs (and shifts are refused as unavailable).
int run_agent(const RunOptions& opts, const HostRuntimeFactory& runtime = {});

// Host capacity from the OS: online CPUs x 1000 millicores and physical memory in MiB.
std::vector<std::pair<msg::Resource, int64_t>> host_cpu_memory_capacity();

}  // namespace morph::agent
