// Closed-loop checks of the Resource Shifting Engine on a real test-bed VM (TCG guest with the morph-load
// generator): a shift must change what the VM actually gets. The agent's own KPIs measure each effect
// (KpiProbes loaded in this process over the VM, as `morph-agent run` does), and libvirt's counters
// referee them where libvirt sees the same thing (vCPU time, the disk's read requests; it counts the
// guest's transmit before the policer, so for the network the referee is the offered rate).
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <memory>
#include <thread>

#include "common/kpi/derived.h"
#include "hostagent/inventory/inventory.h"
#include "hostagent/probes/kpi_probes.h"
#include "hostagent/shifter/libvirt_mechanisms.h"
#include "hostagent/shifter/net_policer.h"
#include "hostagent/shifter/shift_engine.h"
#include "tests/support/requirements.h"
#include "tests/support/testbed.h"

namespace morph::agent::shifter {
namespace {

using namespace std::chrono_literals;

// One window of the bed VM: the agent's KPIs and libvirt's counters over the same span, as rates per s.
struct Window {
  // The agent's KPIs.
  double cpu_pct = 0;           // cpu_run_ns: the whole VM (vCPUs, emulator, I/O threads), % of one core
  double blk_read_ops = 0;      // ops/s
  double net_tx_bytes = 0;      // B/s the guest sent (before the policer, as libvirt counts)
  double net_tx_delivered = 0;  // B/s let out: kpi::delivered_tx_bytes
  // libvirt's, the referee.
  double vcpu_pct = 0;      // vCPU threads only, % of one core
  double rd_req = 0;        // the disk's read requests/s
  double tap_tx_bytes = 0;  // B/s the guest sent
};

struct ShifterClosedLoop : test::OnTestbed<ShifterClosedLoop> {
  static test::BedSpec bed_spec() { return {test::unique_prefix("shift-e2e"), 1, {}, true}; }

 protected:
  static void SetUpTestSuite() {
    OnTestbed::SetUpTestSuite();
    if (!bed().up()) return;
    auto inv = agent::Inventory::open();
    if (!inv) return setup_failed("inventory: " + inv.error().describe());
    auto vms = (*inv)->list();
    if (!vms) return setup_failed("inventory list: " + vms.error().describe());
    // One BPF object for the probes and the policer, as in the agent (nothing pinned: a test's own).
    auto rt = agent::BpfRuntime::load({.pin_dir = ""});
    if (!rt) return setup_failed("BPF runtime: " + rt.error().describe());
    runtime = *rt;
    auto p = agent::KpiProbes::create(runtime);
    if (!p) return setup_failed("KPI probes: " + p.error().describe());
    probes = std::move(p).value().release();
    for (const agent::VmInfo& v : *vms)
      if (v.name == bed().vm().name)
        if (auto st = probes->add_vm(v); !st) return setup_failed("registering the VM: " + st.error().describe());
    if (probes->vm_count() != 1) setup_failed("the inventory does not list " + bed().vm().name);
  }
  static void TearDownTestSuite() {
    delete probes;
    probes = nullptr;
    runtime.reset();
    OnTestbed::TearDownTestSuite();
  }
  static void setup_failed(std::string why) { suite_error = std::move(why); }

  void SetUpOnBed() override {
    ASSERT_TRUE(suite_error.empty()) << suite_error;
    ASSERT_NE(probes, nullptr);
    ASSERT_NE(runtime, nullptr);
    // The probes read this policer's drops from its map in the shared runtime.
    auto p = NetPolicer::open(runtime);
    ASSERT_TRUE(p.ok()) << p.error().what();
    policer = std::move(p).value();
    auto m = LibvirtMechanisms::connect({}, policer.get());
    ASSERT_TRUE(m.ok()) << m.error().what();
    mech = std::move(m).value();
    engine = std::make_unique<ShiftEngine>(
        *mech, [] { return WallClock::now(); }, ShiftEngine::Options{});
  }
  void TearDownOnBed() override {
    if (engine) engine->controller_lost();  // back to baseline whatever happened
  }

  // The agent's KPIs (one read at each end, as its interval does) and libvirt's counters, bracketed.
  static Window measure(std::chrono::milliseconds span) {
    Window w;
    EXPECT_TRUE(probes->read());  // start of the window
    const uint64_t vcpu0 = bed().vcpu_time_ns(), rd0 = bed().disk_read_reqs(), tx0 = bed().tap_rx_bytes();
    const auto t0 = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(span);
    const uint64_t vcpu1 = bed().vcpu_time_ns(), rd1 = bed().disk_read_reqs(), tx1 = bed().tap_rx_bytes();
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    auto k = probes->read();
    w.vcpu_pct = static_cast<double>(vcpu1 - vcpu0) / sec / 1e7;
    w.rd_req = static_cast<double>(rd1 - rd0) / sec;
    w.tap_tx_bytes = static_cast<double>(tx1 - tx0) / sec;
    EXPECT_TRUE(k && k->size() == 1) << (k ? "not one VM in the KPIs" : k.error().describe());
    if (!k || k->size() != 1 || k->front().interval_ns == 0) return w;
    const kpi::VmKpis& v = k->front();
    w.cpu_pct = 100.0 * kpi::cpu_share(v.cpu_run_ns, v.interval_ns);
    w.blk_read_ops = kpi::per_second(v.blk_read_ops, v.interval_ns);
    w.net_tx_bytes = kpi::per_second(v.net_tx_bytes, v.interval_ns);
    w.net_tx_delivered = kpi::per_second(kpi::delivered_tx_bytes(v), v.interval_ns);
    return w;
  }

  // The guest under `targets`, 2 s to settle, then a window of `span`.
  static void measure_under(const std::string& targets, std::chrono::milliseconds span, Window* w) {
    ASSERT_TRUE(bed().load(targets));
    std::this_thread::sleep_for(2s);
    *w = measure(span);
  }
  // `adj` shifted (what it answered in *out), 1 s for it to take effect, then a window of `span`.
  void shift_and_measure(std::vector<Adjustment> adj, std::chrono::milliseconds span, ShiftOutcome* out, Window* w) {
    *out = shift(std::move(adj));
    ASSERT_TRUE(out->ok()) << out->error->what();
    std::this_thread::sleep_for(1s);
    *w = measure(span);
  }

  ShiftOutcome shift(std::vector<Adjustment> adj, std::chrono::milliseconds lease = 60s) {
    return engine->shift({++next_id, bed().vm().name, std::move(adj), lease});
  }

  static inline std::shared_ptr<agent::BpfRuntime> runtime;
  static inline agent::KpiProbes* probes = nullptr;
  static inline std::string suite_error;
  std::unique_ptr<NetPolicer> policer;
  std::unique_ptr<LibvirtMechanisms> mech;
  std::unique_ptr<ShiftEngine> engine;
  uint64_t next_id = static_cast<uint64_t>(WallClock::now().time_since_epoch().count());
};

TEST_F(ShifterClosedLoop, CpuCapHoldsTwentyPercentWithinTwoSecondsAndRaisingRestores) {
  Window before, capped, restored;
  ShiftOutcome out;
  ASSERT_NO_FATAL_FAILURE(measure_under("cpu=100", 1000ms, &before));
  // Capped: the second second after the shift.
  ASSERT_NO_FATAL_FAILURE(shift_and_measure({{Resource::cpu, 200, {}}}, 1000ms, &out, &capped));
  EXPECT_EQ(out.in_force.vcpu_quota_us, 20000);
  EXPECT_EQ(out.in_force.vcpu_period_us, 100000u);
  ASSERT_NO_FATAL_FAILURE(shift_and_measure({{Resource::cpu, 1000, {}}}, 1000ms, &out, &restored));
  EXPECT_EQ(out.in_force.cpu_millicores, 1000);
  std::cout << "on-CPU % (agent's cpu_run_ns, whole VM / libvirt's vCPU time): before " << before.cpu_pct << " / "
            << before.vcpu_pct << ", capped at 200 mc " << capped.cpu_pct << " / " << capped.vcpu_pct
            << ", after raising to 1000 mc " << restored.cpu_pct << " / " << restored.vcpu_pct << "\n";
  EXPECT_GT(before.cpu_pct, 40.0) << "the guest did not get busy; nothing to cap";
  EXPECT_NEAR(capped.cpu_pct, 20.0, 3.0) << "the agent's KPI";
  EXPECT_NEAR(capped.vcpu_pct, 20.0, 3.0) << "libvirt's vCPU time";
  EXPECT_GT(restored.cpu_pct, std::max(35.0, 0.7 * before.cpu_pct));
}

TEST_F(ShifterClosedLoop, NetOutLimitHoldsTransmitRateWithinFivePercentAndRemovingRestores) {
  Window before, limited, lifted;
  ShiftOutcome out;
  ASSERT_NO_FATAL_FAILURE(measure_under("net_tx=4M", 1000ms, &before));
  ASSERT_NO_FATAL_FAILURE(shift_and_measure({{Resource::net_out_kbps, 10000, {}}}, 3000ms, &out, &limited));
  EXPECT_EQ(out.in_force.net_out_kbps, 10000u);
  ASSERT_NO_FATAL_FAILURE(shift_and_measure({{Resource::net_out_kbps, 0, {}}}, 2000ms, &out, &lifted));
  EXPECT_EQ(out.in_force.net_out_kbps, 0u);
  const double limit = 10000.0 * 1000 / 8;
  std::cout << "guest tx B/s (agent's net_tx_bytes sent / delivered; libvirt's sent): before " << before.net_tx_bytes
            << " / " << before.net_tx_delivered << "; " << before.tap_tx_bytes << "\n  under a " << limit
            << " B/s limit " << limited.net_tx_bytes << " / " << limited.net_tx_delivered << " ("
            << 100.0 * (limited.net_tx_delivered - limit) / limit << " %); " << limited.tap_tx_bytes
            << "\n  limit removed " << lifted.net_tx_bytes << " / " << lifted.net_tx_delivered << "; "
            << lifted.tap_tx_bytes << "\n";
  ASSERT_GT(limited.net_tx_bytes, 1.2 * limit) << "the guest did not send more than the limit; nothing to police";
  EXPECT_NEAR(limited.tap_tx_bytes, limited.net_tx_bytes, 0.05 * limited.tap_tx_bytes)
      << "the agent's sent bytes disagree with libvirt's";
  EXPECT_NEAR(limited.net_tx_delivered, limit, 0.05 * limit);
  // Removing the limit stops the policing: everything the guest sends leaves again, at the rate before.
  EXPECT_NEAR(lifted.net_tx_delivered, lifted.net_tx_bytes, 0.01 * lifted.net_tx_bytes);
  EXPECT_GT(lifted.net_tx_delivered, 0.9 * before.net_tx_delivered);
}

TEST_F(ShifterClosedLoop, DiskIopsLimitHoldsWithinTenPercent) {
  Window before, limited;
  ShiftOutcome out;
  ASSERT_NO_FATAL_FAILURE(measure_under("disk_read=64M", 2000ms, &before));
  // Half of what the guest manages unthrottled (TCG guests differ from run to run), at least 10 ops/s.
  const auto kLimit = std::max<int64_t>(10, static_cast<int64_t>(before.blk_read_ops / 2));
  ASSERT_NO_FATAL_FAILURE(shift_and_measure({{Resource::disk_iops, kLimit, {}}}, 3000ms, &out, &limited));
  EXPECT_EQ(out.in_force.disk_iops, static_cast<uint64_t>(kLimit));
  std::cout << "disk read ops/s (agent's blk_read_ops / libvirt's rd_req): before " << before.blk_read_ops << " / "
            << before.rd_req << ", under a " << kLimit << " IOPS limit " << limited.blk_read_ops << " / "
            << limited.rd_req << "\n";
  const auto limit = static_cast<double>(kLimit);
  ASSERT_GT(before.blk_read_ops, 1.5 * limit) << "the guest did not read faster than the limit; nothing to hold";
  EXPECT_NEAR(limited.blk_read_ops, limit, 0.10 * limit) << "the agent's KPI";
  EXPECT_NEAR(limited.rd_req, limit, 0.10 * limit) << "libvirt's counter";
}

TEST_F(ShifterClosedLoop, UnrenewedLeaseRevertsToBaselineWithinLeasePlusOneSecond) {
  auto vm = mech->resolve(bed().vm().name);
  ASSERT_TRUE(vm.ok());
  auto baseline = mech->read(*vm);
  ASSERT_TRUE(baseline.ok());
  constexpr auto kLease = 2000ms;
  const auto t0 = std::chrono::steady_clock::now();
  ShiftOutcome out =
      shift({{Resource::cpu, 300, {}}, {Resource::disk_iops, 80, {}}, {Resource::net_out_kbps, 5000, {}}}, kLease);
  ASSERT_TRUE(out.ok()) << out.error->what();
  ASSERT_NE(out.in_force, *baseline);
  // The agent's lease timer: expire_due every 100 ms. The check reads libvirt and the policer directly.
  std::optional<double> back_after;
  while (std::chrono::steady_clock::now() - t0 < kLease + 3s) {
    engine->expire_due();
    auto now = mech->read(*vm);
    ASSERT_TRUE(now.ok());
    const bool same = now->cpu_millicores == baseline->cpu_millicores && now->disk_iops == baseline->disk_iops &&
                      now->net_out_kbps == baseline->net_out_kbps;
    if (same) {
      back_after = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      break;
    }
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(back_after.has_value()) << "not back at baseline within lease + 3 s";
  std::cout << "lease " << kLease.count() << " ms: back at baseline after " << *back_after << " s\n";
  EXPECT_GE(*back_after, 2.0);
  EXPECT_LE(*back_after, 3.0);
  auto events = engine->take_events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].action, ExpiryPolicy::revert);
}

}  // namespace
}  // namespace morph::agent::shifter
