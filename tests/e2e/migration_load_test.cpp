// A loaded VM moves between two hosts while an agent per host measures it. The two-host test bed
// (scripts/testbed up --hosts 2) runs one `morph-agent run` per host inside that host's namespaces
// (`scripts/testbed exec`), each against its own libvirtd and host id, both reporting to a ControllerServer
// in this process over ipc. The VM runs `cpu=50 disk_read=2M net_tx=1M` and moves there and back with
// `morph-agent migrate`. Checked for each move:
//   - the guest's load generator keeps running: its running totals on the console go on growing;
//   - its console shows no I/O error;
//   - its network traffic resumes on the destination (the destination agent's net_tx_bytes for it);
//   - its KPIs continue under the same UUID from the destination's agent within 2 intervals of the move,
//     and the source's agent stops reporting it;
//   - each agent only ever reports the VMs of its own host.
#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <vector>

#include "tests/e2e/migration_bed.h"
#include "tests/support/in_process_controller.h"
#include "tests/support/wait.h"

namespace morph {
namespace {

using namespace std::chrono_literals;
using Clock = test::Clock;
constexpr auto kInterval = 1s;

struct MigrateLoadedE2e : test::OnTestbed<MigrateLoadedE2e> {
  static test::BedSpec bed_spec() { return test::MigrationBed::spec("mload", 1, /*needs_bpf=*/true); }
  void SetUpOnBed() override {
    mig = std::make_unique<test::MigrationBed>(bed());
    uuid = mig->uuid();
    // Every VM's KPIs with their host: host 2's agent must report none but this VM.
    log = std::make_shared<test::ShiftRecorder>(std::vector<std::string>{}, /*all_vms=*/true);
    controller::ControllerConfig cc;
    cc.endpoints = test::ipc_endpoints((dir / "run").string());  // made private by the server
    cc.kpi_observers = {log};
    server = std::make_unique<controller::ControllerServer>(cc, log);
    auto started = server->start();
    ASSERT_TRUE(started) << started.error().what();
    for (int h = 1; h <= 2; ++h) {
      // Inside the host's namespaces, against its own libvirtd, with its own lease file.
      auto argv = test::agent_run_argv(
          mig->host(h), cc.endpoints,
          {"--connect", mig->uri(h), "--interval", "1s", "--metrics-listen", "", "--lease-state-file",
           (dir / ("leases-" + mig->host(h) + ".json")).string(), "--set", "agent.bpf_pin_dir=" + pin_dir(h)});
      argv.insert(argv.begin(), {test::source_dir() + "/scripts/testbed", "exec", mig->host(h)});
      agents.push_back(std::make_unique<test::ChildProcess>(argv, dir / ("agent-" + mig->host(h) + ".out")));
    }
    ASSERT_TRUE(test::wait_until([&] { return server->stats().hosts_up >= 2; }, 30s)) << logs();
  }
  void TearDownOnBed() override {
    for (auto& a : agents) a->stop();
    std::error_code ec;
    for (int h = 1; h <= 2; ++h) std::filesystem::remove_all(pin_dir(h), ec);
    if (server) server->stop();
    if (HasFailure()) std::cout << logs();
  }
  // Each agent pins its BPF maps in a directory of its own: two agents on one kernel share none.
  std::string pin_dir(int h) const { return "/sys/fs/bpf/" + mig->host(h); }
  std::string logs() const {
    std::string s;
    for (const auto& a : agents) s += a->err().substr(a->err().size() > 4000 ? a->err().size() - 4000 : 0) + "\n";
    return s;
  }
  // This VM's reports arrived at or after `t`.
  std::vector<test::ReceivedKpi> since(Clock::time_point t) const {
    std::vector<test::ReceivedKpi> out;
    for (auto& k : log->received_kpis(t))
      if (k.uuid == uuid) out.push_back(std::move(k));
    return out;
  }

  // Reports of the VM from `host` after `t` with the figure `f` above zero.
  size_t busy_reports(Clock::time_point t, const std::string& host, uint64_t kpi::VmKpis::*f) const {
    size_t n = 0;
    for (const auto& s : since(t))
      if (s.host == host && s.kpis.*f > 0) ++n;
    return n;
  }

  void move(int from, int to) {
    const auto before = mig->counters(1);
    ASSERT_FALSE(before.empty()) << "no running totals on the console yet";
    // What the console showed before this move: a TCG guest that faulted or rebooted while it booted (seen
    // here at ~9 s of uptime, before any move) is the emulator's, not the move's.
    const size_t faults_before = mig->kernel_faults(1).size();
    const int boots_before = mig->boots(1);
    const auto t0 = Clock::now();
    auto r = mig->migrate(1, from, to);
    const auto done = Clock::now();
    ASSERT_EQ(r.rc, 0) << r.err;
    std::cout << mig->host(from) << " -> " << mig->host(to) << ": " << r.out;
    ASSERT_EQ(mig->only_host(mig->vm()), to);

    // KPIs under the same UUID from the destination's agent, CPU and the network, within 2 intervals.
    std::optional<Clock::time_point> first;
    ASSERT_TRUE(test::wait_until(
        [&] {
          for (const auto& s : since(t0))
            if (s.host == mig->host(to) && s.kpis.cpu_run_ns > 0 && s.at > done) {
              first = s.at;
              return true;
            }
          return false;
        },
        10s))
        << "no KPIs of " << uuid << " from " << mig->host(to) << "\n"
        << logs();
    const auto after = std::chrono::duration_cast<std::chrono::milliseconds>(*first - done);
    std::cout << "first busy report from " << mig->host(to) << " " << after.count() << " ms after the move ended\n";
    EXPECT_LE(*first - done, 2 * kInterval);
    ASSERT_TRUE(
        test::wait_until([&] { return busy_reports(done, mig->host(to), &kpi::VmKpis::net_tx_bytes) >= 2; }, 10s))
        << "the VM's network traffic did not resume on " << mig->host(to);
    EXPECT_TRUE(
        test::wait_until([&] { return busy_reports(done, mig->host(to), &kpi::VmKpis::blk_read_bytes) >= 2; }, 10s))
        << "the VM's disk reads did not show on " << mig->host(to);
    // The source's agent no longer reports it (one last report for the interval the move ended in).
    std::this_thread::sleep_for(3 * kInterval);
    for (const auto& s : since(done + 2 * kInterval)) {
      EXPECT_EQ(s.host, mig->host(to)) << "a late report";
    }

    // The load generator went on: its totals grew past what they were before the move, and it reaches its
    // control server (now served on the destination's side of its tap) again. Under this load a poll
    // succeeds every few seconds.
    const auto b = before.back();
    EXPECT_TRUE(test::wait_until([&] { return mig->counters(1).back().polls > b.polls; }, 30s))
        << "the guest no longer reaches its control server on " << mig->host(to);
    const auto now = mig->counters(1);
    const auto& a = now.back();
    EXPECT_GT(a.t, b.t);
    EXPECT_GT(a.cpu_ms, b.cpu_ms);
    EXPECT_GT(a.rd, b.rd);
    EXPECT_GT(a.tx, b.tx);
    EXPECT_EQ(a.errors, 0u);
    // Printed once a second throughout: the longest gap is the pause at the switch-over plus a second.
    double longest = 0;
    for (size_t i = 1; i < now.size(); ++i) longest = std::max(longest, now[i].t - now[i - 1].t);
    std::cout << "longest gap between the guest's once-a-second totals: " << longest << " s\n";
    EXPECT_LT(longest, 3.0);
    EXPECT_TRUE(mig->io_errors(1).empty()) << mig->io_errors(1).front();
    // Known limitation, not asserted: this QEMU's TCG loses pages a busy guest dirties during a live move in
    // about a third of loaded moves, after plain `virsh migrate --live` exactly as after Morph's
    // (migration_bench: 7 of 20 each with mem_dirty). Printed so a run shows it; docs/benchmarks.md.
    const auto faults = mig->kernel_faults(1);
    if (faults.size() != faults_before || mig->boots(1) != boots_before)
      std::cout << "KNOWN TCG LIMITATION: the guest's kernel faulted or rebooted across the move: " << faults.back()
                << "\n";
    RecordProperty("guest_faults_across_move", static_cast<int>(faults.size() - faults_before));
  }

  std::unique_ptr<test::MigrationBed> mig;
  std::string uuid;
  test::TempDir dir{"mload"};
  std::shared_ptr<test::ShiftRecorder> log;
  std::unique_ptr<controller::ControllerServer> server;
  std::vector<std::unique_ptr<test::ChildProcess>> agents;
};

TEST_F(MigrateLoadedE2e, ThereAndBackUnderLoadMeasuredByEachHostsAgent) {
  ASSERT_TRUE(mig->load(1, "cpu=50 disk_read=2M net_tx=1M"));
  ASSERT_TRUE(test::wait_until([&] { return busy_reports({}, mig->host(1), &kpi::VmKpis::cpu_run_ns) >= 3; }, 30s))
      << logs();
  ASSERT_TRUE(test::wait_until([&] { return mig->counters(1).size() >= 3; }, 20s));
  move(1, 2);
  move(2, 1);
  // Each agent reported only VMs of its own host: never this VM while it was on the other host, and
  // never any VM of another prefix (the first host's agent sees the machine's libvirtd, shared with other
  // test beds; the second host's only its own daemon).
  for (const auto& s : log->received_kpis()) {
    if (s.host == mig->host(2)) {
      EXPECT_EQ(s.uuid, uuid) << "host 2's agent reported a VM it does not run";
    }
  }
}

}  // namespace
}  // namespace morph
