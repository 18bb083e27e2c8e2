// `morph-agent run` killed with SIGKILL and started again while shifts are in force under leases, on a
// real test-bed VM. The controller is a ControllerServer in this process (ipc), as in agent_run_test.cpp;
// it applies a CPU cap, a net_out limit (the eBPF policer) and an IOPS limit with one command, and renews
// the lease every 0.5 s from a thread. Checked:
//   (a) the restarted agent re-reads what is in force (libvirt, the pinned policer map) and reports it to
//       the controller on reconnect: a ShiftResult for the same command, not reverted, with the values;
//   (b) while the controller keeps renewing, the limits stay in force across the restart: libvirt's values,
//       the pinned map, and the VM's transmit rate as received by a UDP socket on the host (the guest's
//       load generator sends to the host's discard port: only what the policer passes arrives);
//   (c) when the controller stops renewing, the VM is back at its baseline within lease + 1 s, by the
//       agent that did not apply the shift (it knows the deadline from lease.state_file), and the
//       revert is reported;
//   (d) lease.on_expiry = hold keeps the values across a restart and after the lease ran out;
//   and when the controller is already gone at restart: the new agent reverts at the lease deadline, and
//   reports the revert to a controller that comes back later.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libvirt/libvirt.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <thread>
#include <vector>

#include "common/msg/wire.h"
#include "controller/api/controller_server.h"
#include "hostagent/shifter/net_policer.h"
#include "tests/support/files.h"
#include "tests/support/in_process_controller.h"
#include "tests/support/process.h"
#include "tests/support/requirements.h"
#include "tests/support/testbed.h"
#include "tests/support/wait.h"

namespace morph {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Received = test::ReceivedResult;

constexpr int64_t kCpuCap = 300;        // millicores (the VM has 1 vCPU: uncapped is 1000)
constexpr int64_t kNetOutKbps = 10000;  // 1.25 MB/s on the wire
constexpr int64_t kDiskIops = 50;
constexpr auto kLease = 5000ms;  // also lease.default: an agent restart under load takes seconds

int64_t setting(const msg::ShiftOutcome& o, msg::Resource r) {
  for (auto& s : o.in_force)
    if (s.resource == r) return s.value;
  return -1;
}

// Counts what arrives at the host's discard port on the VM's host-side address: the guest's transmit load
// after the policer (tc ingress on the tap runs before the host's IP stack).
class DiscardSink {
 public:
  explicit DiscardSink(const std::string& host_ip) {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int buf = 8 << 20;
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(9);
    ok_ = fd_ >= 0 && inet_pton(AF_INET, host_ip.c_str(), &a.sin_addr) == 1 &&
          ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    if (ok_) thread_ = std::thread([this] { run(); });
  }
  ~DiscardSink() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return ok_; }
  // Bytes as the policer counts them: UDP payload + UDP, IPv4 and Ethernet headers.
  uint64_t wire_bytes() const { return bytes_.load(); }

 private:
  void run() {
    static char buf[65536];
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      ssize_t n;
      while ((n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT)) >= 0) bytes_ += uint64_t(n) + 8 + 20 + 14;
    }
  }
  int fd_ = -1;
  bool ok_ = false;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> bytes_{0};
  std::thread thread_;
};

struct AgentRestartE2e : test::OnTestbed<AgentRestartE2e> {
  static test::BedSpec bed_spec() { return {test::unique_prefix("shift-restart"), 1, {}, true}; }

 protected:
  void SetUpOnBed() override {
    uuid = bed().vm().uuid;
    tap = if_nametoindex(bed().vm().tap.c_str());
    ASSERT_NE(tap, 0u) << "no tap for " << bed().vm().name;
    host_ip = bed().vm().host_ip;
    // The agent's pinned policer maps, opened independently of any agent (a runtime of this test's own that
    // reuses them from the default pin directory, as the agent does).
    auto rt = agent::BpfRuntime::load({.kpi = false});
    ASSERT_TRUE(rt.ok()) << rt.error().what();
    auto p = agent::shifter::NetPolicer::open(*rt);
    ASSERT_TRUE(p.ok()) << p.error().what();
    policer = std::move(p).value();
    baseline = now_values();
    base_shares = bed().sched().cpu_shares;
    ASSERT_EQ(baseline.net_out_kbps, 0u) << "a policer limit is left over on this VM's tap";

    ASSERT_TRUE(dir.ok());  // the server makes run/ itself, 0700
    cc.endpoints = test::ipc_endpoints(dir.str() + "/run");
    host = "agent-restart-" + std::to_string(getpid());
    start_controller();
  }

  void TearDownOnBed() override {
    stop_renewing();
    if (agent) agent->stop(SIGTERM);
    if (server) server->stop();
    if (bed().up() && policer) restore_baseline();
  }

  void start_controller() {
    recorder = std::make_shared<test::ShiftRecorder>();
    server = std::make_unique<controller::ControllerServer>(cc, recorder);
    auto st = server->start();
    ASSERT_TRUE(st.ok()) << st.error().what();
  }

  // Starts `morph-agent run`; returns once the controller knows the host (or the agent died).
  void start_agent(const std::string& on_expiry, bool wait_up = true) {
    const int n = ++agent_starts;
    agent = std::make_unique<test::ChildProcess>(
        test::agent_run_argv(
            host, cc.endpoints,
            {"--interval", "500ms", "--metrics-listen", "127.0.0.1:0", "--lease-state-file",
             (dir / "leases.json").string(), "--set", "lease.default=" + std::to_string(kLease.count()) + "ms", "--set",
             "lease.on_expiry=" + on_expiry}),
        dir / ("agent" + std::to_string(n) + ".out"), test::ChildOptions{.stop_signal = SIGKILL});
    if (wait_up) {
      ASSERT_TRUE(test::wait_until([&] { return server->stats().hosts_up >= 1 || !agent->alive(); }, 30s))
          << agent->log();
    }
    ASSERT_TRUE(agent->alive()) << agent->log();
  }

  struct Values {
    long long quota = 0;
    uint64_t disk_iops = 0;
    uint64_t net_out_kbps = 0;
    bool operator==(const Values&) const = default;
  };
  friend std::ostream& operator<<(std::ostream& os, const Values& v) {
    return os << "{vcpu_quota " << v.quota << ", total_iops_sec " << v.disk_iops << ", policer net_out "
              << v.net_out_kbps << " kbit/s}";
  }
  // What libvirt and the pinned policer map say now, read by this test (not by the agent).
  Values now_values() const {
    Values v{bed().sched().vcpu_quota, bed().iops_limit(), 0};
    if (auto l = policer->limit(tap, agent::shifter::NetDirection::guest_out); l.ok()) v.net_out_kbps = *l;
    return v;
  }
  Values shifted() const { return {kCpuCap * 100000 / 1000, uint64_t(kDiskIops), uint64_t(kNetOutKbps)}; }

  void restore_baseline() const {
    bed().set_sched(0, {baseline.quota, base_shares});
    bed().set_iops_limit(0, baseline.disk_iops);
    if (policer) (void)policer->set_limit(tap, agent::shifter::NetDirection::guest_out, 0);
  }

  // One command with all three shifts; returns its id once the controller has the agent's answer.
  uint64_t shift_all() {
    msg::ShiftOrder o;
    o.command_id = ++next_id;
    o.vm_uuid = uuid;
    o.adjustments = {{msg::Resource::cpu, kCpuCap, {}},
                     {msg::Resource::net_out_kbps, kNetOutKbps, {}},
                     {msg::Resource::disk_iops, kDiskIops, {}}};
    o.lease_ns = uint64_t(std::chrono::nanoseconds(kLease).count());
    o.issued_ns = msg::now_ns();
    server->send_shift(host, o);
    std::optional<Received> res;
    EXPECT_TRUE(test::wait_until([&] { return (res = recorder->result(o.command_id, false)).has_value(); }, 15s))
        << agent->log();
    if (!res) return 0;
    EXPECT_EQ(res->first.error, v1::ErrorCode::ok) << res->first.error_message;
    EXPECT_EQ(setting(res->first, msg::Resource::cpu), kCpuCap);
    EXPECT_EQ(setting(res->first, msg::Resource::net_out_kbps), kNetOutKbps);
    EXPECT_EQ(setting(res->first, msg::Resource::disk_iops), kDiskIops);
    return o.command_id;
  }

  // start_agent(on_expiry), shift_all(), then start_renewing(); the command's id (0 when a step failed).
  uint64_t shifted_and_renewed(const std::string& on_expiry) {
    start_agent(on_expiry);
    const uint64_t id = HasFatalFailure() ? 0 : shift_all();
    if (id != 0) start_renewing(id);
    return id;
  }

  // The controller renews the VM's lease every 0.5 s (as the market does every tick) until stopped.
  void start_renewing(uint64_t id) {
    renewing = true;
    renewer = std::thread([this, id] {
      while (renewing) {
        server->renew_lease(host, {uuid, {id}, uint64_t(std::chrono::nanoseconds(kLease).count())});
        last_renewal = Clock::now();
        for (int i = 0; i < 10 && renewing; ++i) std::this_thread::sleep_for(50ms);
      }
    });
  }
  // Returns when the last renewal was sent.
  Clock::time_point stop_renewing() {
    renewing = false;
    if (renewer.joinable()) renewer.join();
    return last_renewal;
  }

  // Guest transmit over a window, bytes/s: what arrived at the host (the sink), what the guest offered
  // (the tap's receive counter, before tc), and what the policer counted as passed and dropped.
  struct Tx {
    double arrived = 0, offered = 0, passed = 0, dropped = 0;
  };
  friend std::ostream& operator<<(std::ostream& os, const Tx& t) {
    return os << "{arrived " << t.arrived << ", offered " << t.offered << ", policer passed " << t.passed << " dropped "
              << t.dropped << "}";
  }
  Tx tx_rate(const DiscardSink& sink, std::chrono::milliseconds window) const {
    auto stats = [&] {
      auto s = policer->stats(tap, agent::shifter::NetDirection::guest_out);
      return s.ok() ? *s : policer_stats{};
    };
    const policer_stats s0 = stats();
    const uint64_t a0 = sink.wire_bytes(), o0 = bed().tap_rx_bytes();
    const auto t0 = Clock::now();
    std::this_thread::sleep_for(window);
    const policer_stats s1 = stats();
    const uint64_t a1 = sink.wire_bytes(), o1 = bed().tap_rx_bytes();
    const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    return {double(a1 - a0) / dt, double(o1 - o0) / dt, double(s1.pass_bytes - s0.pass_bytes) / dt,
            double(s1.drop_bytes - s0.drop_bytes) / dt};
  }

  // Seconds from `since` until now_values() equals `want`, polled every 50 ms; nullopt after `timeout`.
  std::optional<double> seconds_until(const Values& want, Clock::time_point since, std::chrono::milliseconds timeout) {
    while (Clock::now() - since < timeout) {
      if (now_values() == want) return std::chrono::duration<double>(Clock::now() - since).count();
      std::this_thread::sleep_for(50ms);
    }
    return std::nullopt;
  }

  std::string uuid, host, host_ip;
  unsigned tap = 0;
  std::unique_ptr<agent::shifter::NetPolicer> policer;
  Values baseline;
  unsigned long long base_shares = 0;
  test::TempDir dir{"agent-restart"};
  controller::ControllerConfig cc;
  std::shared_ptr<test::ShiftRecorder> recorder;
  std::unique_ptr<controller::ControllerServer> server;
  std::unique_ptr<test::ChildProcess> agent;
  int agent_starts = 0;
  uint64_t next_id = uint64_t(msg::now_ns());
  std::atomic<bool> renewing{false};
  std::atomic<Clock::time_point> last_renewal{Clock::time_point{}};
  std::thread renewer;
};

TEST_F(AgentRestartE2e, RenewedLimitsSurviveKillAndRestartAndRevertWhenRenewalsStop) {
  DiscardSink sink(host_ip);
  ASSERT_TRUE(sink.ok()) << "cannot bind udp " << host_ip << ":9";
  ASSERT_TRUE(bed().load("net_tx=4M"));
  ASSERT_NO_FATAL_FAILURE(start_agent("revert"));
  std::this_thread::sleep_for(1s);
  const Tx before = tx_rate(sink, 2000ms);
  const double limit = double(kNetOutKbps) * 1000 / 8;

  const uint64_t id = shift_all();
  ASSERT_NE(id, 0u);
  start_renewing(id);
  ASSERT_EQ(now_values(), shifted());
  std::this_thread::sleep_for(1s);
  const Tx limited_before = tx_rate(sink, 2000ms);

  // kill -9: no chance to clean up. The values stay in force without an agent.
  ASSERT_EQ(agent->stop(SIGKILL), 128 + SIGKILL);
  const auto killed = Clock::now();
  EXPECT_EQ(now_values(), shifted()) << "the agent's death changed what is in force";
  const Tx limited_no_agent = tx_rate(sink, 1000ms);

  // Restart at once: the new agent reloads the leases and reports what it finds to the controller.
  ASSERT_NO_FATAL_FAILURE(start_agent("revert", false));
  std::optional<Received> restated;
  ASSERT_TRUE(test::wait_until([&] { return (restated = recorder->result(id, false, killed)).has_value(); }, 20s))
      << "the restarted agent did not report what is in force\n"
      << agent->log();
  const double restart_s = std::chrono::duration<double>(restated->second - killed).count();
  EXPECT_EQ(restated->first.error, v1::ErrorCode::ok) << restated->first.error_message;
  EXPECT_EQ(restated->first.vm_uuid, uuid);
  EXPECT_TRUE(restated->first.restated) << "a restatement must not read as a new command's answer";
  EXPECT_STREQ(restated->first.phase(), "in_force");
  EXPECT_EQ(setting(restated->first, msg::Resource::cpu), kCpuCap);
  EXPECT_EQ(setting(restated->first, msg::Resource::net_out_kbps), kNetOutKbps);
  EXPECT_EQ(setting(restated->first, msg::Resource::disk_iops), kDiskIops);
  EXPECT_GT(restated->first.lease_expires_ns, msg::now_ns()) << "the reloaded lease has already run out";
  EXPECT_FALSE(recorder->result(id, true).has_value()) << "a lease ran out across the restart\n" << agent->log();
  EXPECT_NE(agent->log().find("after restart (command=" + std::to_string(id)), std::string::npos)
      << "the restarted agent did not log what it reloaded\n"
      << agent->log();

  // (b) Renewals reach the new agent: the limits outlive a whole lease after the restart.
  std::this_thread::sleep_for(kLease + 1s);
  EXPECT_EQ(now_values(), shifted()) << agent->log();
  const Tx limited_after = tx_rate(sink, 2000ms);
  EXPECT_FALSE(recorder->result(id, true).has_value()) << "a renewed lease ran out\n" << agent->log();

  // (c) The controller stops renewing: back at baseline within lease + 1 s, applied by the new agent.
  const auto last = stop_renewing();
  auto back = seconds_until(baseline, last, kLease + 4s);
  ASSERT_TRUE(back.has_value()) << "not back at baseline: " << now_values() << "\n" << agent->log();
  std::optional<Received> reverted;
  ASSERT_TRUE(test::wait_until([&] { return (reverted = recorder->result(id, true)).has_value(); }, 5s))
      << agent->log();
  EXPECT_EQ(reverted->first.error, v1::ErrorCode::ok) << reverted->first.error_message;
  EXPECT_EQ(setting(reverted->first, msg::Resource::net_out_kbps), 0);
  std::this_thread::sleep_for(500ms);
  const Tx unlimited = tx_rate(sink, 2000ms);

  std::cout << "guest tx (wire bytes/s) under a " << limit << " B/s limit:\n  before the shift " << before
            << "\n  before the kill  " << limited_before << "\n  no agent         " << limited_no_agent
            << "\n  after restart    " << limited_after << "\n  after the revert " << unlimited << "\n"
            << "restarted agent reported what is in force " << restart_s << " s after the kill; lease "
            << kLease.count() << " ms, back at baseline " << *back << " s after the last renewal\n";
  ASSERT_GT(before.arrived, 1.5 * limit) << "the guest did not send more than the limit; nothing to police";
  // Limited: what arrives is at most the limit (+10 % for the burst and the window's edges) and the
  // policer drops the rest. There is no tight lower bound: on a loaded host a TCG guest sends in bursts,
  // and a 20 ms bucket passes less than the limit of such traffic (e2e_shifter checks the rate itself).
  for (const Tx* t : {&limited_before, &limited_no_agent, &limited_after}) {
    EXPECT_LT(t->arrived, 1.1 * limit) << *t;
    EXPECT_GT(t->arrived, 0.0) << *t;
    EXPECT_GT(t->dropped, 0.0) << "the policer dropped nothing: " << *t;
  }
  EXPECT_GT(unlimited.arrived, 1.5 * limit) << "the policer still limits after the revert: " << unlimited;
  EXPECT_LE(*back, std::chrono::duration<double>(kLease + 1s).count());
  EXPECT_GE(*back, std::chrono::duration<double>(kLease - 500ms).count()) << "the lease was cut short";
}

TEST_F(AgentRestartE2e, HoldKeepsLimitsAcrossRestartAndAfterTheLeaseRunsOut) {
  const uint64_t id = shifted_and_renewed("hold");
  ASSERT_NE(id, 0u);
  std::this_thread::sleep_for(1s);
  ASSERT_EQ(agent->stop(SIGKILL), 128 + SIGKILL);
  const auto killed = Clock::now();
  ASSERT_NO_FATAL_FAILURE(start_agent("hold", false));
  ASSERT_TRUE(test::wait_until([&] { return recorder->result(id, false, killed).has_value(); }, 20s)) << agent->log();
  const auto last = stop_renewing();
  // The lease runs out; hold keeps every value, and the event is reported with the values kept.
  std::optional<Received> held;
  ASSERT_TRUE(test::wait_until([&] { return (held = recorder->result(id, true)).has_value(); }, kLease + 5s))
      << agent->log();
  const double after_s = std::chrono::duration<double>(held->second - last).count();
  std::cout << "hold: lease event reported " << after_s << " s after the last renewal\n";
  EXPECT_EQ(held->first.error, v1::ErrorCode::ok) << held->first.error_message;
  EXPECT_EQ(setting(held->first, msg::Resource::cpu), kCpuCap);
  EXPECT_EQ(setting(held->first, msg::Resource::net_out_kbps), kNetOutKbps);
  EXPECT_EQ(setting(held->first, msg::Resource::disk_iops), kDiskIops);
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(now_values(), shifted()) << agent->log();
  EXPECT_NE(agent->log().find("hold"), std::string::npos);
}

TEST_F(AgentRestartE2e, ControllerGoneAtRestartRevertsAtTheLeaseDeadlineAndReportsOnReconnect) {
  const uint64_t id = shifted_and_renewed("revert");
  ASSERT_NE(id, 0u);
  std::this_thread::sleep_for(1500ms);
  // The agent dies, and so does the controller, shortly after its last renewal (the agent takes renewals
  // every 100 ms: one that arrives just before the kill is lost with it).
  const auto last = stop_renewing();
  std::this_thread::sleep_for(300ms);
  ASSERT_EQ(agent->stop(SIGKILL), 128 + SIGKILL);
  server->stop();
  server.reset();
  ASSERT_NO_FATAL_FAILURE(start_agent("revert", false));
  auto back = seconds_until(baseline, last, kLease + 5s);
  ASSERT_TRUE(back.has_value()) << "not back at baseline: " << now_values() << "\n" << agent->log();
  std::cout << "controller gone: lease " << kLease.count() << " ms, back at baseline " << *back
            << " s after the last renewal, by an agent started after it\n";
  EXPECT_LE(*back, std::chrono::duration<double>(kLease + 1s).count());
  EXPECT_GE(*back, std::chrono::duration<double>(kLease - 500ms).count()) << "the lease was cut short";
  // A controller comes back: the revert that happened while it was away is reported to it.
  ASSERT_NO_FATAL_FAILURE(start_controller());
  std::optional<Received> reverted;
  ASSERT_TRUE(test::wait_until([&] { return (reverted = recorder->result(id, true)).has_value(); }, 15s))
      << "the revert was not reported on reconnect\n"
      << agent->log();
  EXPECT_EQ(reverted->first.error, v1::ErrorCode::ok) << reverted->first.error_message;
  EXPECT_EQ(reverted->first.vm_uuid, uuid);
  EXPECT_EQ(setting(reverted->first, msg::Resource::cpu), 1000);
  EXPECT_EQ(setting(reverted->first, msg::Resource::net_out_kbps), 0);
  EXPECT_EQ(setting(reverted->first, msg::Resource::disk_iops), 0);
}

}  // namespace
}  // namespace morph
