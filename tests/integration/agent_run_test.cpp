// `morph-agent run` as a process, without VMs: the configuration (--config, --set, typed flags) is
// checked at start and a wrong key is refused by name; with --synthetic-vms it connects to an in-process
// controller over ipc, publishes KPIs and serves /metrics with the uplink's state.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "controller/api/controller_server.h"
#include "tests/support/daemons.h"
#include "tests/support/files.h"
#include "tests/support/http.h"
#include "tests/support/in_process_controller.h"
#include "tests/support/process.h"
#include "tests/support/requirements.h"
#include "tests/support/wait.h"

namespace morph {
namespace {

using namespace std::chrono_literals;

class AgentRun : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(access(agent_bin.c_str(), X_OK), 0) << agent_bin << " is not built";
    ASSERT_TRUE(dir.ok());
  }
  std::string path(const std::string& f) const { return (dir / f).string(); }
  void write(const std::string& f, const std::string& text) const { std::ofstream(dir / f) << text; }
  // `morph-agent` with these arguments; killed (-9) if the test leaves it running.
  std::unique_ptr<test::ChildProcess> agent(const std::vector<std::string>& args, const std::string& out) const {
    std::vector<std::string> argv = {agent_bin};
    argv.insert(argv.end(), args.begin(), args.end());
    return std::make_unique<test::ChildProcess>(argv, path(out), test::ChildOptions{.stop_signal = SIGKILL});
  }

  const std::string agent_bin = test::program("hostagent/morph-agent");
  test::TempDir dir{"agent-run"};
};

TEST_F(AgentRun, UnknownKeyInConfigIsRefusedByName) {
  write("bad.toml", "[agent]\ninterval = \"1s\"\nhots_id = \"h1\"\n");
  auto p = agent({"run", "--config", path("bad.toml"), "--synthetic-vms", "1"}, "bad.out");
  EXPECT_EQ(p->wait_exit(10s), 2);
  const std::string log = p->log();
  EXPECT_NE(log.find("agent.hots_id"), std::string::npos) << log;
  EXPECT_NE(log.find("bad.toml:3"), std::string::npos) << log;
}

TEST_F(AgentRun, OutOfRangeSetAndTypedFlagAreRefusedByName) {
  auto a = agent({"run", "--set", "lease.on_expiry=forget", "--synthetic-vms", "1"}, "a.out");
  EXPECT_EQ(a->wait_exit(10s), 2);
  EXPECT_NE(a->log().find("lease.on_expiry"), std::string::npos) << a->log();
  auto b = agent({"run", "--interval", "10ms", "--synthetic-vms", "1"}, "b.out");
  EXPECT_EQ(b->wait_exit(10s), 2);
  EXPECT_NE(b->log().find("--interval"), std::string::npos) << b->log();
}

TEST_F(AgentRun, StartsFromConfigPublishesAndServesMetrics) {
  const std::string run = path("run");  // created 0700 by the controller
  controller::ControllerConfig cc;
  cc.endpoints = test::ipc_endpoints(run);
  controller::ControllerServer server(cc);
  ASSERT_TRUE(server.start());
  write("agent.toml", "[agent]\nhost_id = \"host-run\"\ninterval = \"200ms\"\n[endpoints]\ningest = \"" +
                          cc.endpoints.ingest + "\"\ncontrol = \"" + cc.endpoints.control +
                          "\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n[lease]\nstate_file = \"" + path("leases.json") +
                          "\"\n");
  auto a =
      agent({"run", "--config", path("agent.toml"), "--set", "log.level=debug", "--synthetic-vms", "2"}, "agent.out");
  std::optional<uint16_t> port;
  ASSERT_TRUE(
      test::wait_until([&] { return (port = test::printed_metrics_port(a->log())).has_value() || !a->alive(); }, 10s));
  ASSERT_TRUE(port) << a->log();
  EXPECT_TRUE(test::wait_until([&] { return server.stats().hellos >= 1 && server.stats().kpi_reports >= 3; }, 10s))
      << a->log();
  std::optional<test::HttpReply> m;
  ASSERT_TRUE(test::wait_until(
      [&] {
        m = test::http_get(*port, "/metrics");
        return m && test::metric_value(m->body, "morph_agent_uplink_controller_up") == 1.0;
      },
      10s))
      << (m ? m->body : "no reply");
  EXPECT_EQ(m->status, 200);
  auto sent = test::metric_value(m->body, R"(morph_agent_uplink_messages_total{kind="kpi_report_sent"})");
  ASSERT_TRUE(sent);
  EXPECT_GE(*sent, 3.0);
  EXPECT_GE(test::metric_value(m->body, R"(morph_agent_uplink_messages_total{kind="hello_sent"})").value_or(0), 1.0);
  EXPECT_NE(a->log().find("host-run"), std::string::npos);
  EXPECT_EQ(a->stop(SIGTERM), 0) << a->log();
  server.stop();
}

// The real runtime without libvirt VMs: this test process's own cgroup measured as a VM by the BPF probes
// (--vm), shifts refused (no such domain) but the KPI gauges exported per VM.
TEST_F(AgentRun, StaticVmIsMeasuredByTheProbesAndExported) {
  MORPH_REQUIRE_ROOT();
  MORPH_REQUIRE_BPF();
  std::string cg = test::slurp("/proc/self/cgroup");
  auto at = cg.find("0::");
  ASSERT_NE(at, std::string::npos) << "no cgroup v2 entry in /proc/self/cgroup";
  cg = cg.substr(at + 3, cg.find('\n', at) - at - 3);
  auto a = agent({"run", "--host", "host-static", "--ingest", "ipc://" + path("none-ingest"), "--control",
                  "ipc://" + path("none-control"), "--interval", "200ms", "--metrics-listen", "127.0.0.1:0",
                  "--lease-state-file", "", "--vm", "selftest:" + cg},
                 "static.out");
  std::optional<uint16_t> port;
  ASSERT_TRUE(
      test::wait_until([&] { return (port = test::printed_metrics_port(a->log())).has_value() || !a->alive(); }, 15s));
  ASSERT_TRUE(port) << a->log();
  std::optional<test::HttpReply> m;
  // This process spins a little so its cgroup has CPU time to report.
  EXPECT_TRUE(test::wait_until(
      [&] {
        volatile uint64_t x = 0;
        for (int i = 0; i < 2'000'000; ++i) x = x + uint64_t(i);
        m = test::http_get(*port, "/metrics");
        return m && test::metric_value(m->body, R"(morph_agent_vm_cpu_run_ratio{vm="selftest"})").value_or(0) > 0;
      },
      10s))
      << (m ? m->body : "no reply") << a->log();
  EXPECT_EQ(test::metric_value(m->body, "morph_agent_vms"), 1.0);
  EXPECT_EQ(a->stop(SIGTERM), 0) << a->log();
}

}  // namespace
}  // namespace morph
