// The market end to end as real processes: `morph-controller run` with its market, a synthetic agent
// (msg_agent_proc: the `morph-agent run` uplink with synthetic VMs) and morphctl. Accounts are created and
// funded, bids clear over ticks into allocations, the ledger charges exactly price × quantity × tick, the
// agent receives the ShiftCommand (and answers it), events are published, and bad bids are refused with
// their reason and exit status 1. A second test runs the api over tcp with CURVE: a tenant acts only on
// its own account.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <tuple>
#include <zmq.hpp>

#include "api_reply_generated.h"
#include "common/msg/api_client.h"
#include "common/msg/socket.h"
#include "market_event_generated.h"
#include "tests/integration/msg_support.h"
#include "tests/support/files.h"
#include "tests/support/process.h"

namespace morph {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using test::wait_until;

// Each field of `want` (a JSON object) has that value in `got`.
void expect_fields(const json& got, const std::string& want) {
  const json fields = json::parse(want);
  for (auto it = fields.begin(); it != fields.end(); ++it)
    EXPECT_EQ(got.contains(it.key()) ? got.at(it.key()) : json(), it.value()) << it.key() << " in " << got.dump();
}

struct CtlRun {
  int rc;
  std::string out, err;
  json js() const { return json::parse(out, nullptr, false); }
};

class MarketProcesses : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(tmp_.ok()); }
  void TearDown() override {
    agent_.reset();
    ctl_.reset();
    tmp_.keep(HasFailure());
  }
  void start_controller(std::vector<std::string> extra) {
    std::vector<std::string> argv = {MORPH_CONTROLLER, "--log-level",
                                     "debug",          "run",
                                     "--tick",         "200ms",
                                     "--lease",        "2s",
                                     "--set",          "ledger.path=" + dir_ + "/ledger.db",
                                     "--set",          "metrics.listen=127.0.0.1:0",
                                     "--set",          "market.reserve.cpu=2",
                                     "--set",          "dashboard.listen="};
    argv.insert(argv.end(), extra.begin(), extra.end());
    ctl_ = std::make_unique<test::ChildProcess>(argv, dir_ + "/ctl.out");
    ASSERT_TRUE(wait_until([&] { return ctl_->out().find("events ") != std::string::npos; }, 10s)) << ctl_->err();
  }
  // The controller on ipc:// sockets in the test's directory, morphctl pointed at its api.
  void start_ipc_controller() {
    start_controller({"--ipc-dir", dir_ + "/s"});
    prefix_ = {"--connect", bound("api")};
  }
  // The first of the synthetic agent's two VMs, once the controller knows both (10 s at most); empty when not.
  std::string first_of_two_vms() {
    std::string vm;
    wait_until(
        [&] {
          auto r = ctl({"vms", "list", "--json"});
          auto j = r.js();
          if (r.rc != 0 || !j.is_array() || j.size() != 2) return false;
          vm = j[0]["vm"];
          return true;
        },
        10s);
    return vm;
  }
  // A subscriber to the controller's events under `prefix`, connected before anything it is to see.
  zmq::socket_t subscribe(const std::string& prefix) {
    zmq::socket_t sub(zctx_, zmq::socket_type::sub);
    sub.set(zmq::sockopt::subscribe, prefix);
    sub.connect(bound("events"));
    return sub;
  }
  // Every event the subscriber holds: (topic, body) until none arrives for 200 ms.
  static std::vector<std::pair<std::string, zmq::message_t>> drain(zmq::socket_t& sub) {
    std::vector<std::pair<std::string, zmq::message_t>> events;
    sub.set(zmq::sockopt::rcvtimeo, 200);
    for (;;) {
      zmq::message_t t, body;
      if (!sub.recv(t) || !sub.recv(body)) return events;
      events.emplace_back(t.to_string(), std::move(body));
    }
  }
  // The one bid `bids list --vm VM` shows, once there is exactly one (10 s at most); null when there is not.
  json sole_bid_of(const std::string& vm) {
    json bid;
    wait_until(
        [&] {
          auto b = ctl({"bids", "list", "--vm", vm, "--json"}).js();
          if (!b.is_array() || b.size() != 1) return false;
          bid = b[0];
          return true;
        },
        10s);
    return bid;
  }
  std::string bound(const std::string& name) {
    std::istringstream in(ctl_->out());
    std::string k, v;
    while (in >> k >> v)
      if (k == name) return v;
    return {};
  }
  void start_agent(int vms = 2, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{MSG_AGENT_PROC,    "run",
                                  "--host",          "h1",
                                  "--ingest",        bound("ingest"),
                                  "--control",       bound("control"),
                                  "--synthetic-vms", std::to_string(vms),
                                  "--interval",      "200ms",
                                  "--set",           "metrics.listen=",
                                  "--set",           "lease.state_file="};
    argv.insert(argv.end(), extra.begin(), extra.end());
    agent_ = std::make_unique<test::ChildProcess>(argv, dir_ + "/agent.out");
  }
  // The agent started, its two synthetic VMs known to the controller (`vm`: the first), and their owner
  // "demo" created and funded.
  void start_agent_with_funded_owner(std::string& vm) {
    start_agent();
    vm = first_of_two_vms();
    ASSERT_FALSE(vm.empty()) << "the synthetic VMs did not reach the controller";
    ASSERT_EQ(ctl({"accounts", "create", "demo"}).rc, 0);
    ASSERT_EQ(ctl({"accounts", "deposit", "demo", "10000000"}).rc, 0);
  }
  CtlRun ctl(std::vector<std::string> args) {
    std::vector<std::string> argv = {MORPHCTL};
    argv.insert(argv.end(), prefix_.begin(), prefix_.end());
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = test::run_to_end(argv, dir_ + "/morphctl." + std::to_string(++calls_), 15s);
    return {r.rc, r.out, r.err};
  }

  zmq::context_t zctx_;
  test::TempDir tmp_{"mkt"};
  const std::string dir_ = tmp_.str();
  std::vector<std::string> prefix_;
  std::unique_ptr<test::ChildProcess> ctl_, agent_;
  int calls_ = 0;
};

TEST_F(MarketProcesses, BidsClearIntoAllocationsChargesAndShiftCommands) {
  start_ipc_controller();
  zmq::socket_t sub = subscribe("");  // every event, before anything trades
  start_agent();

  // The synthetic VMs (owner "demo") reach the controller.
  const std::string vm = first_of_two_vms();
  ASSERT_FALSE(vm.empty());

  // Accounts: create, refuse a duplicate, fund.
  auto r = ctl({"accounts", "create", "demo", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.js()["balance_ucredits"], 0);
  r = ctl({"accounts", "create", "demo"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("exists"), std::string::npos) << r.err;
  const int64_t deposit = 10'000'000;
  r = ctl({"accounts", "deposit", "demo", std::to_string(deposit), "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.js()["balance_ucredits"], deposit);

  // Bad bids are refused with what is wrong, exit status 1.
  r = ctl({"bids", "submit", "--account", "demo", "--vm", vm, "--quantity", "500", "--max-price", "1"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("below the reserve"), std::string::npos) << r.err;
  r = ctl({"bids", "submit", "--account", "demo", "--vm", "no-such-vm", "--quantity", "500", "--max-price", "10"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("unknown VM no-such-vm"), std::string::npos) << r.err;
  // The ceiling is what the VM can use (the synthetic VMs: 16 vCPUs, 1000 mc baseline).
  r = ctl({"bids", "submit", "--account", "demo", "--vm", vm, "--quantity", "15001", "--max-price", "10"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("exceeds its ceiling: room above baseline is 15000"), std::string::npos) << r.err;
  r = ctl({"bids", "submit", "--account", "ghost", "--vm", vm, "--quantity", "500", "--max-price", "10"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("unknown account ghost"), std::string::npos) << r.err;
  // Usage errors are 2, an unreachable controller 3.
  EXPECT_EQ(ctl({"bids", "submit", "--account", "demo"}).rc, 2);
  EXPECT_EQ(
      ctl({"bids", "submit", "--account", "demo", "--vm", vm, "--quantity", "5", "--max-price", "9", "--tier", "gold"})
          .rc,
      2);
  {
    std::vector<std::string> saved = prefix_;
    prefix_ = {"--connect", "ipc://" + dir_ + "/nowhere/api", "--timeout-ms", "500"};
    r = ctl({"accounts", "list"});
    EXPECT_EQ(r.rc, 3) << r.err;
    EXPECT_NE(r.err.find("cannot reach the controller"), std::string::npos) << r.err;
    prefix_ = saved;
  }

  // A quote before bidding: 500 millicores are available at the reserve.
  r = ctl({"quote", "--vm", vm, "--quantity", "500", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.js()["price_ucredits"], 2);
  EXPECT_EQ(r.js()["available"], 500);

  // A good bid clears: the allocation appears at the uniform price (the reserve, supply being ample).
  r = ctl({"bids", "submit", "--account", "demo", "--vm", vm, "--quantity", "500", "--max-price", "10", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  uint64_t bid = r.js()["bid_id"];
  ASSERT_TRUE(wait_until(
      [&] {
        auto a = ctl({"allocations", "list", "--json"}).js();
        return a.is_array() && a.size() == 1 && a[0]["quantity"] == 500 && a[0]["price_ucredits"] == 2 &&
               a[0]["bid_id"] == bid;
      },
      5s));
  auto bl = ctl({"bids", "list", "--account", "demo", "--json"}).js();
  ASSERT_TRUE(bl.is_array() && bl.size() == 1);
  EXPECT_EQ(bl[0]["filled"], 500);
  EXPECT_EQ(bl[0]["rescue"], false);
  // The agent received the ShiftCommand: baseline 1000 + 500 millicores; its answer came back under the
  // same command id (the synthetic agent has no shifting engine, so it refuses to apply it).
  uint64_t cmd = 0;
  ASSERT_TRUE(wait_until(
      [&] {
        auto s = ctl({"shifts", "list", "--json"}).js();
        if (!s.is_array()) return false;
        for (auto& x : s)
          if (x["phase"] == "sent" && x["vm"] == vm && x["settings"].size() == 1 && x["settings"][0]["value"] == 1500)
            cmd = x["command_id"];
        for (auto& x : s)
          if (cmd && x["command_id"] == cmd && x["phase"] == "failed") return true;
        return false;
      },
      5s));
  std::this_thread::sleep_for(1s);  // a few charged ticks

  // Cancel; the allocation ends and the baseline is sent back.
  r = ctl({"bids", "cancel", std::to_string(bid)});
  ASSERT_EQ(r.rc, 0) << r.err;
  ASSERT_TRUE(wait_until([&] { return ctl({"allocations", "list", "--json"}).js() == json::array(); }, 5s));
  ASSERT_TRUE(wait_until(
      [&] {
        auto s = ctl({"shifts", "list", "--json"}).js();
        for (auto& x : s)
          if (x["phase"] == "sent" && x["vm"] == vm && x["settings"].size() == 1 && x["settings"][0]["value"] == 1000)
            return true;
        return false;
      },
      5s));

  // The ledger: every charge is exactly 500 × 2 µcr × 0.2 s = 200, and the balance fell by exactly their sum.
  auto led = ctl({"ledger", "show", "--account", "demo", "--limit", "1000", "--json"}).js();
  ASSERT_TRUE(led.is_array());
  int charges = 0;
  for (auto& e : led)
    if (e["kind"] == "charge") {
      ++charges;
      EXPECT_EQ(e["amount_ucredits"], -200) << e.dump();
      EXPECT_EQ(e["bid_id"], bid);
    }
  EXPECT_GE(charges, 3);
  auto acct = ctl({"accounts", "get", "demo", "--json"}).js();
  EXPECT_EQ(acct["balance_ucredits"], deposit - 200 * charges);

  // Prices are listed per host, resource and tier.
  auto prices = ctl({"prices", "list", "--host", "h1", "--json"}).js();
  ASSERT_TRUE(prices.is_array());
  EXPECT_EQ(prices.size(), 3u);  // cpu × three tiers

  // Events: prices, allocation changes, bid outcomes and shifts were published under their topics.
  std::set<std::string> topics;
  std::set<std::string> outcomes;
  std::set<std::string> alloc_reasons;  // this bid's allocation changes
  for (auto& [topic, body] : drain(sub)) {
    topics.insert(topic);
    if (!flatbuffers::BufferHasIdentifier(body.data(), v1::MarketEventIdentifier())) continue;
    auto* ev = flatbuffers::GetRoot<v1::MarketEvent>(body.data());
    if (auto* bo = ev->body_as_BidOutcome()) outcomes.insert(bo->outcome()->str());
    if (auto* ac = ev->body_as_AllocationChange(); ac && ac->allocation() && ac->allocation()->bid_id() == bid)
      alloc_reasons.insert(ac->reason() ? ac->reason()->str() : "");
  }
  EXPECT_TRUE(topics.contains("price.h1"));
  EXPECT_TRUE(topics.contains("alloc.h1"));
  EXPECT_TRUE(topics.contains("bid.demo"));
  EXPECT_TRUE(topics.contains("shift.h1"));
  EXPECT_TRUE(outcomes.contains("submitted"));
  EXPECT_TRUE(outcomes.contains("filled"));
  EXPECT_TRUE(outcomes.contains("cancelled"));
  EXPECT_TRUE(alloc_reasons.contains("granted"));
  // The bid was cancelled between ticks: its allocation's end is an event at the next tick.
  EXPECT_TRUE(alloc_reasons.contains("ended"));

  // A policy with rescue on is kept and read back.
  r = ctl({"policy", "set", vm, "--rescue", "on", "--runq-wait-permille", "250", "--max-price", "20", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  auto pol = ctl({"policy", "get", vm, "--json"}).js();
  // Detection and step sizes at their defaults until set.
  expect_fields(pol, R"({"rescue": true, "runq_wait_permille": 250, "account": "demo", "breach_intervals": 3,
                         "recover_intervals": 5, "cpu_step_mc": 500})");
  r = ctl({"policy", "set", vm, "--rescue", "on", "--max-price", "0"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("max price"), std::string::npos) << r.err;

  // Rescue detection and step sizes are set, kept (fields not given keep their value) and read back.
  r = ctl({"policy", "set", vm, "--breach-intervals", "1", "--recover-intervals", "7", "--cpu-step", "300",
           "--disk-iops-step", "150", "--net-kbps-step", "2000", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.js()["breach_intervals"], 1) << r.out;
  pol = ctl({"policy", "get", vm, "--json"}).js();
  expect_fields(pol, R"({"breach_intervals": 1, "recover_intervals": 7, "cpu_step_mc": 300, "disk_iops_step": 150,
                         "net_kbps_step": 2000, "runq_wait_permille": 250})");
  auto text = ctl({"policy", "get", vm});
  EXPECT_NE(text.out.find("BREACH_INTERVALS"), std::string::npos) << text.out;
  // Refusals name the flag and its range; nothing is changed.
  r = ctl({"policy", "set", vm, "--breach-intervals", "0"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("--breach-intervals"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("1 to 100"), std::string::npos) << r.err;
  r = ctl({"policy", "set", vm, "--recover-intervals", "101"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("--recover-intervals"), std::string::npos) << r.err;
  r = ctl({"policy", "set", vm, "--cpu-step", "0"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("--cpu-step"), std::string::npos) << r.err;
  EXPECT_EQ(ctl({"policy", "get", vm, "--json"}).js()["cpu_step_mc"], 300);
  // The controller checks the same ranges itself, for API callers other than morphctl.
  msg::ApiClient api(zctx_, bound("api"), {});
  ASSERT_TRUE(api.connect());
  auto refusal = [&](uint32_t breach, int64_t step) {
    auto m = api.call(v1::ApiRequestBody::PolicySet, [&](flatbuffers::FlatBufferBuilder& b) {
      auto v = b.CreateString(vm);
      v1::PolicySetBuilder pb(b);
      pb.add_vm_uuid(v);
      if (breach) pb.add_breach_intervals(breach);
      if (step) pb.add_net_kbps_step(step);
      return pb.Finish().Union();
    });
    if (!m) return std::string("no reply: ") + m.error().what();
    auto* rep = flatbuffers::GetRoot<v1::ApiReply>(m->data());
    return rep->error() && rep->error()->message() ? rep->error()->message()->str() : std::string("accepted");
  };
  std::string why = refusal(101, 0);
  EXPECT_NE(why.find("breach_intervals 101 out of range (1..100)"), std::string::npos) << why;
  why = refusal(0, -1);
  EXPECT_NE(why.find("net_kbps_step -1 out of range"), std::string::npos) << why;
  EXPECT_EQ(ctl({"policy", "get", vm, "--json"}).js()["net_kbps_step"], 2000);
}

// Rescue with the synthetic agent's KPIs (a run-queue wait share of a few per mille): a threshold of 1 per
// mille breaches, so the controller raises an SLA-tier bid on the owner's behalf, which wins; raising the
// threshold out of reach makes the VM healthy and the rescue is retired after the recovery intervals.
// A host that goes silent (its agent killed) is down after 3 s: it offers nothing, so its allocations end
// and charging stops, while the bid stays and wins again once the host is back.
// Predictive bids on real processes: the synthetic agent's VMs' CPU demand is driven through
// --synthetic-demand (a file the test rewrites) and the controller forecasts at 1 s steps. Under the baseline
// there is no bid; as the demand rises above it a predictive bid appears (listed predictive, not rescue),
// is amended as the forecast moves on up, stays within the hourly budget, and is cancelled when it falls.
TEST_F(MarketProcesses, APredictiveBidFollowsTheForecastUpAndIsCancelledWhenItFalls) {
  start_controller({"--ipc-dir", dir_ + "/s", "--set", "forecast.step=1s", "--set", "forecast.min_steps=3"});
  prefix_ = {"--connect", bound("api")};
  const std::string demand = dir_ + "/demand";
  auto set_demand = [&](int mc) { std::ofstream(demand) << mc << "\n"; };
  set_demand(400);
  start_agent(2, {"--synthetic-demand", demand});
  const std::string vm = first_of_two_vms();
  ASSERT_FALSE(vm.empty()) << "the synthetic VMs did not reach the controller";
  ASSERT_EQ(ctl({"accounts", "create", "demo"}).rc, 0);
  ASSERT_EQ(ctl({"accounts", "deposit", "demo", "1000000000"}).rc, 0);
  // 2500 mc an hour at max price 20: the budget caps the bid at 2500 mc.
  const int64_t budget = 20LL * 3600 * 2500;
  auto r = ctl({"policy", "set", vm, "--predictive", "on", "--horizon", "3s", "--quantile", "0.9", "--max-price", "20",
                "--budget-per-hour", std::to_string(budget), "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  auto pol = r.js();
  EXPECT_EQ(pol["predictive"], true);
  EXPECT_EQ(pol["predictive_horizon_s"], 3);
  EXPECT_EQ(pol["predictive_quantile"], 0.9);
  auto predictive_bids = [&] {
    json out = json::array();
    for (auto& b : ctl({"bids", "list", "--vm", vm, "--json"}).js())
      if (b["predictive"] == true && b["state"] == "active") out.push_back(b);
    return out;
  };
  // Under the 1000 mc baseline: enough history soon, and no bid needed.
  ASSERT_TRUE(wait_until(
      [&] {
        return ctl({"policy", "get", vm, "--json"})
                   .js()["predictive_status"]
                   .get<std::string>()
                   .find("no bid needed") == 0;
      },
      20s))
      << ctl({"policy", "get", vm, "--json"}).out;
  EXPECT_TRUE(predictive_bids().empty());
  // A rise to 2000 mc: a bid for the forecast above the baseline.
  set_demand(2000);
  json bid;
  ASSERT_TRUE(wait_until(
      [&] {
        auto b = predictive_bids();
        if (b.size() != 1) return false;
        bid = b[0];
        return true;
      },
      20s))
      << ctl({"policy", "get", vm, "--json"}).out;
  EXPECT_EQ(bid["rescue"], false);
  EXPECT_EQ(bid["tier"], "improve");
  EXPECT_EQ(bid["account"], "demo");
  const uint64_t id = bid["bid_id"];
  const int64_t first = bid["quantity"];
  EXPECT_GT(first, 0);
  EXPECT_EQ(ctl({"policy", "get", vm, "--json"}).js()["predictive_bid_id"], id);
  // On up to 3200 mc: the same bid amended upwards, never past the budget.
  set_demand(3200);
  ASSERT_TRUE(wait_until(
      [&] {
        auto b = predictive_bids();
        if (b.size() != 1 || b[0]["bid_id"] != id) return false;
        bid = b[0];
        return bid["quantity"].get<int64_t>() > first;
      },
      20s))
      << ctl({"bids", "list", "--vm", vm, "--json"}).out;
  EXPECT_LE(bid["quantity"].get<int64_t>() * 20 * 3600, budget);
  // The quote's cost advice sees the same forecast.
  auto q = ctl({"quote", "--vm", vm, "--quantity", "100", "--json"}).js();
  EXPECT_EQ(q["forecast"]["ready"], true) << q.dump();
  EXPECT_GT(q["forecast"]["increment_mc"].get<int64_t>(), 0) << q.dump();
  EXPECT_GT(q["forecast"]["cost_per_hour_ucredits"].get<int64_t>(), 0) << q.dump();
  // The demand falls to 300 mc: the bid is cancelled once the p90 is under the baseline again (tens of steps
  // after a high level: docs/market.md, "Predictive bids", Limits).
  set_demand(300);
  ASSERT_TRUE(wait_until([&] { return predictive_bids().empty(); }, 120s)) << ctl({"policy", "get", vm, "--json"}).out;
  EXPECT_EQ(ctl({"policy", "get", vm, "--json"}).js()["predictive_bid_id"], 0);
  // Bad values are refused naming the flag (by morphctl: exit 2) or the field (by the controller: exit 1).
  struct Bad {
    const char *flag, *value;
    int rc;
    const char* named;
  };
  for (const Bad& bad : {Bad{"--quantile", "1.5", 2, "--quantile"},
                         Bad{"--horizon", "2h", 1, "predictive_horizon_s 7200 out of range (1..12"},
                         Bad{"--horizon", "soon", 2, "--horizon: 'soon' is not a duration"}}) {
    r = ctl({"policy", "set", vm, bad.flag, bad.value});
    EXPECT_EQ(r.rc, bad.rc) << bad.flag << " " << bad.value;
    EXPECT_NE(r.err.find(bad.named), std::string::npos) << r.err;
  }
}

TEST_F(MarketProcesses, DownHostOffersNothingUntilItIsBack) {
  start_ipc_controller();
  std::string vm;
  ASSERT_NO_FATAL_FAILURE(start_agent_with_funded_owner(vm));
  auto r = ctl({"bids", "submit", "--account", "demo", "--vm", vm, "--quantity", "500", "--max-price", "10", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const uint64_t bid = r.js()["bid_id"];
  auto allocated = [&] {
    auto a = ctl({"allocations", "list", "--json"}).js();
    return a.is_array() && a.size() == 1 && a[0]["bid_id"] == bid;
  };
  ASSERT_TRUE(wait_until(allocated, 5s));
  auto charges = [&] {
    int n = 0;
    for (auto& e : ctl({"ledger", "show", "--account", "demo", "--limit", "1000", "--json"}).js())
      n += e["kind"] == "charge";
    return n;
  };

  agent_->stop(SIGKILL);
  ASSERT_TRUE(wait_until(
      [&] {
        return ctl({"allocations", "list", "--json"}).js() == json::array();
      },
      10s))
      << "the allocation of a down host did not end";
  const int charged = charges();
  EXPECT_GT(charged, 0);
  std::this_thread::sleep_for(1s);  // five more ticks
  EXPECT_EQ(charges(), charged) << "ticks charged an allocation on a down host";
  auto bl = ctl({"bids", "list", "--account", "demo", "--json"}).js();
  ASSERT_TRUE(bl.is_array() && bl.size() == 1) << bl.dump();
  EXPECT_EQ(bl[0]["state"], "active");
  EXPECT_NE(ctl_->err().find("host=h1 market: down"), std::string::npos);

  start_agent();
  ASSERT_TRUE(wait_until(allocated, 10s)) << "the bid did not win again once the host was back";
  EXPECT_GT(charges(), charged);
}

// A VM its host stops reporting (the agent restarted with one VM fewer) can have nothing applied: its
// allocation ends and is no longer charged, the other VM's goes on, and its bid wins again once it is back.
TEST_F(MarketProcesses, GoneVmsBidsSitOutUntilItIsBack) {
  start_ipc_controller();
  start_agent(2);
  auto vms = [&] {
    std::set<std::string> out;
    auto j = ctl({"vms", "list", "--json"}).js();
    if (j.is_array())
      for (auto& v : j) out.insert(v["vm"].get<std::string>());
    return out;
  };
  std::set<std::string> both;
  ASSERT_TRUE(wait_until([&] { return (both = vms()).size() == 2; }, 10s));
  ASSERT_EQ(ctl({"accounts", "create", "demo"}).rc, 0);
  ASSERT_EQ(ctl({"accounts", "deposit", "demo", "10000000"}).rc, 0);
  std::map<std::string, uint64_t> bid_of;
  for (auto& vm : both) {
    auto r =
        ctl({"bids", "submit", "--account", "demo", "--vm", vm, "--quantity", "500", "--max-price", "10", "--json"});
    ASSERT_EQ(r.rc, 0) << r.err;
    bid_of[vm] = r.js()["bid_id"];
  }
  auto allocated = [&] {
    std::set<uint64_t> out;
    auto a = ctl({"allocations", "list", "--json"}).js();
    if (a.is_array())
      for (auto& x : a) out.insert(x["bid_id"].get<uint64_t>());
    return out;
  };
  ASSERT_TRUE(wait_until([&] { return allocated().size() == 2; }, 5s));

  agent_->stop(SIGTERM);
  start_agent(1);
  std::set<std::string> one;
  ASSERT_TRUE(wait_until([&] { return (one = vms()).size() == 1; }, 10s));
  std::string gone;
  for (auto& vm : both)
    if (!one.contains(vm)) gone = vm;
  ASSERT_FALSE(gone.empty());
  const uint64_t kept = bid_of[*one.begin()];
  ASSERT_TRUE(wait_until([&] { return allocated() == std::set<uint64_t>{kept}; }, 5s))
      << "the gone VM's allocation did not end";
  auto charges_of = [&](uint64_t bid) {
    int n = 0;
    for (auto& e : ctl({"ledger", "show", "--account", "demo", "--limit", "1000", "--json"}).js())
      n += e["kind"] == "charge" && e["bid_id"] == bid;
    return n;
  };
  const int charged = charges_of(bid_of[gone]), kept_charged = charges_of(kept);
  std::this_thread::sleep_for(1s);  // five more ticks
  EXPECT_EQ(charges_of(bid_of[gone]), charged) << "ticks charged the allocation of a VM that is gone";
  EXPECT_GT(charges_of(kept), kept_charged);
  EXPECT_EQ(ctl({"bids", "list", "--account", "demo", "--json"}).js().size(), 2u);

  agent_->stop(SIGTERM);
  start_agent(2);
  ASSERT_TRUE(wait_until([&] { return allocated().size() == 2; }, 10s)) << "the VM's bid did not win again";
}

TEST_F(MarketProcesses, RescueRaisesAnSlaBidAndRetiresItOnRecovery) {
  start_ipc_controller();
  zmq::socket_t sub = subscribe("bid.");
  std::string vm;
  ASSERT_NO_FATAL_FAILURE(start_agent_with_funded_owner(vm));
  auto r = ctl({"policy", "set", vm, "--rescue", "on", "--runq-wait-permille", "1", "--max-price", "20"});
  ASSERT_EQ(r.rc, 0) << r.err;

  json rescue = sole_bid_of(vm);
  ASSERT_FALSE(rescue.is_null()) << "no rescue bid raised";
  expect_fields(rescue, R"({"rescue": true, "tier": "sla", "account": "demo", "max_price_ucredits": 20})");
  uint64_t bid = rescue["bid_id"];
  EXPECT_EQ(ctl({"policy", "get", vm, "--json"}).js()["rescue_bid_id"], bid);
  // It wins: an allocation for the rescue bid, charged in the ledger.
  ASSERT_TRUE(wait_until(
      [&] {
        auto a = ctl({"allocations", "list", "--vm", vm, "--json"}).js();
        return a.is_array() && a.size() == 1 && a[0]["bid_id"] == bid && a[0]["quantity"] == rescue["quantity"];
      },
      5s));
  ASSERT_TRUE(wait_until(
      [&] {
        for (auto& e : ctl({"ledger", "show", "--account", "demo", "--json"}).js())
          if (e["kind"] == "charge" && e["bid_id"] == bid) return true;
        return false;
      },
      5s));

  // Recovery: nothing is over the threshold any more; the rescue is retired and the allocation ends.
  ASSERT_EQ(ctl({"policy", "set", vm, "--runq-wait-permille", "1000"}).rc, 0);
  ASSERT_TRUE(wait_until([&] { return ctl({"bids", "list", "--vm", vm, "--json"}).js() == json::array(); }, 10s));
  ASSERT_TRUE(wait_until([&] { return ctl({"allocations", "list", "--vm", vm, "--json"}).js() == json::array(); }, 5s));
  EXPECT_EQ(ctl({"policy", "get", vm, "--json"}).js()["rescue_bid_id"], 0);

  std::set<std::string> outcomes;
  for (auto& [topic, body] : drain(sub)) {
    auto* ev = flatbuffers::GetRoot<v1::MarketEvent>(body.data());
    if (auto* bo = ev->body_as_BidOutcome(); bo && bo->bid()->bid_id() == bid) {
      outcomes.insert(bo->outcome()->str());
      if (bo->outcome()->str() == "rescue_raised") {
        EXPECT_TRUE(bo->bid()->rescue());
        EXPECT_NE(bo->reason()->str().find("wait"), std::string::npos) << bo->reason()->str();
      }
    }
  }
  EXPECT_TRUE(outcomes.contains("rescue_raised"));
  EXPECT_TRUE(outcomes.contains("filled"));
  EXPECT_TRUE(outcomes.contains("rescue_retired"));
}

// What an operator set survives `kill -9` of the controller: accounts with their details, an admin owner
// override, per-VM policies, bids with their expiry, the rescue bid in force (still known as a rescue, and
// retired on recovery by the restarted controller), the ledger history (`ledger show` is served from the
// SQLite ledger, with its kind filter and paging) and the price history behind `quote`.
TEST_F(MarketProcesses, OperatorStateAndLedgerSurviveKill9) {
  start_ipc_controller();
  start_agent();
  std::string vm1, vm2;
  auto two_vms = [&] {
    auto j = ctl({"vms", "list", "--json"}).js();
    if (!j.is_array() || j.size() != 2) return false;
    vm1 = j[0]["vm"];
    vm2 = j[1]["vm"];
    return true;
  };
  ASSERT_TRUE(wait_until(two_vms, 10s));
  ASSERT_EQ(ctl({"accounts", "create", "demo", "--display-name", "Demo Ltd"}).rc, 0);
  ASSERT_EQ(ctl({"accounts", "create", "other"}).rc, 0);
  ASSERT_EQ(ctl({"accounts", "deposit", "demo", "10000000", "--reference", "po-1"}).rc, 0);
  ASSERT_EQ(ctl({"accounts", "deposit", "other", "10000000"}).rc, 0);
  // vm2 belongs to "other" by an admin override; it bids with an expiry an hour away.
  auto r = ctl({"vms", "set-owner", vm2, "other"});
  ASSERT_EQ(r.rc, 0) << r.err;
  // `vms list` shows the owner in force, and the metadata's beside it (issue #19: it showed the metadata's).
  for (auto& v : ctl({"vms", "list", "--json"}).js())
    if (v["vm"] == vm2) {
      EXPECT_EQ(v["owner"], "other") << v.dump();
      EXPECT_NE(v["metadata_owner"], "other") << v.dump();
    }
  r = ctl({"bids", "submit", "--account", "other", "--vm", vm2, "--quantity", "300", "--max-price", "7", "--expires-in",
           "1h", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const uint64_t other_bid = r.js()["bid_id"];
  const uint64_t expires_ns = r.js()["expires_ns"];
  // vm1: a rescue policy that breaches at once (the synthetic KPIs wait a few per mille), with a budget.
  r = ctl({"policy",   "set",
           vm1,        "--rescue",
           "on",       "--runq-wait-permille",
           "1",        "--blk-p99-us",
           "0",        "--max-price",
           "20",       "--budget-per-hour",
           "90000000", "--breach-intervals",
           "2",        "--recover-intervals",
           "4",        "--cpu-step",
           "400",      "--disk-iops-step",
           "250",      "--net-kbps-step",
           "3000"});
  ASSERT_EQ(r.rc, 0) << r.err;
  json rescue = sole_bid_of(vm1);
  ASSERT_FALSE(rescue.is_null()) << "no rescue bid raised";
  ASSERT_EQ(rescue["rescue"], true);
  const uint64_t rescue_bid = rescue["bid_id"];
  // Both bids are charged for a few ticks.
  ASSERT_TRUE(wait_until(
      [&] {
        std::set<uint64_t> charged;
        for (auto& e : ctl({"ledger", "show", "--kind", "charge", "--limit", "1000", "--json"}).js())
          charged.insert(e["bid_id"].get<uint64_t>());
        return charged.contains(rescue_bid) && charged.contains(other_bid);
      },
      10s));
  std::this_thread::sleep_for(600ms);
  auto quote_before = ctl({"quote", "--vm", vm2, "--quantity", "1", "--history", "5", "--json"}).js();
  ASSERT_TRUE(quote_before["history"].is_array() && !quote_before["history"].empty()) << quote_before.dump();

  ctl_->stop(SIGKILL);
  EXPECT_EQ(ctl({"--timeout-ms", "300", "ledger", "show", "--json"}).rc, 3);  // the controller is gone
  // Restart on the same ledger and sockets; the agent reconnects and says hello again.
  start_ipc_controller();
  ASSERT_TRUE(wait_until(two_vms, 15s));

  auto acct = ctl({"accounts", "get", "demo", "--json"}).js();
  EXPECT_EQ(acct["display_name"], "Demo Ltd");
  auto pol = ctl({"policy", "get", vm1, "--json"}).js();
  expect_fields(pol, R"({"rescue": true, "runq_wait_permille": 1, "blk_p99_us": 0, "max_price_ucredits": 20,
                         "budget_ucredits_per_hour": 90000000, "breach_intervals": 2, "recover_intervals": 4,
                         "cpu_step_mc": 400, "disk_iops_step": 250, "net_kbps_step": 3000, "account": "demo"})");
  EXPECT_EQ(pol["rescue_bid_id"], rescue_bid);
  EXPECT_EQ(ctl({"policy", "get", vm2, "--json"}).js()["account"], "other");  // the override
  auto ob = ctl({"bids", "list", "--account", "other", "--json"}).js();
  ASSERT_TRUE(ob.is_array() && ob.size() == 1) << ob.dump();
  EXPECT_EQ(ob[0]["bid_id"], other_bid);
  // Expiry counts ticks: the restart adds at most the downtime plus a tick or two.
  const int64_t drift_ms =
      (static_cast<int64_t>(ob[0]["expires_ns"].get<uint64_t>()) - static_cast<int64_t>(expires_ns)) / 1'000'000;
  EXPECT_GT(drift_ms, -2'000) << drift_ms;
  EXPECT_LT(drift_ms, 30'000) << drift_ms;
  auto rb = ctl({"bids", "list", "--vm", vm1, "--json"}).js();
  ASSERT_TRUE(rb.is_array() && rb.size() == 1) << rb.dump();
  EXPECT_EQ(rb[0]["bid_id"], rescue_bid);
  EXPECT_EQ(rb[0]["rescue"], true);  // still known as the controller's rescue, not raised a second time

  // The ledger history from before the kill is served, from SQLite.
  auto led = ctl({"ledger", "show", "--limit", "10000", "--json"}).js();
  ASSERT_TRUE(led.is_array());
  bool po = false;
  uint64_t last_id = 0;
  for (auto& e : led) {
    if (e["kind"] == "deposit" && e["reason"] == "po-1" && e["account"] == "demo") po = true;
    EXPECT_GT(e["entry_id"].get<uint64_t>(), last_id);
    last_id = e["entry_id"];
  }
  EXPECT_TRUE(po);
  auto charges = ctl({"ledger", "show", "--account", "other", "--kind", "charge", "--limit", "10000", "--json"}).js();
  ASSERT_TRUE(charges.is_array() && !charges.empty());
  for (auto& e : charges) {
    EXPECT_EQ(e["account"], "other");
    EXPECT_EQ(e["kind"], "charge");
    EXPECT_EQ(e["bid_id"], other_bid);
  }
  // Paging: two at a time with the cursor morphctl prints, back to the oldest charge, each entry once.
  std::vector<uint64_t> paged;
  std::string before;
  for (int page = 0; page < 1000; ++page) {
    std::vector<std::string> args = {"ledger", "show",    "--account", "other", "--kind",
                                     "charge", "--limit", "2",         "--json"};
    if (!before.empty()) args.insert(args.end(), {"--before", before});
    r = ctl(args);
    ASSERT_EQ(r.rc, 0) << r.err;
    auto rows = r.js();
    for (auto it = rows.rbegin(); it != rows.rend(); ++it) paged.push_back((*it)["entry_id"]);
    auto at = r.err.find("--before ");
    if (at == std::string::npos) break;
    before = r.err.substr(at + 9, r.err.find('\n', at) - at - 9);
  }
  ASSERT_GE(paged.size(), charges.size());
  std::set<uint64_t> unique(paged.begin(), paged.end());
  EXPECT_EQ(unique.size(), paged.size());
  EXPECT_EQ(paged.back(), charges[0]["entry_id"]);  // the oldest charge ends the walk
  EXPECT_EQ(ctl({"ledger", "show", "--kind", "refund"}).rc, 2);
  // Price history for quote was reloaded: the ticks from before the kill are in it.
  auto q = ctl({"quote", "--vm", vm2, "--quantity", "1", "--history", "300", "--json"}).js();
  ASSERT_TRUE(q["history"].is_array());
  bool old_tick = false;
  for (auto& h : q["history"])
    if (h["tick"] == quote_before["history"].back()["tick"]) old_tick = true;
  EXPECT_TRUE(old_tick) << q.dump();
  // The balance is exactly deposits minus every charge in the ledger.
  int64_t sum = 0;
  for (auto& e : ctl({"ledger", "show", "--account", "demo", "--limit", "10000", "--json"}).js())
    sum += e["amount_ucredits"].get<int64_t>();
  EXPECT_LE(ctl({"accounts", "get", "demo", "--json"}).js()["balance_ucredits"].get<int64_t>(),
            sum);  // later ticks only lower it
  EXPECT_GT(sum, 0);

  // Recovery retires the restored rescue.
  ASSERT_EQ(ctl({"policy", "set", vm1, "--runq-wait-permille", "1000"}).rc, 0);
  ASSERT_TRUE(wait_until([&] { return ctl({"bids", "list", "--vm", vm1, "--json"}).js() == json::array(); }, 10s));
  EXPECT_EQ(ctl({"policy", "get", vm1, "--json"}).js()["rescue_bid_id"], 0);
}

TEST_F(MarketProcesses, TenantOverCurveActsOnlyOnItsAccount) {
  test::KeySet keys;
  start_controller({"--ingest", "ipc://" + dir_ + "/s/ingest", "--control", "ipc://" + dir_ + "/s/control", "--events",
                    "ipc://" + dir_ + "/s/events", "--api", "tcp://127.0.0.1:0", "--key", keys.path("controller.key"),
                    "--allow", keys.path("allow")});
  std::string api = bound("api");
  ASSERT_EQ(api.rfind("tcp://", 0), 0u) << api;
  prefix_ = {"--connect", api, "--key", keys.path("ops.key"), "--server-key", keys.path("controller.pub")};
  ASSERT_EQ(ctl({"accounts", "create", "acct-1"}).rc, 0);
  ASSERT_EQ(ctl({"accounts", "create", "other"}).rc, 0);
  ASSERT_EQ(ctl({"accounts", "deposit", "acct-1", "100", "--reference", "t1"}).rc, 0);
  ASSERT_EQ(ctl({"accounts", "deposit", "other", "100", "--reference", "t2"}).rc, 0);

  prefix_ = {"--connect", api, "--key", keys.path("tenant1.key"), "--server-key", keys.path("controller.pub")};
  auto r = ctl({"accounts", "get", "acct-1", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.js()["account"], "acct-1");
  r = ctl({"accounts", "get", "other"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("may not act on account other"), std::string::npos) << r.err;
  r = ctl({"accounts", "deposit", "acct-1", "100"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("admins only"), std::string::npos) << r.err;
  auto list = ctl({"accounts", "list", "--json"}).js();
  ASSERT_TRUE(list.is_array());
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["account"], "acct-1");
  // The ledger: a tenant sees only its own entries, whatever it asks for.
  auto led = ctl({"ledger", "show", "--json"});
  ASSERT_EQ(led.rc, 0) << led.err;
  ASSERT_TRUE(led.js().is_array());
  ASSERT_EQ(led.js().size(), 1u) << led.out;
  EXPECT_EQ(led.js()[0]["account"], "acct-1");
  EXPECT_EQ(led.js()[0]["reason"], "t1");
  r = ctl({"ledger", "show", "--account", "other"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("may not act on account other"), std::string::npos) << r.err;
  // tcp without keys is a usage error, not a silent plaintext connection.
  prefix_ = {"--connect", api};
  EXPECT_EQ(ctl({"accounts", "list"}).rc, 2);
  // A key the controller refuses is a refused connection (exit 4, naming why), not an unreachable
  // controller (issue #19): a key not on the allow-list, an agent's key on the api, a wrong server key.
  for (auto [key, server, why] : {std::tuple{"stranger.key", "controller.pub", "not on its allow-list"},
                                  {"host-a.key", "controller.pub", "its role may not use the api"},
                                  {"tenant1.key", "stranger.pub", "server key"}}) {
    prefix_ = {"--connect", api, "--key", keys.path(key), "--server-key", keys.path(server)};
    r = ctl({"accounts", "list"});
    EXPECT_EQ(r.rc, 4) << key << " " << r.err;
    EXPECT_NE(r.err.find("refused the connection"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(why), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("cannot reach"), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace morph
