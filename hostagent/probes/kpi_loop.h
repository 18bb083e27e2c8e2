#pragma once
// The measuring loop of `morph-agent kpis` (and of the e2e accuracy test and the agent-cost benchmark):
// keeps the probes' registered VMs in step with a VmSource (following its events, re-listing as a safety
// net), reads the probes once per interval and hands each interval's KPIs to a sink. It prints nothing:
// how the KPIs are shown is the caller's (hostagent/cli/kpis_command.h).

#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

#include "common/error.h"
#include "common/kpi/vm_kpis.h"
#include "hostagent/probes/kpi_probes.h"
#include "hostagent/probes/vm_source.h"

namespace morph::agent {

inline constexpr std::chrono::milliseconds kMinKpiInterval{100};

struct KpiLoopOptions {
  std::chrono::milliseconds interval{1000};
  uint64_t count = 0;  // intervals to read; 0 = until stopped
};

// One interval's KPIs (the balloon from the source filled in) and the wall-clock time they were read.
using KpiSink = std::function<void(const std::vector<kpi::VmKpis>& kpis, uint64_t timestamp_ns)>;

// Runs until `count` intervals were read or *stop becomes true; a failed read ends it with the error.
Status run_kpi_loop(KpiProbes& probes, VmSource& source, const KpiLoopOptions& options, const KpiSink& sink,
                    const volatile bool* stop = nullptr);

}  // namespace morph::agent
