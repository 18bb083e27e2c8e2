// End-to-end accuracy of the agent's KPIs against libvirt's own counters (virConnectGetAllDomainStats, the
// `virsh domstats` view) on real test-bed guests, over the same windows: CPU time (2 %), network bytes per
// direction (2 %), block bytes (10 %), run-queue wait (20 %), and VMs joining / leaving the output within two
// intervals of starting / stopping. One test bed of 3 VMs (run-unique prefix) for every case, always torn
// down. The probes run in-process over the inventory (reads bracket libvirt's, so windows line up to the
// duration of one stats call), restricted to this bed's VMs so others' VMs and taps are left alone.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <streambuf>
#include <string>
#include <thread>
#include <vector>

#include "common/kpi/derived.h"
#include "hostagent/cli/kpis_command.h"
#include "hostagent/inventory/inventory.h"
#include "hostagent/probes/inventory_vm_source.h"
#include "hostagent/probes/kpi_probes.h"
#include "tests/support/requirements.h"
#include "tests/support/shell.h"
#include "tests/support/testbed.h"
#include "tests/support/testbed_vm_source.h"

namespace morph::agent {
namespace {

using namespace std::chrono_literals;

uint64_t realtime_ns() {
  return uint64_t(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

double pct_diff(double ours, double theirs) {
  return theirs > 0 ? 100.0 * (ours - theirs) / theirs : 0;
}

// One byte counter: ours (a VmKpis field) and libvirt's twin on the VM's first device of a kind, and the
// rate (B/s, by libvirt's count) that shows the load ran.
struct ByteCounter {
  const char* what;
  uint64_t kpi::VmKpis::*ours;
  std::function<std::optional<uint64_t>(const LibvirtCounters&)> theirs;  // nullopt: no such device
  double min_rate;
};
template <class Device>
std::function<std::optional<uint64_t>(const LibvirtCounters&)> first(std::vector<Device> LibvirtCounters::*devices,
                                                                     uint64_t Device::*field) {
  return [=](const LibvirtCounters& c) -> std::optional<uint64_t> {
    if ((c.*devices).empty()) return std::nullopt;
    return (c.*devices)[0].*field;
  };
}

// The kernel's run-queue delay (schedstat field 2) of every thread of a process, split into the vCPU
// threads (comm "CPU n/TCG" or "CPU n/KVM", the threads libvirt's vcpu.N.delay reads) and the rest.
struct RunDelay {
  uint64_t vcpu_ns = 0, other_ns = 0;
};
RunDelay run_delay_of(int pid) {
  RunDelay d;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream stat(e.path() / "schedstat"), comm(e.path() / "comm");
    uint64_t run = 0, delay = 0;
    std::string name;
    if (!(stat >> run >> delay)) continue;
    std::getline(comm, name);
    (name.rfind("CPU ", 0) == 0 ? d.vcpu_ns : d.other_ns) += delay;
  }
  return d;
}

// Collects what run_kpis prints, line by line, from its thread.
class LineSink final : public std::streambuf {
 public:
  std::vector<std::string> lines() {
    std::lock_guard lock(mu_);
    return lines_;
  }

 protected:
  int_type overflow(int_type c) override {
    if (c == traits_type::eof()) return c;
    std::lock_guard lock(mu_);
    if (c == '\n') {
      lines_.push_back(partial_);
      partial_.clear();
    } else {
      partial_ += char(c);
    }
    return c;
  }

 private:
  std::mutex mu_;
  std::string partial_;
  std::vector<std::string> lines_;
};

// One window: our deltas and libvirt's over the same span, per VM name.
struct Window {
  std::map<std::string, kpi::VmKpis> ours;
  std::map<std::string, LibvirtCounters> before, after;
  std::map<std::string, RunDelay> delay_before, delay_after;
  double seconds = 0;
};

struct KpiAccuracy : test::OnTestbed<KpiAccuracy> {
  static test::BedSpec bed_spec() { return {test::unique_prefix("kpiacc"), 3, {}, true}; }

 protected:
  static void SetUpTestSuite() {
    OnTestbed::SetUpTestSuite();
    if (!bed().up()) return;  // each test skips or fails with the reason
    auto inv = Inventory::open();
    if (!inv) {
      bed_error = inv.error().what();
      return;
    }
    inventory = std::move(inv).value();
    source = new PrefixVmSource(inventory, bed().prefix());
    // As the agent loads it, but with nothing pinned: no policer runs in this test.
    auto rt = BpfRuntime::load({.pin_dir = ""});
    auto p = rt ? KpiProbes::create(*rt) : Result<std::unique_ptr<KpiProbes>>(rt.error());
    if (!p) {
      bed_error = p.error().what();
      return;
    }
    probes = std::move(p).value().release();
    auto vms = source->list();
    if (!vms || vms->size() != 3) {
      bed_error = "inventory does not list the bed's 3 VMs";
      return;
    }
    for (const VmInfo& v : *vms) pids[v.name] = v.pid;
    if (auto s = probes->sync(*vms); !s) bed_error = s.error().what();
  }

  static void TearDownTestSuite() {
    delete probes;
    probes = nullptr;
    delete source;
    source = nullptr;
    inventory.reset();
    OnTestbed::TearDownTestSuite();
  }

  void SetUpOnBed() override { ASSERT_TRUE(bed_error.empty()) << bed_error; }

  // The bed's VM i, 1 to 3 (and 4 once the lifecycle test started it).
  static std::string vm(int i) { return bed().prefix() + "-vm" + std::to_string(i); }
  static bool load(int i, const std::string& targets) { return bed().load(size_t(i - 1), targets).ok(); }
  // VM i under `targets` for 3 s, then a 10 s window: each counter printed, the load seen to run, and ours
  // within `tolerance` (a fraction) of libvirt's.
  static void expect_bytes_within(int i, const std::string& targets, double tolerance, int diff_digits,
                                  const std::vector<ByteCounter>& counters) {
    ASSERT_TRUE(load(i, targets));
    std::this_thread::sleep_for(3s);
    Window w = measure(10s);
    const auto& name = vm(i);
    ASSERT_TRUE(w.ours.count(name)) << name;
    for (const ByteCounter& c : counters) {
      const auto before = c.theirs(w.before[name]), after = c.theirs(w.after[name]);
      ASSERT_TRUE(before && after) << c.what << ": libvirt reports no such device of " << name;
      const double ours = double(w.ours[name].*c.ours), theirs = double(*after - *before);
      std::printf("%s %s: ours %.0f B, libvirt %.0f B (%.0f KiB/s), diff %+.*f%%\n", c.what, name.c_str(), ours, theirs,
                  theirs / 1024 / w.seconds, diff_digits, pct_diff(ours, theirs));
      EXPECT_GT(theirs, c.min_rate * w.seconds) << c.what << ": the load did not run";
      EXPECT_NEAR(ours, theirs, tolerance * theirs) << c.what;
    }
  }
  static std::map<std::string, LibvirtCounters> counters() {
    std::map<std::string, LibvirtCounters> out;
    if (auto all = inventory->counters())
      for (auto& c : *all)
        if (c.name.rfind(bed().prefix() + "-", 0) == 0) out[c.name] = std::move(c);
    return out;
  }

  // Our reads bracket libvirt's at both ends, so both windows have the same length to within one
  // stats call. The kernel's per-thread run delay is read next to them.
  static Window measure(std::chrono::milliseconds span) {
    Window w;
    (void)probes->read();  // start of our window
    w.before = counters();
    for (auto& [name, pid] : pids) w.delay_before[name] = run_delay_of(pid);
    const auto t0 = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(span);
    auto k = probes->read();
    w.after = counters();
    for (auto& [name, pid] : pids) w.delay_after[name] = run_delay_of(pid);
    w.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (k)
      for (auto& v : *k) w.ours[v.name] = v;
    return w;
  }

  static inline std::string bed_error;
  static inline std::shared_ptr<Inventory> inventory;
  static inline PrefixVmSource* source = nullptr;
  static inline KpiProbes* probes = nullptr;
  static inline std::map<std::string, int> pids;
};

// libvirt's cpu.time is the cpuacct usage of the QEMU cgroup: every thread of the VM's cgroup subtree,
// which is exactly what cpu_run_ns credits.
TEST_F(KpiAccuracy, CpuTimeWithinTwoPercentOfLibvirt) {
  ASSERT_TRUE(load(1, "cpu=60"));
  std::this_thread::sleep_for(3s);
  Window w = measure(10s);
  for (int i = 1; i <= 3; i++) {
    const auto& name = vm(i);
    ASSERT_TRUE(w.ours.count(name) && w.before.count(name) && w.after.count(name)) << name;
    const double ours = double(w.ours[name].cpu_run_ns);
    const double theirs = double(w.after[name].cpu_time_ns - w.before[name].cpu_time_ns);
    std::printf("cpu %s: ours %.1f ms, libvirt cpu.time %.1f ms (%.1f%% of a core), diff %+.2f%%\n", name.c_str(),
                ours / 1e6, theirs / 1e6, 100 * theirs / 1e9 / w.seconds, pct_diff(ours, theirs));
    EXPECT_NEAR(ours, theirs, 0.02 * theirs) << name;
  }
  // The loaded VM really is loaded (a cpu=60 guest in TCG costs the host at least that much).
  EXPECT_GT(double(w.ours[vm(1)].cpu_run_ns), 0.4e9 * w.seconds);
}

// libvirt reads the tap's counters (guest view: tap tx = guest rx). Both sides count whole Ethernet frames:
// the tap driver counts the frame it hands to / takes from the guest, tc sees skb->len with the MAC header
// (pushed back for tc ingress).
TEST_F(KpiAccuracy, NetBytesPerDirectionWithinTwoPercentOfLibvirt) {
  using Net = LibvirtCounters::Net;
  expect_bytes_within(
      2, "net_tx=1M net_rx=1M", 0.02, 3,
      {{"net rx", &kpi::VmKpis::net_rx_bytes, first(&LibvirtCounters::net, &Net::rx_bytes), 0.5 * 1048576},
       {"net tx", &kpi::VmKpis::net_tx_bytes, first(&LibvirtCounters::net, &Net::tx_bytes), 0.5 * 1048576}});
}

// libvirt's block stats are QEMU's (bytes the guest asked for); ours are the host block layer's requests of
// the VM's threads. With cache=none every guest request reaches the host disk. The load must reach a quarter of
// its target (TCG guests may fall short of it).
TEST_F(KpiAccuracy, BlockBytesWithinTenPercentOfLibvirt) {
  using Block = LibvirtCounters::Block;
  expect_bytes_within(3, "disk_read=4M disk_write=1M", 0.10, 2,
                      {{"block read", &kpi::VmKpis::blk_read_bytes, first(&LibvirtCounters::block, &Block::rd_bytes),
                        0.25 * 4 * 1048576},
                       {"block write", &kpi::VmKpis::blk_write_bytes, first(&LibvirtCounters::block, &Block::wr_bytes),
                        0.25 * 1048576}});
}

// Three CPU-bound guests on two host cores. libvirt's vcpu.N.delay is the vCPU thread's schedstat run delay;
// cpu_wait_ns covers every thread of the VM's cgroup. Like with like: ours against libvirt's vCPU delay plus
// the kernel's run delay of the VM's other threads (emulator, I/O), read from the same schedstat.
TEST_F(KpiAccuracy, RunQueueWaitRisesUnderContentionAndAgreesWithLibvirtWithinTwentyPercent) {
  std::this_thread::sleep_for(2s);
  Window idle = measure(5s);
  for (int i = 1; i <= 3; i++) ASSERT_TRUE(load(i, "cpu=100"));
  std::this_thread::sleep_for(3s);
  Window busy = measure(10s);
  for (int i = 1; i <= 3; i++) {
    const auto& name = vm(i);
    ASSERT_TRUE(busy.ours.count(name) && idle.ours.count(name));
    // Waiting time per interval (above 1 when several threads wait at once), not the wait share.
    const double idle_wait = kpi::cpu_share(idle.ours[name].cpu_wait_ns, idle.ours[name].interval_ns);
    const double wait = kpi::cpu_share(busy.ours[name].cpu_wait_ns, busy.ours[name].interval_ns);
    uint64_t vcpu_delay = 0;
    const auto& b = busy.before[name].vcpu_delay_ns;
    const auto& a = busy.after[name].vcpu_delay_ns;
    for (size_t v = 0; v < a.size() && v < b.size(); v++)
      if (a[v] && b[v]) vcpu_delay += *a[v] - *b[v];
    const uint64_t other = busy.delay_after[name].other_ns - busy.delay_before[name].other_ns;
    const uint64_t kernel_vcpu = busy.delay_after[name].vcpu_ns - busy.delay_before[name].vcpu_ns;
    const double ours = double(busy.ours[name].cpu_wait_ns);
    const double reference = double(vcpu_delay + other);
    std::printf(
        "runq %s: wait idle %.2f%% -> busy %.2f%% of the interval | ours %.1f ms vs libvirt vcpu.delay %.1f ms + "
        "other threads %.1f ms = %.1f ms, diff %+.2f%% (kernel vCPU run_delay %.1f ms)\n",
        name.c_str(), 100 * idle_wait, 100 * wait, ours / 1e6, vcpu_delay / 1e6, other / 1e6, reference / 1e6,
        pct_diff(ours, reference), kernel_vcpu / 1e6);
    EXPECT_GT(a.size(), 0u) << "libvirt reports no vcpu.N.delay";
    EXPECT_GT(wait, 0.10) << name;                  // three runnable guests on two cores: ~1/3 waiting
    EXPECT_GT(wait, 3 * idle_wait + 0.05) << name;  // far above its idle level
    EXPECT_NEAR(ours, reference, 0.20 * reference) << name;
  }
}

// A VM started while the KPI loop runs is in its output within two intervals of libvirt reporting it running,
// and gone within two intervals of being destroyed (lifecycle events, not the periodic list()). Balloon
// comes from libvirt.
TEST_F(KpiAccuracy, StartedAndStoppedVmsFollowWithinTwoIntervals) {
  constexpr auto kInterval = 1000ms;
  LineSink sink;
  std::ostream out(&sink);
  volatile bool stop = false;
  Status loop_status;
  std::thread loop([&] {
    loop_status = cli::run_kpis(*probes, *source, cli::KpisCommandOptions{kInterval, 0, true}, out, &stop);
  });
  struct Join {
    std::thread& t;
    volatile bool& stop;
    ~Join() {
      stop = true;
      if (t.joinable()) t.join();
    }
  } join{loop, stop};
  auto first_line_of = [&](const std::string& name, uint64_t after_ns) -> std::optional<nlohmann::json> {
    for (const auto& l : sink.lines()) {
      auto j = nlohmann::json::parse(l, nullptr, false);
      if (!j.is_discarded() && j["name"] == name && j["timestamp_ns"].get<uint64_t>() > after_ns) return j;
    }
    return std::nullopt;
  };

  // Start a 4th VM of the same bed; note when libvirt first lists it running.
  const std::string vm4 = vm(4);
  std::atomic<int> up_status{-1};
  std::thread up([&] { up_status = bed().add(1).status; });
  uint64_t started_ns = 0;
  for (auto deadline = std::chrono::steady_clock::now() + 120s; std::chrono::steady_clock::now() < deadline;
       std::this_thread::sleep_for(100ms)) {
    auto vms = source->list();
    if (vms && std::any_of(vms->begin(), vms->end(), [&](const VmInfo& v) { return v.name == vm4 && v.pid; })) {
      started_ns = realtime_ns();
      break;
    }
  }
  up.join();
  ASSERT_NE(started_ns, 0u) << vm4 << " never ran";
  ASSERT_EQ(up_status.load(), 0);
  std::optional<nlohmann::json> seen;
  for (int i = 0; i < 50 && !seen; i++, std::this_thread::sleep_for(100ms)) seen = first_line_of(vm4, 0);
  ASSERT_TRUE(seen) << vm4 << " never appeared";
  const double appear_s = (double(seen->at("timestamp_ns").get<uint64_t>()) - double(started_ns)) / 1e9;
  std::printf("lifecycle: %s in the output %.2f s after libvirt listed it running\n", vm4.c_str(), appear_s);
  EXPECT_LE(appear_s, 2.0 * std::chrono::duration<double>(kInterval).count());

  // Balloon from libvirt, for a VM of the bed.
  auto any = first_line_of(vm(1), 0);
  ASSERT_TRUE(any);
  auto kib = inventory->balloon_kib(any->at("uuid").get<std::string>());
  ASSERT_TRUE(kib.ok());
  EXPECT_GT(*kib, 0u);
  EXPECT_EQ(any->at("mem_balloon_kib").get<uint64_t>(), *kib);

  // Destroy it (the VM only; the bed's teardown undefines it).
  ASSERT_TRUE(test::sh("virsh -q -c qemu:///system destroy " + vm4).ok());
  const uint64_t stopped_ns = realtime_ns();
  std::this_thread::sleep_for(4 * kInterval);
  auto late = first_line_of(vm4, stopped_ns + uint64_t(std::chrono::nanoseconds(2 * kInterval).count()));
  uint64_t last_ns = 0;
  for (const auto& l : sink.lines()) {
    auto j = nlohmann::json::parse(l, nullptr, false);
    if (!j.is_discarded() && j["name"] == vm4) last_ns = std::max(last_ns, j["timestamp_ns"].get<uint64_t>());
  }
  std::printf("lifecycle: %s last in the output %.2f s after destroy returned\n", vm4.c_str(),
              (double(last_ns) - double(stopped_ns)) / 1e9);
  EXPECT_FALSE(late) << vm4 << " still reported more than two intervals after it stopped";
  EXPECT_TRUE(first_line_of(vm(1), stopped_ns + uint64_t(std::chrono::nanoseconds(2 * kInterval).count())))
      << "the loop stopped reporting the other VMs";
  stop = true;
  loop.join();
  EXPECT_TRUE(loop_status.ok()) << loop_status.error().what();
}

}  // namespace
}  // namespace morph::agent
