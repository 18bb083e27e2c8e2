// Agent user-space cost: CPU time (utime + stime of this whole process, from /proc/self/stat, so the
// inventory's libvirt threads count too) of the KPI loop at a 1 s interval over N test-bed VMs, as
// `morph-agent kpis --json` runs it (InventoryVmSource: lifecycle events, balloon per VM per interval;
// probes: batched map read, cgroup and sysfs files). Brings up its own bed (run-unique prefix) and tears it
// down. The BPF programs' kernel cost is not in this figure (see bpf_cost_bench).
//
//   sudo build/tests/bench/agent_cost_bench [vms=3] [seconds=30]
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>

#include "hostagent/cli/kpis_command.h"
#include "hostagent/probes/kpi_probes.h"
#include "tests/support/testbed.h"
#include "tests/support/testbed_vm_source.h"

namespace {

// utime + stime of this process, in clock ticks (fields 14 and 15 of /proc/self/stat).
double process_cpu_seconds() {
  std::ifstream in("/proc/self/stat");
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream rest(all.substr(all.rfind(')') + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15; i++) {
    rest >> field;
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return double(utime + stime) / double(sysconf(_SC_CLK_TCK));
}

class NullBuf final : public std::streambuf {
 protected:
  int_type overflow(int_type c) override { return c; }
};

}  // namespace

int main(int argc, char** argv) {
  const int vms = argc > 1 ? std::atoi(argv[1]) : 3;
  const int seconds = argc > 2 ? std::atoi(argv[2]) : 30;
  morph::test::Testbed bed({morph::test::unique_prefix("agentcost"), vms});
  if (!bed.up()) {
    std::fprintf(stderr, "%s%s\n", bed.unavailable().c_str(), bed.error().c_str());
    return 1;
  }
  auto inv = morph::agent::Inventory::open();
  // The agent's BPF object as it loads it: the probes read the policer's drops from the same runtime.
  auto bpf = morph::agent::BpfRuntime::load();
  auto probes = bpf ? morph::agent::KpiProbes::create(*bpf)
                    : morph::Result<std::unique_ptr<morph::agent::KpiProbes>>(bpf.error());
  if (!inv || !probes) {
    std::fprintf(stderr, "%s\n", !inv ? inv.error().what().c_str() : probes.error().what().c_str());
    return 1;
  }
  morph::agent::PrefixVmSource source(std::move(inv).value(), bed.prefix());
  NullBuf null;
  std::ostream out(&null);

  // One interval to register the VMs and settle, then the measured run.
  (void)morph::agent::cli::run_kpis(**probes, source, {std::chrono::milliseconds(1000), 1, true}, out);
  const double cpu0 = process_cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  auto st =
      morph::agent::cli::run_kpis(**probes, source, {std::chrono::milliseconds(1000), uint64_t(seconds), true}, out);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = process_cpu_seconds() - cpu0;
  if (!st) {
    std::fprintf(stderr, "%s\n", st.error().what().c_str());
    return 1;
  }
  std::printf(
      "agent KPI loop, %d VMs, 1 s interval, %.1f s: %.3f s CPU (user+system) = %.3f%% of one core "
      "(%.2f ms per interval)\n",
      int((*probes)->vm_count()), wall, cpu, 100.0 * cpu / wall, 1000.0 * cpu / seconds);
  return 0;
}
