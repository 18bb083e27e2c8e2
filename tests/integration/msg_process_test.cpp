// The daemons as real processes over loopback tcp with CURVE: kill -9 and restart the controller, and
// separately an agent; the other side must reconnect within 3 s and the state converge (HostHello
// re-sent, snapshot holding the host and its VMs). Also runs scripts/events-subscriber.py against a live
// controller, as a third party would.
#include <gtest/gtest.h>

#include "common/msg/api_client.h"
#include "common/msg/wire.h"
#include "tests/integration/msg_support.h"
#include "tests/support/files.h"
#include "tests/support/process.h"
#include "tests/support/requirements.h"

namespace morph {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using test::wait_until;

using test::slurp;

// The daemons here are killed (-9) when a test ends: nothing they do on a clean exit is under test.
std::unique_ptr<test::ChildProcess> start(const std::vector<std::string>& argv, const std::string& out) {
  return std::make_unique<test::ChildProcess>(argv, out, test::ChildOptions{.stop_signal = SIGKILL});
}

struct HostView {
  bool known = false, up = false;
  uint64_t incarnation = 0, kpi_seq = 0;
  uint32_t vms = 0;
};

class MsgProcess : public ::testing::Test {
 protected:
  void SetUp() override {
    for (auto* p : {&ingest, &control, &api_ep, &events}) *p = "tcp://127.0.0.1:" + std::to_string(test::free_port());
    controller_bin = test::binary_dir() + "/controller/morph-controller";
    agent_bin = test::binary_dir() + "/tests/integration/msg_agent_proc";
    for (auto& b : {controller_bin, agent_bin})
      if (access(b.c_str(), X_OK) != 0) GTEST_FAIL() << b << " is not built";
  }

  std::unique_ptr<test::ChildProcess> start_controller() {
    auto p = start({controller_bin, "run", "--key", keys.path("controller.key"), "--allow", keys.path("allow"),
                    "--ingest", ingest, "--control", control, "--api", api_ep, "--events", events, "--no-market",
                    "--metrics-listen", "", "--dashboard-listen", ""},
                   keys.path("controller.out"));
    // Ready when it has printed its bound endpoints.
    EXPECT_TRUE(wait_until([&] { return slurp(keys.path("controller.out")).find("events ") != std::string::npos; }, 5s))
        << slurp(keys.path("controller.out.err"));
    return p;
  }
  std::unique_ptr<test::ChildProcess> start_agent() {
    return start({agent_bin, "run", "--host", "host-a", "--ingest", ingest, "--control", control, "--key",
                  keys.path("host-a.key"), "--server-key", keys.path("controller.pub"), "--interval-ms", "200",
                  "--synthetic-vms", "3"},
                 keys.path("agent.out"));
  }

  HostView view(const std::string& host) {
    HostView v;
    msg::ApiClient c(ctx, api_ep, keys.as(keys.admin));
    if (!c.connect()) return v;
    auto r = c.call(
        v1::ApiRequestBody::HostsQuery, [](auto& f) { return v1::CreateHostsQuery(f).Union(); }, 300ms);
    if (!r) return v;
    auto rep = msg::decode_api_reply(msg::bytes_of(*r));
    if (!rep || (*rep)->body_type() != v1::ApiReplyBody::HostsReply) return v;
    for (auto* h : *(*rep)->body_as_HostsReply()->hosts())
      if (msg::sv(h->host()) == host) v = {true, h->up(), h->incarnation(), h->kpi_seq(), h->vm_count()};
    return v;
  }
  bool converged(uint64_t not_incarnation = 0) {
    auto v = view("host-a");
    return v.up && v.vms == 3 && v.kpi_seq > 0 && v.incarnation != not_incarnation;
  }

  test::KeySet keys;
  zmq::context_t ctx{1};
  std::string ingest, control, api_ep, events, controller_bin, agent_bin;
};

TEST_F(MsgProcess, ControllerKilledAndRestartedConvergesWithin3s) {
  auto ctl = start_controller();
  auto agent = start_agent();
  ASSERT_TRUE(wait_until([&] { return converged(); }, 8s)) << slurp(keys.path("agent.out.err"));

  // An integration following the Clone pattern: subscribed to everything, snapshot on a new incarnation.
  auto sub = msg::make_socket(ctx, zmq::socket_type::sub);
  sub.set(zmq::sockopt::subscribe, "");
  ASSERT_TRUE(msg::connect_endpoint(sub, events, keys.as(keys.tenant)));
  std::vector<zmq::message_t> parts;
  uint64_t first_incarnation = 0;
  ASSERT_TRUE(wait_until(
      [&] {
        while (msg::recv_parts(sub, parts))
          if (auto e = msg::decode_market_event(msg::bytes_of(parts[1]))) first_incarnation = (*e)->incarnation();
        return first_incarnation != 0;
      },
      5s));

  ctl->kill9();
  ctl = start_controller();
  auto restarted = Clock::now();
  ASSERT_TRUE(wait_until([&] { return converged(); }, 10s));
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - restarted);
  std::printf("controller restart: host-a back with 3 VMs and KPIs after %lld ms\n",
              static_cast<long long>(took.count()));
  EXPECT_LT(took, 3000ms);

  // The subscriber reconnected by itself, sees the new incarnation, and resyncs from a snapshot.
  uint64_t new_incarnation = 0;
  ASSERT_TRUE(wait_until(
      [&] {
        while (msg::recv_parts(sub, parts))
          if (auto e = msg::decode_market_event(msg::bytes_of(parts[1])); e && (*e)->incarnation() != first_incarnation)
            new_incarnation = (*e)->incarnation();
        return new_incarnation != 0;
      },
      5s));
  msg::ApiClient api(ctx, api_ep, keys.as(keys.tenant));
  ASSERT_TRUE(api.connect());
  auto snap =
      api.call(v1::ApiRequestBody::SnapshotRequest, [](auto& f) { return v1::CreateSnapshotRequest(f).Union(); });
  ASSERT_TRUE(snap) << snap.error().describe();
  auto s = (*msg::decode_api_reply(msg::bytes_of(*snap)))->body_as_SnapshotReply();
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->controller_incarnation(), new_incarnation);
  ASSERT_EQ(s->hosts()->size(), 1u);
  EXPECT_TRUE(s->hosts()->Get(0)->up());
  EXPECT_EQ(s->vms()->size(), 3u);
  ASSERT_EQ(s->kpis()->size(), 1u);
  EXPECT_EQ(s->kpis()->Get(0)->vms()->size(), 3u);
}

TEST_F(MsgProcess, AgentKilledIsDownAfter3sAndRestartedConvergesWithin3s) {
  auto ctl = start_controller();
  auto agent = start_agent();
  ASSERT_TRUE(wait_until([&] { return converged(); }, 8s)) << slurp(keys.path("agent.out.err"));
  uint64_t old_incarnation = view("host-a").incarnation;

  agent->kill9();
  auto killed = Clock::now();
  ASSERT_TRUE(wait_until(
      [&] {
        auto v = view("host-a");
        return v.known && !v.up;
      },
      6s));
  auto down_after = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed);
  std::printf("agent kill: host-a marked down after %lld ms\n", static_cast<long long>(down_after.count()));
  EXPECT_GE(down_after, 2500ms) << "a peer is down only after 3 s of silence";

  agent = start_agent();
  auto restarted = Clock::now();
  ASSERT_TRUE(wait_until([&] { return converged(old_incarnation); }, 10s));
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - restarted);
  std::printf("agent restart: host-a up with its new incarnation after %lld ms\n",
              static_cast<long long>(took.count()));
  EXPECT_LT(took, 3000ms);
}

TEST_F(MsgProcess, EventsSubscriberScriptPrintsDecodedEvents) {
  auto ctl = start_controller();
  auto agent = start_agent();
  ASSERT_TRUE(wait_until([&] { return converged(); }, 8s));
  std::string out = keys.path("subscriber.out");
  auto py = test::run_to_end(
      {"/usr/bin/python3", test::source_dir() + "/scripts/events-subscriber.py", "--endpoint", events, "--api", api_ep,
       "--server-key", keys.path("controller.pub"), "--key", keys.path("tenant1.key"), "--topic", "kpi.", "--count",
       "2", "--timeout", "10", "--python-dir", test::binary_dir() + "/python"},
      out, 20s);
  const std::string& text = py.out;
  EXPECT_EQ(py.rc, 0) << text << py.err;
  EXPECT_NE(text.find("topic=kpi.host-a type=KpiUpdate host=host-a"), std::string::npos) << text;
  EXPECT_NE(text.find("vms=3"), std::string::npos) << text;
}

}  // namespace
}  // namespace morph
