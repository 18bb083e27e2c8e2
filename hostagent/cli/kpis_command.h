#pragma once
// `morph-agent kpis`: prints every registered VM's KPIs once per interval, as text or as JSON lines
// (one object per VM per interval, field names of common/kpi/vm_kpis.h). The VMs come from libvirt (through
// the inventory) or, with --vm, from cgroups named on the command line; the measuring loop itself is the
// probes' (hostagent/probes/kpi_loop.h).

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "common/error.h"
#include "common/kpi/vm_kpis.h"
#include "hostagent/probes/kpi_loop.h"

namespace morph::agent::cli {

struct KpisCommandOptions {
  std::chrono::milliseconds interval{1000};
  uint64_t count = 0;  // intervals to print; 0 = until stopped
  bool json = false;
};

// "1s", "250ms", "2" (seconds): any command-line duration (config::parse_duration_arg) of at least
// kMinKpiInterval. Errc::invalid_argument naming the text otherwise.
Result<std::chrono::milliseconds> parse_interval(const std::string& text);

nlohmann::json kpis_to_json(const kpi::VmKpis& k, uint64_t timestamp_ns);
// One VM's interval as one line of text: CPU as % of the interval, the run-queue wait share (common/kpi),
// rates per second.
std::string kpis_to_text(const kpi::VmKpis& k);

// The measuring loop printing each interval to `out`, until `count` intervals or *stop.
Status run_kpis(KpiProbes& probes, VmSource& source, const KpisCommandOptions& options, std::ostream& out,
                const volatile bool* stop = nullptr);

}  // namespace morph::agent::cli
