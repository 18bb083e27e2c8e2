#pragma once
// `morph-agent kpis`: prints every registered VM's KPIs once per interval, as text or as JSON lines
// (one object per VM per interval, field names of common/kpi/vm_kpis.h). The VM list comes from a VmSource.

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/kpi/vm_kpis.h"
#include "hostagent/probes/kpi_probes.h"
#include "hostagent/probes/vm_source.h"

namespace morph::agent {

inline constexpr std::chrono::milliseconds kMinKpiInterval{100};

struct KpisCommandOptions {
  std::chrono::milliseconds interval{1000};
  uint64_t count = 0;  // intervals to print; 0 = until stopped
  bool json = false;
};

// "1s", "250ms", "2" (seconds). Errc::invalid_argument below kMinKpiInterval or unparsable.
Result<std::chrono::milliseconds> parse_interval(const std::string& text);

nlohmann::json kpis_to_json(const kpi::VmKpis& k, uint64_t timestamp_ns);

// Runs the loop until `count` intervals have been printed or *stop becomes true.
Status run_kpis(KpiProbes& probes, VmSource& source, const KpisCommandOptions& options, std::ostream& out,
                const volatile bool* stop = nullptr);

// The `kpis` subcommand's command line.
struct KpisCli {
  CLI::App* command = nullptr;
  std::string interval = "1s";
  uint64_t count = 0;
  bool json = false;
  bool raw_tp = false;
  std::vector<std::string> vms;  // NAME:CGROUP_PATH[:TAP,...]; empty = the default source (libvirt)
};
std::shared_ptr<KpisCli> add_kpis_command(CLI::App& app);

// Runs the subcommand; `default_source` builds the VM source used when no --vm is given (the agent
// passes one over hostagent/inventory). Returns the process exit code.
using VmSourceFactory = std::function<Result<std::unique_ptr<VmSource>>()>;
int run_kpis_command(const KpisCli& cli, const VmSourceFactory& default_source);

}  // namespace morph::agent
