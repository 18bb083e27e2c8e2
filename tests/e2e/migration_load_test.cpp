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
#include <mutex>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/msg/wire.h"
#include "controller/api/controller_server.h"
#include "tests/e2e/migration_bed.h"
#include "tests/support/requirements.h"
#include "tests/support/wait.h"

namespace morph {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
constexpr auto kInterval = 1s;

struct Seen {
  std::string host, uuid;
  Clock::time_point at;
  kpi::VmKpis kpis;
};

// Every VM entry of every KPI report the controller received, with its host.
class KpiLog final : public controller::MarketApi, public controller::KpiObserver {
 public:
  Result<controller::ReplyBody> handle(const controller::Caller&, const v1::ApiRequest&,
                                       flatbuffers::FlatBufferBuilder&) override {
    return Error(Errc::unavailable, "no market in this test");
  }
  void on_kpi_report(const v1::KpiReport& report, uint64_t) override {
    if (!report.vms()) return;
    std::lock_guard lk(mu_);
    for (const v1::VmKpi* k : *report.vms())
      seen_.push_back(
          {std::string(msg::sv(report.host())), std::string(msg::sv(k->uuid())), Clock::now(), msg::to_vm_kpis(*k)});
  }
  std::vector<Seen> since(Clock::time_point t, const std::string& uuid) const {
    std::lock_guard lk(mu_);
    std::vector<Seen> out;
    for (const auto& s : seen_)
      if (s.at >= t && s.uuid == uuid) out.push_back(s);
    return out;
  }
  std::vector<Seen> all() const {
    std::lock_guard lk(mu_);
    return seen_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<Seen> seen_;
};

class MigrateLoadedE2e : public ::testing::Test {
 protected:
  void SetUp() override {
    bed = std::make_unique<test::MigrationBed>("mload");
    MORPH_REQUIRE(bed->error());
    MORPH_REQUIRE_BPF();
    uuid = bed->uuid();
    dir = std::filesystem::temp_directory_path() / ("morph-mload-" + std::to_string(getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);  // run/, where the ipc sockets go, is made private by the server
    log = std::make_shared<KpiLog>();
    controller::ControllerConfig cc;
    const std::string run = (dir / "run").string();
    cc.endpoints = {"ipc://" + run + "/ingest", "ipc://" + run + "/control", "ipc://" + run + "/api",
                    "ipc://" + run + "/events"};
    cc.kpi_observer = log;
    server = std::make_unique<controller::ControllerServer>(cc, log);
    auto started = server->start();
    ASSERT_TRUE(started) << started.error().what();
    for (int h = 1; h <= 2; ++h)
      agents.push_back(std::make_unique<test::ChildProcess>(
          std::vector<std::string>{test::source_dir() + "/scripts/testbed", "exec", bed->host(h),
                                   test::binary_dir() + "/hostagent/morph-agent", "run", "--host", bed->host(h),
                                   "--connect", bed->uri(h), "--ingest", cc.endpoints.ingest, "--control",
                                   cc.endpoints.control, "--interval", "1s", "--metrics-listen", "",
                                   "--lease-state-file", (dir / ("leases-" + bed->host(h) + ".json")).string()},
          dir / ("agent-" + bed->host(h) + ".out")));
    ASSERT_TRUE(test::wait_until([&] { return server->stats().hosts_up >= 2; }, 30s)) << logs();
  }
  void TearDown() override {
    for (auto& a : agents) a->stop();
    if (server) server->stop();
    if (::testing::Test::HasFailure()) std::cout << logs();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    bed.reset();
  }
  std::string logs() const {
    std::string s;
    for (const auto& a : agents) s += a->err().substr(a->err().size() > 4000 ? a->err().size() - 4000 : 0) + "\n";
    return s;
  }

  // Reports of the VM from `host` after `t` with the figure `f` above zero.
  size_t busy_reports(Clock::time_point t, const std::string& host, uint64_t kpi::VmKpis::*f) const {
    size_t n = 0;
    for (const auto& s : log->since(t, uuid))
      if (s.host == host && s.kpis.*f > 0) ++n;
    return n;
  }

  void move(int from, int to) {
    const auto before = bed->counters(1);
    ASSERT_FALSE(before.empty()) << "no running totals on the console yet";
    const auto t0 = Clock::now();
    auto r = bed->migrate(1, from, to);
    const auto done = Clock::now();
    ASSERT_EQ(r.rc, 0) << r.err;
    std::cout << bed->host(from) << " -> " << bed->host(to) << ": " << r.out;
    ASSERT_EQ(bed->only_host(bed->vm()), to);

    // KPIs under the same UUID from the destination's agent, CPU and the network, within 2 intervals.
    std::optional<Clock::time_point> first;
    ASSERT_TRUE(test::wait_until(
        [&] {
          for (const auto& s : log->since(t0, uuid))
            if (s.host == bed->host(to) && s.kpis.cpu_run_ns > 0 && s.at > done) {
              first = s.at;
              return true;
            }
          return false;
        },
        10s))
        << "no KPIs of " << uuid << " from " << bed->host(to) << "\n"
        << logs();
    const auto after = std::chrono::duration_cast<std::chrono::milliseconds>(*first - done);
    std::cout << "first busy report from " << bed->host(to) << " " << after.count() << " ms after the move ended\n";
    EXPECT_LE(*first - done, 2 * kInterval);
    ASSERT_TRUE(
        test::wait_until([&] { return busy_reports(done, bed->host(to), &kpi::VmKpis::net_tx_bytes) >= 2; }, 10s))
        << "the VM's network traffic did not resume on " << bed->host(to);
    EXPECT_TRUE(
        test::wait_until([&] { return busy_reports(done, bed->host(to), &kpi::VmKpis::blk_read_bytes) >= 2; }, 10s))
        << "the VM's disk reads did not show on " << bed->host(to);
    // The source's agent no longer reports it (one last report for the interval the move ended in).
    std::this_thread::sleep_for(3 * kInterval);
    for (const auto& s : log->since(done + 2 * kInterval, uuid)) {
      EXPECT_EQ(s.host, bed->host(to)) << "a late report";
    }

    // The load generator went on: its totals grew past what they were before the move, and it reaches its
    // control server (now served on the destination's side of its tap) again. Under this load a poll
    // succeeds every few seconds.
    const auto b = before.back();
    EXPECT_TRUE(test::wait_until([&] { return bed->counters(1).back().polls > b.polls; }, 30s))
        << "the guest no longer reaches its control server on " << bed->host(to);
    const auto now = bed->counters(1);
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
    EXPECT_TRUE(bed->io_errors(1).empty()) << bed->io_errors(1).front();
    EXPECT_TRUE(bed->kernel_faults(1).empty()) << bed->kernel_faults(1).front();
    EXPECT_EQ(bed->boots(1), 1) << "the guest rebooted";
  }

  std::unique_ptr<test::MigrationBed> bed;
  std::string uuid;
  std::filesystem::path dir;
  std::shared_ptr<KpiLog> log;
  std::unique_ptr<controller::ControllerServer> server;
  std::vector<std::unique_ptr<test::ChildProcess>> agents;
};

TEST_F(MigrateLoadedE2e, ThereAndBackUnderLoadMeasuredByEachHostsAgent) {
  ASSERT_TRUE(bed->load(1, "cpu=50 disk_read=2M net_tx=1M"));
  ASSERT_TRUE(test::wait_until([&] { return busy_reports({}, bed->host(1), &kpi::VmKpis::cpu_run_ns) >= 3; }, 30s))
      << logs();
  ASSERT_TRUE(test::wait_until([&] { return bed->counters(1).size() >= 3; }, 20s));
  move(1, 2);
  move(2, 1);
  // Each agent reported only VMs of its own host: never this VM while it was on the other host, and
  // never any VM of another prefix (the first host's agent sees the machine's libvirtd, shared with other
  // test beds; the second host's only its own daemon).
  for (const auto& s : log->all()) {
    if (s.host == bed->host(2)) {
      EXPECT_EQ(s.uuid, uuid) << "host 2's agent reported a VM it does not run";
    }
  }
}

}  // namespace
}  // namespace morph
