#pragma once
// The agent's run loop, `morph-agent run` once its command line is parsed (hostagent/cli/run_command.h):
// announce the host, heartbeat, publish KPIs and take shift commands through the Uplink, serve /metrics,
// stop on SIGINT/SIGTERM. It takes the loaded configuration and never parses a command line.
//
// This file links only the uplink, config and metrics: what measures and shifts real VMs (probes,
// inventory, shifter) is handed in as a HostRuntimeFactory (hostagent/agent_runtime), so the messaging
// tests can run the same code path with --synthetic-vms and no libvirt or BPF.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/metrics.h"
#include "hostagent/uplink/uplink.h"

namespace morph::agent {

// What `morph-agent run` takes besides the configuration keys.
struct RunOptions {
  std::string key_file;         // this agent's NAME.key (default: security.keys_dir/<host_id>.key)
  std::string server_key_file;  // the controller's NAME.pub (default: security.keys_dir/controller.pub)
  int synthetic_vms = 0;
  std::string synthetic_demand_file;    // --synthetic-demand: the synthetic VMs' CPU demand (mc), read each interval
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

// Runs until SIGINT or SIGTERM; returns the process exit code (2: keys or options wrong, 1: could not start).
// Without a factory only --synthetic-vms has VMs (and shifts are refused as unavailable).
int run_agent(const config::Config& config, const RunOptions& opts, const HostRuntimeFactory& runtime = {});

// Host capacity from the OS: online CPUs x 1000 millicores and physical memory in MiB.
std::vector<std::pair<msg::Resource, int64_t>> host_cpu_memory_capacity();

}  // namespace morph::agent
