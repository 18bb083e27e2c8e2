// migration_bench: downtime and total time of live migrations between the two hosts of the test bed
// (scripts/testbed up 1 --hosts 2), N migrations (default 20) per guest mode:
//   idle        the guest's load generator at cpu=0
//   cpu=100     one vCPU busy all the time
//   mem_dirty   the guest dirtying memory at --dirty MiB/s (default 32) over a 64 MiB buffer
// Morph's migration (the Migrator over LibvirtMigrationDriver, exactly as `morph-agent migrate` runs it)
// side by side with plain `virsh migrate --live --p2p` on the same VM, interleaved move by move so both see
// the same machine; each moves the VM to the other host (there and back alternately). Both use a unix
// socket for the stream, the default 300 ms downtime limit and no bandwidth cap. Figures per mode and tool:
// downtime and total as QEMU's job statistics give them (the destination's completed job, for both), and
// wall, the call's own time end to end (for Morph with its checks before and after); p50, p99 and max,
// the failures, and the faults: moves after which the guest kernel faulted (this QEMU's TCG loses dirty
// pages of a guest writing fast; the guest is then booted afresh before the next move). The load average
// is printed before and after.
//   sudo build/tests/bench/migration_bench [--runs N] [--dirty MIB_PER_S] [--modes idle,cpu,dirty]
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "hostagent/migration/libvirt_migration_driver.h"
#include "hostagent/migration/migrator.h"
#include "tests/e2e/migration_bed.h"
#include "tests/support/flags.h"
#include "tests/support/measure.h"

using namespace morph;

namespace {

struct Sample {
  bool ok = false;
  bool faulted = false;  // the guest kernel faulted after the move (QEMU's TCG loses dirty pages)
  double downtime = 0, total = 0, wall = 0;
};

// "Total downtime:   153          ms" → 153 from `virsh domjobinfo --completed` output.
double field_ms(const std::string& out, const std::string& name) {
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(name, 0) == 0) return std::atof(line.c_str() + name.size());
  return -1;
}

Sample by_morph(const test::MigrationBed& bed, int from, int to) {
  Sample s;
  const auto t0 = std::chrono::steady_clock::now();
  auto driver = agent::migration::LibvirtMigrationDriver::connect(bed.uri(from));
  if (!driver) {
    std::fprintf(stderr, "morph: %s\n", driver.error().what().c_str());
    return s;
  }
  agent::migration::Migrator m(**driver);
  agent::migration::MigrationRequest r{bed.vm(), bed.uri(to), {}};
  r.options.unsafe = true;
  r.options.transport_uri = bed.transport(bed.vm());
  r.options.timeout = std::chrono::seconds(120);
  auto rep = m.migrate(r);
  s.wall = test::ms_since(t0);
  if (!rep) {
    std::fprintf(stderr, "morph: %s\n", rep.error().what().c_str());
    return s;
  }
  s.ok = true;
  s.downtime = double(rep->downtime_ms);
  s.total = double(rep->total_ms);
  return s;
}

Sample by_virsh(const test::MigrationBed& bed, int from, int to) {
  Sample s;
  const auto t0 = std::chrono::steady_clock::now();
  auto r = bed.run({"/usr/bin/virsh", "-c", bed.uri(from), "migrate", "--live", "--p2p", "--unsafe", "--persistent",
                    "--undefinesource", bed.vm(), bed.uri(to), "--migrateuri", bed.transport(bed.vm() + "-virsh")},
                   std::chrono::seconds(180));
  s.wall = test::ms_since(t0);
  if (r.rc != 0) {
    std::fprintf(stderr, "virsh: %s\n", r.err.c_str());
    return s;
  }
  auto info = bed.run({"/usr/bin/virsh", "-c", bed.uri(to), "domjobinfo", bed.vm(), "--completed"});
  s.downtime = field_ms(info.out, "Total downtime:");
  s.total = field_ms(info.out, "Time elapsed:");
  s.ok = s.downtime >= 0 && s.total >= 0;
  if (!s.ok) std::fprintf(stderr, "virsh domjobinfo: %s%s\n", info.out.c_str(), info.err.c_str());
  return s;
}

// The guest booted afresh where it is, its load set again: the next move migrates a guest doing what the
// mode says, not one whose kernel a lost dirty page broke.
bool restart_guest(const test::MigrationBed& bed, int host, const std::string& targets) {
  auto ready = [&] {
    const std::string c = bed.console(1), mark = "morph-load[" + bed.vm() + "]: ready";
    int n = 0;
    for (size_t p = c.find(mark); p != std::string::npos; p = c.find(mark, p + 1)) ++n;
    return n;
  };
  const int before = ready();
  bed.run({"/usr/bin/virsh", "-c", bed.uri(host), "destroy", bed.vm()});
  if (bed.run({"/usr/bin/virsh", "-c", bed.uri(host), "start", bed.vm()}).rc != 0) return false;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (ready() == before) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  return bed.load(1, targets);
}

void print(const std::string& mode, const std::string& tool, const std::vector<Sample>& v) {
  std::vector<double> down, total, wall;
  int failed = 0, faulted = 0;
  for (const auto& s : v) {
    faulted += s.faulted;
    if (!s.ok) {
      ++failed;
      continue;
    }
    down.push_back(s.downtime);
    total.push_back(s.total);
    wall.push_back(s.wall);
  }
  std::printf("%-14s %-6s %3zu %4d %6d", mode.c_str(), tool.c_str(), down.size(), failed, faulted);
  for (const auto* xs : {&down, &total, &wall})
    std::printf("   %7.0f %7.0f %7.0f", test::percentile(*xs, 0.50), test::percentile(*xs, 0.99),
                test::percentile(*xs, 1));
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  const test::Flags flags(argc, argv, {"--runs", "--dirty", "--modes"});
  if (!flags.error().empty()) {
    std::fprintf(stderr, "%s\nusage: migration_bench [--runs N] [--dirty MIB_PER_S] [--modes idle,cpu,dirty]\n",
                 flags.error().c_str());
    return 2;
  }
  const int n = static_cast<int>(flags.number("--runs", 20));
  const int dirty = static_cast<int>(flags.number("--dirty", 32));
  const std::string modes = flags.text("--modes", "idle,cpu,dirty");
  spdlog::set_level(spdlog::level::warn);
  test::Testbed testbed(test::MigrationBed::spec("mbench"));
  if (!testbed.up()) {
    std::fprintf(stderr, "%s%s\n", testbed.unavailable().c_str(), testbed.error().c_str());
    return 1;
  }
  const test::MigrationBed bed(testbed);
  const std::map<std::string, std::pair<std::string, std::string>> all = {
      {"idle", {"idle", "cpu=0 mem_dirty=0"}},
      {"cpu", {"cpu=100", "cpu=100 mem_dirty=0"}},
      {"dirty", {"mem_dirty=" + std::to_string(dirty) + "M", "cpu=0 mem_dirty=" + std::to_string(dirty) + "M"}}};
  std::printf("live migrations of a 1-vCPU 256 MiB TCG guest between the test bed's two hosts, %d per mode and tool\n",
              n);
  std::printf("load average before: %s\n\n", test::loadavg().c_str());
  std::printf("%-14s %-6s %3s %4s %6s   %-23s   %-23s   %-23s\n", "mode", "tool", "n", "fail", "faults",
              "downtime ms p50/p99/max", "total ms p50/p99/max", "wall ms p50/p99/max");
  int host = 1;
  std::stringstream ms(modes);
  for (std::string key; std::getline(ms, key, ',');) {
    auto it = all.find(key);
    if (it == all.end()) {
      std::fprintf(stderr, "unknown mode '%s' (idle, cpu, dirty)\n", key.c_str());
      return 2;
    }
    const auto& [label, targets] = it->second;
    if (!bed.load(1, targets)) {
      std::fprintf(stderr, "scripts/testbed load %s failed\n", targets.c_str());
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::seconds(3));
    std::vector<Sample> morph_runs, virsh_runs;
    // One move by each tool per round; a move after which the guest kernel faulted is counted (both
    // tools alike: it is QEMU's) and the guest restarted before the next.
    auto move = [&](Sample (*by)(const test::MigrationBed&, int, int), std::vector<Sample>& runs) {
      const size_t faults = bed.kernel_faults(1).size();
      runs.push_back(by(bed, host, 3 - host));
      if (runs.back().ok) host = 3 - host;
      if (!bed.only_host(bed.vm())) {
        std::fprintf(stderr, "the VM is not on exactly one host; stopping\n");
        std::exit(1);
      }
      std::this_thread::sleep_for(std::chrono::seconds(2));
      if (bed.kernel_faults(1).size() > faults) {
        runs.back().faulted = true;
        if (!restart_guest(bed, host, targets)) {
          std::fprintf(stderr, "the guest did not come back after its kernel faulted; stopping\n");
          std::exit(1);
        }
      }
    };
    for (int i = 0; i < n; ++i) {
      move(by_morph, morph_runs);
      move(by_virsh, virsh_runs);
    }
    print(label, "morph", morph_runs);
    print(label, "virsh", virsh_runs);
    std::fflush(stdout);
  }
  std::printf("\nload average after: %s\n", test::loadavg().c_str());
  return 0;
}
