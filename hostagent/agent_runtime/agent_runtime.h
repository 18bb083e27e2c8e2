#pragma once
// The real host side of `morph-agent run`: VMs from libvirt (hostagent/inventory, or static cgroups with
// --vm), their KPIs from the BPF probes (ProbeKpiSource), and shifts through the Resource Shifting Engine
// over libvirt and the network policer (EngineShiftHandler). It builds the HostHello description (host
// capacity, VMs with baselines, owners and SLA classes) and re-sends it when VMs come and go.
// It owns nothing of the uplink: run_agent() hands it the Uplink at start.

#include "hostagent/uplink/run_agent.h"

namespace morph::agent {

// The HostRuntimeFactory `morph-agent run` uses.
Result<std::unique_ptr<HostRuntime>> make_host_runtime(const RuntimeContext& ctx);

// Capacity announced in HostHello: CPUs and memory of this host, disk and network from capacity.* keys
// (0 = not announced).
std::vector<std::pair<msg::Resource, int64_t>> host_capacity(const config::Config& cfg);

}  // namespace morph::agent
