// `morph-agent run` on a test-bed VM against a controller: the agent process (real inventory, BPF probes,
// shifting engine) talks over ipc to a ControllerServer in this process, whose market seam records shift
// results and whose ControllerLink sends the ShiftCommands and lease renewals. Checked:
//   - the KPI reports carry the VM (by libvirt UUID) with nonzero cpu_run_ns under load;
//   - a CPU cap sent by the controller is applied: the VM's on-CPU rate falls to the cap ±3 points, in the
//     agent's own KPI reports and in libvirt's vCPU time;
//   - when the controller stops renewing, the VM is back at its baseline within lease + 1 s, and the
//     revert is reported to the controller.
#include <gtest/gtest.h>
#include <libvirt/libvirt.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <vector>

#include "common/kpi/derived.h"
#include "common/msg/wire.h"
#include "controller/api/controller_server.h"
#include "tests/support/daemons.h"
#include "tests/support/http.h"
#include "tests/support/in_process_controller.h"
#include "tests/support/requirements.h"
#include "tests/support/testbed.h"
#include "tests/support/wait.h"

namespace morph {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct AgentRunE2e : test::OnTestbed<AgentRunE2e> {
  static test::BedSpec bed_spec() { return {test::unique_prefix("shift-agentrun"), 1, {}, true}; }

 protected:
  void SetUpOnBed() override {
    uuid = bed().vm().uuid;
    baseline = bed().sched();
    ASSERT_TRUE(dir.ok());
    recorder = std::make_shared<test::ShiftRecorder>(std::vector<std::string>{uuid});
    controller::ControllerConfig cc;
    cc.endpoints = test::ipc_endpoints(dir.str() + "/run");
    cc.kpi_observers = {recorder};
    server = std::make_unique<controller::ControllerServer>(cc, recorder);
    ASSERT_TRUE(server->start());
    host = "agent-e2e-" + std::to_string(getpid());
    agent = std::make_unique<test::ChildProcess>(
        test::agent_run_argv(host, cc.endpoints,
                             {"--interval", "500ms", "--metrics-listen", "127.0.0.1:0", "--lease-state-file",
                              (dir / "leases.json").string(), "--set", "lease.default=2s"}),
        dir / "agent.out", test::ChildOptions{.stop_signal = SIGKILL});
    ASSERT_TRUE(test::wait_until([&] { return server->stats().hosts_up >= 1 || !agent->alive(); }, 20s))
        << agent->log();
  }
  void TearDownOnBed() override {
    if (agent) std::cout << "agent exit " << agent->stop(SIGTERM) << "\n";
    if (server) server->stop();
    if (bed().up()) bed().set_sched(0, {baseline.vcpu_quota, 0});
  }

  long long vcpu_quota() const { return bed().sched().vcpu_quota; }

  uint64_t send_cpu_cap(int64_t millicores, std::chrono::milliseconds lease) {
    msg::ShiftOrder o;
    o.command_id = ++next_id;
    o.vm_uuid = uuid;
    o.adjustments = {{msg::Resource::cpu, millicores, {}}};
    o.lease_ns = uint64_t(std::chrono::nanoseconds(lease).count());
    o.issued_ns = msg::now_ns();
    server->send_shift(host, o);
    return o.command_id;
  }

  std::string uuid, host;
  test::Sched baseline;
  test::TempDir dir{"agent-e2e"};
  std::shared_ptr<test::ShiftRecorder> recorder;
  std::unique_ptr<controller::ControllerServer> server;
  std::unique_ptr<test::ChildProcess> agent;
  uint64_t next_id = uint64_t(msg::now_ns());
};

TEST_F(AgentRunE2e, PublishesRealKpisAndAppliesTheControllersCpuCap) {
  ASSERT_TRUE(bed().load("cpu=50"));
  // Real KPIs for the VM: nonzero on-CPU time under load.
  std::vector<kpi::VmKpis> kpis;
  ASSERT_TRUE(test::wait_until(
      [&] {
        kpis = recorder->kpis();
        return kpis.size() >= 4 && kpis.back().cpu_run_ns > 0;
      },
      20s))
      << agent->log();
  {
    const auto& k = kpis.back();
    std::cout << "KPIs under cpu=50: cpu_run " << 100.0 * kpi::cpu_share(k.cpu_run_ns, k.interval_ns) << "% of "
              << k.interval_ns / 1'000'000 << " ms\n";
    EXPECT_GT(k.cpu_run_ns, k.interval_ns / 10) << "a VM at 50% load ran less than 10% of the interval";
  }
  ASSERT_TRUE(bed().load("cpu=100"));
  std::this_thread::sleep_for(2s);
  auto vcpu = [&] { return bed().vcpu_time_ns(); };
  const double before = test::rate_over(vcpu, 1000ms) / 1e7;
  const uint64_t id = send_cpu_cap(200, 30s);
  auto res = recorder->wait_result(id, false, 10s);
  ASSERT_TRUE(res) << agent->log();
  ASSERT_EQ(res->first.error, v1::ErrorCode::ok) << res->first.error_message;
  int64_t cpu_in_force = -1;
  for (auto& s : res->first.in_force)
    if (s.resource == msg::Resource::cpu) cpu_in_force = s.value;
  EXPECT_EQ(cpu_in_force, 200);
  EXPECT_GT(res->first.lease_expires_ns, msg::now_ns());
  std::this_thread::sleep_for(1s);
  const size_t from = recorder->kpi_count();
  // libvirt's whole-VM time over the same window as the agent's intervals below: the cap holds the vCPU
  // threads, and the emulator and I/O threads (uncapped) are what the whole VM adds to it.
  auto whole = [&] { return bed().vm_cpu_time_ns(); };
  const uint64_t whole0 = whole();
  const auto whole_t0 = std::chrono::steady_clock::now();
  const double capped = test::rate_over(vcpu, 1000ms) / 1e7;
  // The agent's own KPI reports as the controller received them: the two whole 500 ms intervals after
  // `from` (the one in progress then may have begun before it).
  ASSERT_TRUE(test::wait_until([&] { return (kpis = recorder->kpis()).size() >= from + 3; }, 5s)) << agent->log();
  uint64_t run_ns = 0, interval_ns = 0;
  for (size_t i = from + 1; i < from + 3; ++i) {
    run_ns += kpis[i].cpu_run_ns;
    interval_ns += kpis[i].interval_ns;
  }
  ASSERT_GT(interval_ns, 0u);
  const double reported = 100.0 * kpi::cpu_share(run_ns, interval_ns);
  const double whole_pct =
      100.0 * double(whole() - whole0) /
      double(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - whole_t0).count());
  std::cout << "on-CPU %: libvirt's vCPU time before " << before << ", under the controller's 200 mc cap " << capped
            << "; the agent's reported cpu_run_ns (whole VM) under the cap " << reported << ", libvirt's whole VM "
            << whole_pct << "\n";
  EXPECT_GT(before, 30.0) << "the guest did not get busy; nothing to cap";
  EXPECT_NEAR(capped, 20.0, 3.0) << "libvirt's vCPU time";
  // The agent's whole-VM figure against libvirt's whole-VM time; both at the cap plus what the uncapped
  // emulator threads add (a few points on a quiet host, more while QEMU's main loop is busy).
  EXPECT_NEAR(reported, whole_pct, 3.0) << "the agent's KPI reports against libvirt's whole-VM time";
  EXPECT_GE(reported, 17.0) << "the agent's KPI reports: less than the capped vCPUs alone";
  // The metrics count the shift as applied.
  auto port = test::printed_metrics_port(agent->log());
  ASSERT_TRUE(port);
  auto m = test::http_get(*port, "/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(test::metric_value(m->body, R"(morph_agent_shifts_total{result="applied"})"), 1.0);
}

TEST_F(AgentRunE2e, UnrenewedLeaseIsBackAtBaselineWithinLeasePlusOneSecond) {
  constexpr auto kLease = 2000ms;
  // A renewed lease holds: renewed every 0.5 s for 3 s, the shift outlives its 2 s lease.
  const uint64_t renewed = send_cpu_cap(400, kLease);
  ASSERT_TRUE(recorder->wait_result(renewed, false, 10s)) << agent->log();
  const long long shifted = vcpu_quota();
  ASSERT_NE(shifted, baseline.vcpu_quota);
  for (int i = 0; i < 6; ++i) {
    server->renew_lease(host, {uuid, {renewed}, uint64_t(std::chrono::nanoseconds(kLease).count())});
    std::this_thread::sleep_for(500ms);
  }
  EXPECT_EQ(vcpu_quota(), shifted) << "a renewed lease ran out";
  // Now the controller goes quiet about this VM: no more renewals.
  const auto t0 = Clock::now();
  std::optional<double> back_after;
  while (Clock::now() - t0 < kLease + 3s) {
    if (vcpu_quota() == baseline.vcpu_quota) {
      back_after = std::chrono::duration<double>(Clock::now() - t0).count();
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(back_after) << "not back at baseline within lease + 3 s\n" << agent->log();
  std::cout << "lease " << kLease.count() << " ms, last renewal then silence: back at baseline after " << *back_after
            << " s\n";
  EXPECT_LE(*back_after, 3.0);
  // The revert reached the controller.
  auto rev = recorder->wait_result(renewed, true, 5s);
  ASSERT_TRUE(rev) << agent->log();
  EXPECT_EQ(rev->first.error, v1::ErrorCode::ok) << rev->first.error_message;
  EXPECT_EQ(rev->first.vm_uuid, uuid);
}

}  // namespace
}  // namespace morph
