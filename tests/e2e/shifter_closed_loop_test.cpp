// Closed-loop checks of the Resource Shifting Engine on a real test-bed VM (TCG guest with the morph-load
// generator): a shift must change what the VM actually gets, measured independently of the mechanism
// (libvirt's vCPU time and block request counters; the policer's pass counters for the network, since
// the tap's own counters see packets before tc ingress drops them).
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <memory>
#include <thread>

#include "hostagent/shifter/libvirt_mechanisms.h"
#include "hostagent/shifter/net_policer.h"
#include "hostagent/shifter/shift_engine.h"
#include "tests/e2e/shifter_testbed.h"
#include "tests/support/requirements.h"

namespace morph::agent::shifter {
namespace {

using namespace std::chrono_literals;
using test::rate_over;

class ShifterClosedLoop : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { bed = new test::ShiftTestbed("e2e"); }
  static void TearDownTestSuite() {
    delete bed;
    bed = nullptr;
  }

  void SetUp() override {
    MORPH_REQUIRE_ROOT();
    MORPH_REQUIRE_BPF();
    MORPH_REQUIRE(bed->error());
    auto p = NetPolicer::open({.pin_dir = ""});
    ASSERT_TRUE(p.ok()) << p.error().what();
    policer = std::move(p).value();
    auto m = LibvirtMechanisms::connect({}, policer.get());
    ASSERT_TRUE(m.ok()) << m.error().what();
    mech = std::move(m).value();
    engine = std::make_unique<ShiftEngine>(*mech, [] { return WallClock::now(); }, ShiftEngine::Options{});
  }
  void TearDown() override {
    if (engine) engine->controller_lost();  // back to baseline whatever happened
    if (bed && bed->error().empty()) bed->load("cpu=0 disk_read=0 disk_write=0 net_tx=0 net_rx=0");
  }

  ShiftOutcome shift(std::vector<Adjustment> adj, std::chrono::milliseconds lease = 60s) {
    return engine->shift({++next_id, bed->vm(), std::move(adj), lease});
  }

  static inline test::ShiftTestbed* bed = nullptr;
  std::unique_ptr<NetPolicer> policer;
  std::unique_ptr<LibvirtMechanisms> mech;
  std::unique_ptr<ShiftEngine> engine;
  uint64_t next_id = static_cast<uint64_t>(WallClock::now().time_since_epoch().count());
};

TEST_F(ShifterClosedLoop, CpuCapHoldsTwentyPercentWithinTwoSecondsAndRaisingRestores) {
  ASSERT_TRUE(bed->load("cpu=100"));
  std::this_thread::sleep_for(2s);
  auto vcpu = [&] { return bed->vcpu_time_ns(); };
  const double before = rate_over(vcpu, 1000ms) / 1e7;  // percent of one core
  ShiftOutcome out = shift({{Resource::cpu_millicores, 200, {}}});
  ASSERT_TRUE(out.ok()) << out.error->what();
  EXPECT_EQ(out.in_force.vcpu_quota_us, 20000);
  EXPECT_EQ(out.in_force.vcpu_period_us, 100000u);
  std::this_thread::sleep_for(1s);
  const double capped = rate_over(vcpu, 1000ms) / 1e7;  // the second second after the shift
  const double capped_total = rate_over([&] { return bed->cpu_time_ns(); }, 1000ms) / 1e7;
  out = shift({{Resource::cpu_millicores, 1000, {}}});
  ASSERT_TRUE(out.ok()) << out.error->what();
  EXPECT_EQ(out.in_force.cpu_millicores, 1000);
  std::this_thread::sleep_for(1s);
  const double restored = rate_over(vcpu, 1000ms) / 1e7;
  std::cout << "vCPU on-CPU %: before " << before << ", capped at 200 mc " << capped << " (whole QEMU "
            << capped_total << "), after raising to 1000 mc " << restored << "\n";
  EXPECT_GT(before, 40.0) << "the guest did not get busy; nothing to cap";
  EXPECT_NEAR(capped, 20.0, 3.0);
  EXPECT_GT(restored, std::max(35.0, 0.7 * before));
}

TEST_F(ShifterClosedLoop, NetOutLimitHoldsTransmitRateWithinFivePercent) {
  ASSERT_TRUE(bed->load("net_tx=4M"));
  std::this_thread::sleep_for(2s);
  const double offered_before = rate_over([&] { return bed->tap_rx_bytes(); }, 1000ms);
  ShiftOutcome out = shift({{Resource::net_out_kbps, 10000, {}}});
  ASSERT_TRUE(out.ok()) << out.error->what();
  EXPECT_EQ(out.in_force.net_out_kbps, 10000u);
  auto target = engine->baseline(out.vm_uuid);
  ASSERT_TRUE(target.has_value());
  auto vm = mech->resolve(bed->vm());
  ASSERT_TRUE(vm.ok() && !vm->tap_ifindexes.empty());
  const uint32_t tap = vm->tap_ifindexes.front();
  std::this_thread::sleep_for(1s);
  auto s0 = policer->stats(tap, NetDirection::guest_out);
  const auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(3s);
  auto s1 = policer->stats(tap, NetDirection::guest_out);
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(s0.ok() && s1.ok());
  const double passed = static_cast<double>(s1->pass_bytes - s0->pass_bytes) / dt;
  const double dropped = static_cast<double>(s1->drop_bytes - s0->drop_bytes) / dt;
  const double limit = 10000.0 * 1000 / 8;
  std::cout << "guest tx offered " << offered_before << " B/s before the limit; under a " << limit
            << " B/s limit: passed " << passed << " B/s (" << 100.0 * (passed - limit) / limit << " %), dropped "
            << dropped << " B/s\n";
  ASSERT_GT(passed + dropped, 1.2 * limit) << "the guest did not send more than the limit; nothing to police";
  EXPECT_NEAR(passed, limit, 0.05 * limit);
  // Removing the limit stops the policing.
  out = shift({{Resource::net_out_kbps, 0, {}}});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out.in_force.net_out_kbps, 0u);
}

TEST_F(ShifterClosedLoop, DiskIopsLimitHoldsWithinTenPercent) {
  ASSERT_TRUE(bed->load("disk_read=64M"));
  std::this_thread::sleep_for(2s);
  auto reqs = [&] { return bed->disk_read_reqs(); };
  const double before = rate_over(reqs, 2000ms);
  // Half of what the guest manages unthrottled (TCG guests differ from run to run), at least 10 ops/s.
  const auto kLimit = std::max<int64_t>(10, static_cast<int64_t>(before / 2));
  ShiftOutcome out = shift({{Resource::disk_iops, kLimit, {}}});
  ASSERT_TRUE(out.ok()) << out.error->what();
  EXPECT_EQ(out.in_force.disk_iops, static_cast<uint64_t>(kLimit));
  std::this_thread::sleep_for(1s);
  const double limited = rate_over(reqs, 3000ms);
  std::cout << "disk read ops/s: before " << before << ", under a " << kLimit << " IOPS limit " << limited << "\n";
  ASSERT_GT(before, 1.5 * static_cast<double>(kLimit)) << "the guest did not read faster than the limit; nothing to hold";
  EXPECT_NEAR(limited, static_cast<double>(kLimit), 0.10 * static_cast<double>(kLimit));
}

TEST_F(ShifterClosedLoop, UnrenewedLeaseRevertsToBaselineWithinLeasePlusOneSecond) {
  auto vm = mech->resolve(bed->vm());
  ASSERT_TRUE(vm.ok());
  auto baseline = mech->read(*vm);
  ASSERT_TRUE(baseline.ok());
  constexpr auto kLease = 2000ms;
  const auto t0 = std::chrono::steady_clock::now();
  ShiftOutcome out = shift({{Resource::cpu_millicores, 300, {}}, {Resource::disk_iops, 80, {}},
                            {Resource::net_out_kbps, 5000, {}}},
                           kLease);
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
