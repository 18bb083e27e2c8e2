// Logs can be searched by bid and by VM (docs/operations.md "Logs"): a real controller (log level info, the
// default) and a real agent with synthetic VMs (debug, which adds every shift command received) on ipc://
// sockets; a bid goes through its whole life (submitted, won, shift sent, charged, cancelled, allocation
// ended) and the test then greps their real stderr, exactly as an operator would with grep 'bid=<id>' and
// grep 'vm=<uuid>'.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <regex>

#include "tests/support/daemons.h"
#include "tests/support/files.h"
#include "tests/support/wait.h"

namespace morph {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// The lines of `log` that carry the field exactly (bid=4 does not match bid=42).
std::vector<std::string> grep_field(const std::string& log, const std::string& field) {
  std::vector<std::string> out;
  std::regex re("(^|[ (])" + field + "([ :;,)]|$)");
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);)
    if (std::regex_search(line, re)) out.push_back(line);
  return out;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string s;
  for (auto& l : lines) s += l + "\n";
  return s;
}

size_t count_with(const std::vector<std::string>& lines, const std::string& what) {
  size_t n = 0;
  for (auto& l : lines) n += l.find(what) != std::string::npos;
  return n;
}

using LogSearch = test::OnControllerAndAgent;

TEST_F(LogSearch, ABidsWholeStoryAndAVmsLinesAreFoundByTheirFields) {
  ASSERT_NO_FATAL_FAILURE(env.start("info", 2));
  // The agent at debug: restart it so (only) its level differs.
  env.agent.reset();
  env.agent =
      std::make_unique<test::ChildProcess>(test::synthetic_agent_argv(env.ipc, 2, "debug"), env.dir / "agent.out");
  std::string vm, other_vm;
  ASSERT_TRUE(test::wait_until(
      [&] {
        auto j = js(env.morphctl({"vms", "list", "--json"}));
        if (!j.is_array() || j.size() != 2) return false;
        vm = j[0]["vm"];
        other_vm = j[1]["vm"];
        return true;
      },
      15s))
      << env.agent->err();
  ASSERT_EQ(env.morphctl({"accounts", "create", "demo"}).rc, 0);
  ASSERT_EQ(env.morphctl({"accounts", "deposit", "demo", "100000000"}).rc, 0);
  // One bid that wins, and one that fails every tick (with the winner's 2000 more than the host's 16000
  // millicores can supply, all or nothing, at a lower price), so the
  // failure path is logged too.
  auto r = env.morphctl(
      {"bids", "submit", "--account", "demo", "--vm", vm, "--quantity", "2000", "--max-price", "10", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  uint64_t bid = js(r)["bid_id"];
  r = env.morphctl(
      {"bids", "submit", "--account", "demo", "--vm", other_vm, "--quantity", "15000", "--max-price", "3", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  uint64_t losing = js(r)["bid_id"];
  ASSERT_TRUE(test::wait_until(
      [&] {
        auto a = js(env.morphctl({"allocations", "list", "--json"}));
        return a.is_array() && a.size() == 1 && a[0]["bid_id"] == bid;
      },
      15s))
      << env.controller->err();
  // Charged for a few ticks (the ledger has one charge per tick); the shift command reaches the agent.
  size_t charges = 0;
  ASSERT_TRUE(test::wait_until(
      [&] {
        charges = 0;
        for (auto& e : js(env.morphctl({"ledger", "show", "--account", "demo", "--limit", "1000", "--json"})))
          charges += e["kind"] == "charge" && e["bid_id"] == bid;
        return charges >= 5;
      },
      20s))
      << charges << " charges";
  const std::string agent_err = (env.dir / "agent.out.err").string();
  ASSERT_TRUE(test::wait_until(
      [&] { return test::slurp(agent_err).find("vm=" + vm + " shift command") != std::string::npos; }, 10s));
  ASSERT_EQ(env.morphctl({"bids", "cancel", std::to_string(bid)}).rc, 0);
  ASSERT_EQ(env.morphctl({"bids", "cancel", std::to_string(losing)}).rc, 0);
  ASSERT_TRUE(test::wait_until(
      [&] {
        return js(env.morphctl({"allocations", "list", "--json"})) == json::array();
      },
      10s));
  // The next tick ends the allocation and sends the VM back to its baseline; the agent receives that command.
  const std::string ctl_err = (env.dir / "controller.out.err").string();
  auto lines_with = [](const std::string& text, const std::string& a, const std::string& b) {
    size_t n = 0;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) n += l.find(a) != std::string::npos && l.find(b) != std::string::npos;
    return n;
  };
  ASSERT_TRUE(test::wait_until(
      [&] {
        auto c = test::slurp(ctl_err);
        return c.find("bid=" + std::to_string(bid) + " vm=" + vm + " account=demo allocation ended") !=
                   std::string::npos &&
               lines_with(test::slurp(agent_err), "vm=" + vm + " shift command", "received") >= 2;
      },
      15s))
      << test::slurp(agent_err);
  env.stop();  // SIGTERM: both flush their logs
  std::string ctl_log = test::slurp(env.dir / "controller.out.err");
  std::string agent_log = test::slurp(env.dir / "agent.out.err");

  // grep 'bid=<id>' in the controller's log: the bid's whole story, in order.
  auto story = grep_field(ctl_log, "bid=" + std::to_string(bid));
  std::printf("grep 'bid=%llu' controller.log:\n%s", static_cast<unsigned long long>(bid), joined(story).c_str());
  const char* steps[] = {"submitted", "filled", "shift command", "charged", "cancelled", "allocation ended"};
  size_t at = 0;
  for (auto* step : steps) {
    size_t found = story.size();
    for (size_t i = at; i < story.size(); ++i)
      if (story[i].find(step) != std::string::npos) {
        found = i;
        break;
      }
    EXPECT_LT(found, story.size()) << "no '" << step << "' line (after the previous step) for bid " << bid << " in:\n"
                                   << joined(story);
    if (found < story.size()) at = found;
  }
  for (auto& line : story) {
    EXPECT_NE(line.find("vm=" + vm), std::string::npos) << "a bid line without its VM: " << line;
    EXPECT_EQ(line.find(" debug "), std::string::npos) << "the controller runs at info: " << line;
  }
  // Charged every tick, but logged at info only when the allocation starts or changes (its price may move
  // once the losing bid sets it), not per tick.
  EXPECT_LT(count_with(story, "charged"), charges) << joined(story);
  EXPECT_LE(count_with(story, "charged"), 3u) << joined(story);

  // The losing bid: submitted and failed (once, although it failed every tick), then cancelled.
  auto lost = grep_field(ctl_log, "bid=" + std::to_string(losing));
  EXPECT_EQ(count_with(lost, "submitted"), 1u) << "one line per step:\n" << joined(lost);
  // It failed at every tick of its life (over a second of 200 ms ticks), but a failure is logged at info once per
  // reason (the reason names the market price, which may move once while the winner's allocation settles).
  EXPECT_GE(count_with(lost, "failed"), 1u) << joined(lost);
  EXPECT_LE(count_with(lost, "failed"), 2u) << "a failure repeated every tick is logged once at info:\n"
                                            << joined(lost);
  EXPECT_EQ(count_with(lost, "cancelled"), 1u) << joined(lost);
  EXPECT_EQ(count_with(lost, "charged"), 0u) << joined(lost);

  // grep 'vm=<uuid>': the controller's lines about the VM (its bid, the shift commands sent and their results)
  // and the agent's (each command received), with the same command ids on both sides.
  auto ctl_vm = grep_field(ctl_log, "vm=" + vm);
  auto agent_vm = grep_field(agent_log, "vm=" + vm);
  std::printf("grep 'vm=%s' controller.log:\n%s", vm.c_str(), joined(ctl_vm).c_str());
  std::printf("grep 'vm=%s' agent.log:\n%s", vm.c_str(), joined(agent_vm).c_str());
  EXPECT_GE(count_with(ctl_vm, "bid=" + std::to_string(bid)), 5u) << joined(ctl_vm);
  std::regex sent_re("shift command ([0-9]+) sent");
  std::vector<std::string> commands;
  for (auto& l : ctl_vm) {
    std::smatch m;
    if (std::regex_search(l, m, sent_re)) commands.push_back(m[1]);
  }
  ASSERT_GE(commands.size(), 2u) << "the increment and the return to baseline:\n" << joined(ctl_vm);
  for (auto& c : commands)
    EXPECT_EQ(count_with(agent_vm, "shift command " + c + " received"), 1u)
        << "the agent's log has no line for command " << c << " of vm=" << vm << ":\n"
        << joined(agent_vm);
  // And nothing about the other VM leaks into this VM's lines.
  for (auto& l : ctl_vm) EXPECT_EQ(l.find(other_vm), std::string::npos) << l;
}

}  // namespace
}  // namespace morph
