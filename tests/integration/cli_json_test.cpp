// morphctl against a real controller (and a synthetic-VM agent) on ipc:// sockets: every command, as
// enumerated by morphctl itself (`morphctl commands --json`, which walks its CLI11 tree), must be known here
// as a read or a write command; every read command run with --json must print JSON of the expected shape
// (top-level array or object, with its fields); every command's --help must show an example. A command added
// to morphctl without --json or an example, or without an entry below, fails this test. Also: exit codes and
// errors that name what was wrong (1 refused, 2 usage, 3 unreachable).
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "tests/support/daemons.h"
#include "tests/support/wait.h"

namespace morph {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// Commands that change something. They take --json too (they print what they changed), but are run here only
// as the scenario needs them.
const std::set<std::string> kWriteCommands = {"keys gen",    "vms set-owner", "accounts create", "accounts deposit",
                                              "bids submit", "bids amend",    "bids cancel",     "policy set"};

struct ReadCommand {
  std::vector<std::string> args;    // after the command path ({vm}, {ipc} are substituted)
  bool array = true;                // top-level JSON array (else an object)
  std::vector<std::string> fields;  // every element (or the object) has these
};

const std::map<std::string, ReadCommand> kReadCommands = {
    {"hosts list", {{}, true, {"host", "up", "vms", "capacity"}}},
    {"vms list", {{}, true, {"host", "vm", "name", "owner", "baseline"}}},
    {"kpis show", {{}, true, {"host", "vm", "name", "cpu_run_ms", "cpu_wait_ms", "runq_wait_permille"}}},
    {"accounts get", {{"demo"}, false, {"account", "balance_ucredits", "reserved_ucredits"}}},
    {"accounts list", {{}, true, {"account", "balance_ucredits"}}},
    {"bids list",
     {{}, true, {"bid_id", "account", "vm", "resource", "tier", "state", "filled", "rescue", "predictive"}}},
    {"prices list", {{}, true, {"host", "resource", "tier", "price_ucredits", "supply", "allocated"}}},
    {"allocations list", {{}, true, {"host", "vm", "account", "bid_id", "resource", "quantity", "price_ucredits"}}},
    {"ledger show", {{"--account", "demo"}, true, {"tick", "account", "kind", "amount_ucredits", "bid_id"}}},
    {"shifts list", {{}, true, {"host", "command_id", "vm", "phase", "settings"}}},
    {"policy get",
     {{"{vm}"},
      false,
      {"vm", "rescue", "runq_wait_permille", "max_price_ucredits", "predictive", "predictive_horizon_s",
       "predictive_quantile", "predictive_bid_id", "predictive_status"}}},
    {"quote",
     {{"--vm", "{vm}", "--quantity", "100"},
      false,
      {"host", "resource", "tier", "available", "price_ucredits", "history", "forecast"}}},
    {"top",
     {{"--ipc-dir", "{ipc}", "--count", "1"}, false, {"hosts", "vms", "allocations", "prices", "shifts", "bids"}}},
    {"commands", {{}, true, {"command", "json", "example"}}},
};

std::vector<std::string> split(const std::string& path) {
  std::vector<std::string> out;
  std::istringstream in(path);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

using CliJson = test::OnControllerAndAgent;

TEST_F(CliJson, EveryReadCommandPrintsJsonAndEveryCommandShowsAnExample) {
  ASSERT_NO_FATAL_FAILURE(env.start("info", 2));
  // Data for every list: the synthetic VMs (owner "demo"), an account, a bid that wins, a policy.
  std::string vm;
  ASSERT_TRUE(test::wait_until(
      [&] {
        auto j = js(env.morphctl({"vms", "list", "--json"}));
        if (!j.is_array() || j.size() != 2) return false;
        vm = j[0]["vm"];
        return true;
      },
      15s))
      << env.agent->err();
  auto r = env.morphctl({"accounts", "create", "demo", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(js(r)["account"], "demo");
  r = env.morphctl({"accounts", "deposit", "demo", "100000000", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(js(r)["balance_ucredits"], 100000000);
  EXPECT_EQ(js(r)["replayed"], false);
  // A retry under the deposit's idempotency key is answered from the first deposit, credited once.
  r = env.morphctl({"accounts", "deposit", "demo", "5", "--idempotency-key", "invoice-7", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(js(r)["replayed"], false);
  const auto entry = js(r)["deposit_entry_id"];
  r = env.morphctl({"accounts", "deposit", "demo", "5", "--idempotency-key", "invoice-7", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(js(r)["replayed"], true);
  EXPECT_EQ(js(r)["deposit_entry_id"], entry);
  EXPECT_EQ(js(r)["balance_ucredits"], 100000005);
  r = env.morphctl({"accounts", "deposit", "demo", "6", "--idempotency-key", "invoice-7"});
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.err.find("deposit of 5"), std::string::npos) << r.err;
  r = env.morphctl(
      {"bids", "submit", "--account", "demo", "--vm", vm, "--quantity", "500", "--max-price", "10", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(js(r).contains("bid_id")) << r.out;
  r = env.morphctl({"policy", "set", vm, "--rescue", "off", "--runq-wait-permille", "300", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(js(r)["runq_wait_permille"], 300);
  ASSERT_TRUE(test::wait_until(
      [&] {
        auto a = js(env.morphctl({"allocations", "list", "--json"}));
        auto s = js(env.morphctl({"shifts", "list", "--json"}));
        return a.is_array() && !a.empty() && s.is_array() && !s.empty();
      },
      15s))
      << "the bid did not win: " << env.controller->err();

  // The command tree, from morphctl itself.
  r = env.morphctl({"commands", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  auto commands = js(r);
  ASSERT_TRUE(commands.is_array() && commands.size() >= kReadCommands.size() + kWriteCommands.size()) << r.out;
  std::set<std::string> seen;
  for (auto& c : commands) {
    std::string path = c["command"];
    seen.insert(path);
    SCOPED_TRACE("morphctl " + path);
    bool read = kReadCommands.contains(path), write = kWriteCommands.contains(path);
    ASSERT_TRUE(read || write) << "morphctl " << path
                               << " is new: add it to kReadCommands (with its arguments and JSON shape) or "
                                  "kWriteCommands in tests/integration/cli_json_test.cpp";
    EXPECT_TRUE(c["json"].get<bool>()) << "morphctl " << path << " has no --json";

    // --help: exit 0 and an example of this very command.
    auto argv = split(path);
    argv.push_back("--help");
    auto h = env.morphctl(argv);
    EXPECT_EQ(h.rc, 0) << h.err;
    EXPECT_NE(h.out.find("Example"), std::string::npos) << "no example in --help:\n" << h.out;
    EXPECT_NE(h.out.find("  morphctl " + path), std::string::npos) << "the example does not show the command:\n"
                                                                   << h.out;
    EXPECT_EQ(c["example"].get<std::string>().rfind("morphctl " + path, 0), 0u) << c.dump();

    if (!read) continue;
    // Run it with --json; the output parses and has the expected shape.
    auto& rc = kReadCommands.at(path);
    argv = split(path);
    for (auto a : rc.args) argv.push_back(a == "{vm}" ? vm : a == "{ipc}" ? env.ipc.string() : a);
    argv.push_back("--json");
    auto out = env.morphctl(argv);
    ASSERT_EQ(out.rc, 0) << out.err;
    auto j = js(out);
    ASSERT_FALSE(j.is_discarded()) << "not JSON:\n" << out.out;
    if (rc.array) {
      ASSERT_TRUE(j.is_array()) << out.out;
      ASSERT_FALSE(j.empty()) << "nothing to check the fields of:\n" << out.out;
      for (auto& e : j)
        for (auto& f : rc.fields) EXPECT_TRUE(e.contains(f)) << "field " << f << " missing in " << e.dump();
    } else {
      ASSERT_TRUE(j.is_object()) << out.out;
      for (auto& f : rc.fields)
        EXPECT_TRUE(j.contains(f)) << "field " << f << " missing in " << j.dump().substr(0, 400);
    }
  }
  // Every command this test knows still exists (a renamed command must be renamed here too).
  for (auto& [path, rc] : kReadCommands) EXPECT_TRUE(seen.contains(path)) << "morphctl " << path << " is gone";
  for (auto& path : kWriteCommands) EXPECT_TRUE(seen.contains(path)) << "morphctl " << path << " is gone";
  // The groups' --help lists examples too.
  auto h = env.morphctl({"bids", "--help"});
  EXPECT_NE(h.out.find("  morphctl bids submit"), std::string::npos) << h.out;
}

TEST_F(CliJson, ExitCodesAndErrorsNameWhatWasWrong) {
  ASSERT_NO_FATAL_FAILURE(env.start("info", 1));
  // 1: the controller refused, and says what.
  auto r = env.morphctl({"accounts", "get", "no-such-account", "--json"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("no-such-account"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << "nothing on stdout for a refusal: " << r.out;
  // 2: usage, naming the missing or bad option.
  r = env.morphctl({"bids", "submit", "--account", "demo", "--quantity", "5", "--max-price", "9"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE((r.out + r.err).find("--vm"), std::string::npos) << r.out << r.err;
  r = env.morphctl({"quote", "--vm", "x", "--quantity", "5", "--tier", "gold", "--json"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("--tier gold"), std::string::npos) << r.err;
  r = env.morphctl({"no-such-command"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE((r.out + r.err).find("no-such-command"), std::string::npos) << r.out << r.err;
  // 3: unreachable, naming the endpoint.
  std::string nowhere = "ipc://" + (env.dir / "nowhere").string();
  r = test::run_to_end({test::program("controller/cli/morphctl"), "--connect", nowhere, "--timeout-ms", "300", "hosts",
                        "list", "--json"},
                       env.dir / "unreachable.out");
  EXPECT_EQ(r.rc, 3);
  EXPECT_NE(r.err.find(nowhere), std::string::npos) << r.err;
}

}  // namespace
}  // namespace morph
