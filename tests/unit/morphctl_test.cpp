// morphctl's logic without a controller or a socket: argument checks that must fail before anything is
// sent (exit 2, naming the flag), the command tree (every command registered once, in order, with --json
// and an example), the table and JSON printing, and the reply records as they are printed (built with the
// generated FlatBuffers API). integration_cli_json runs the same commands against a real controller.
#include "controller/cli/morphctl.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>

#include "controller/cli/command.h"
#include "controller/cli/records.h"

namespace morph::cli {
namespace {

struct Run {
  int rc;
  std::string out, err;
};

Run morphctl(std::vector<std::string> args) {
  args.insert(args.begin(), "morphctl");
  std::vector<const char*> argv;
  for (auto& a : args) argv.push_back(a.c_str());
  std::ostringstream out, err;
  int rc = run_morphctl(static_cast<int>(argv.size()), argv.data(), out, err);
  return {rc, out.str(), err.str()};
}

// Nothing listens here: a command that reached the network would fail with 3, not 2.
const std::string kNowhere = "ipc:///nonexistent-morph-test/api";

TEST(Morphctl, BadArgumentsAreUsageErrorsNamingTheFlagBeforeAnythingIsSent) {
  struct Case {
    std::vector<std::string> args;
    std::string named;
  };
  const Case cases[] = {
      {{"quote", "--vm", "x", "--quantity", "5", "--tier", "gold"}, "--tier gold: unknown tier"},
      {{"quote", "--vm", "x", "--quantity", "5", "--resource", "gpu"},
       "--resource gpu: not a resource the market sells (cpu, memory, disk_iops, disk_bps, net_out_kbps, "
       "net_in_kbps, storage_tier)"},
      {{"quote", "--quantity", "5"}, "quote needs --vm or --host"},
      {{"bids", "submit", "--account", "a", "--vm", "v", "--quantity", "5", "--max-price", "9", "--resource", "gpu"},
       "--resource gpu"},
      {{"bids", "submit", "--account", "a", "--vm", "v", "--quantity", "5", "--max-price", "9", "--expires-in", "10x"},
       "--expires-in: '10x' is not a duration"},
      {{"bids", "submit", "--account", "a", "--quantity", "5", "--max-price", "9"}, "--vm"},
      {{"accounts", "deposit", "acme", "0"}, "amount"},
      {{"ledger", "show", "--limit", "0"}, "--limit"},
      {{"ledger", "show", "--kind", "refund"}, "--kind"},
      {{"policy", "set", "vm", "--breach-intervals", "0"}, "--breach-intervals"},
      {{"policy", "set", "vm", "--rescue", "maybe"}, "--rescue"},
      {{"policy", "set", "vm", "--predictive", "maybe"}, "--predictive"},
      {{"policy", "set", "vm", "--quantile", "1.5"}, "--quantile"},
      {{"policy", "set", "vm", "--horizon", "soon"}, "--horizon: 'soon' is not a duration"},
      {{"policy", "set", "vm", "--horizon", "0s"}, "--horizon 0s: must be from 1s to 24h"},
      {{"no-such-command"}, "unknown command 'no-such-command'"},
      {{"bids"}, "subcommand"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"--connect", kNowhere};
    args.insert(args.end(), c.args.begin(), c.args.end());
    auto r = morphctl(args);
    SCOPED_TRACE(c.args.front() + (c.args.size() > 1 ? " " + c.args[1] : ""));
    EXPECT_EQ(r.rc, kUsage) << r.out << r.err;
    EXPECT_NE((r.out + r.err).find(c.named), std::string::npos) << r.out << r.err;
    EXPECT_TRUE(r.out.empty() || r.out.find("Usage") != std::string::npos) << "not a usage text: " << r.out;
  }
}

TEST(Morphctl, KeysAreCheckedBeforeConnecting) {
  auto r = morphctl({"--connect", "tcp://127.0.0.1:1", "hosts", "list"});
  EXPECT_EQ(r.rc, kUsage);
  EXPECT_NE(r.err.find("morphctl: --connect tcp://127.0.0.1:1 is tcp: give --key and --server-key"), std::string::npos)
      << r.err;
  r = morphctl({"--connect", "tcp://127.0.0.1:1", "--key", "/nonexistent/me.key", "--server-key", "/nonexistent/c.pub",
                "hosts", "list"});
  EXPECT_EQ(r.rc, kUsage);
  EXPECT_NE(r.err.find("morphctl: --key: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("/nonexistent/me.key"), std::string::npos) << r.err;
}

TEST(Morphctl, UnreachableControllerIsExitThreeNamingTheEndpoint) {
  auto r = morphctl({"--connect", kNowhere, "--timeout-ms", "100", "hosts", "list", "--json"});
  EXPECT_EQ(r.rc, kUnreachable);
  EXPECT_NE(r.err.find(kNowhere), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST(Morphctl, EveryCommandOnceInOrderWithJsonAndAnExample) {
  auto r = morphctl({"commands", "--json"});
  ASSERT_EQ(r.rc, kOk) << r.err;
  auto rows = nlohmann::json::parse(r.out);
  std::vector<std::string> paths;
  for (auto& row : rows) {
    std::string path = row["command"];
    paths.push_back(path);
    EXPECT_TRUE(row["json"].get<bool>()) << path;
    EXPECT_EQ(row["example"].get<std::string>().rfind("morphctl " + path, 0), 0u) << row.dump();
    EXPECT_FALSE(row["description"].get<std::string>().empty()) << path;
  }
  const std::vector<std::string> expected = {"keys gen",      "hosts list",    "vms list",
                                             "vms set-owner", "kpis show",     "accounts create",
                                             "accounts get",  "accounts list", "accounts deposit",
                                             "bids submit",   "bids amend",    "bids cancel",
                                             "bids list",     "prices list",   "allocations list",
                                             "ledger show",   "shifts list",   "policy get",
                                             "policy set",    "quote",         "top",
                                             "commands"};
  EXPECT_EQ(paths, expected);
  // The plain listing is the same paths, one a line.
  r = morphctl({"commands"});
  std::string lines;
  for (auto& p : expected) lines += p + "\n";
  EXPECT_EQ(r.out, lines);
}

TEST(Morphctl, HelpShowsTheCommandsExamplesAndANounsShowsItsVerbs) {
  auto r = morphctl({"bids", "submit", "--help"});
  EXPECT_EQ(r.rc, kOk);
  EXPECT_NE(r.out.find("Example:\n  morphctl bids submit --account acme"), std::string::npos) << r.out;
  r = morphctl({"bids", "--help"});
  EXPECT_EQ(r.rc, kOk);
  for (const char* verb : {"submit", "amend", "cancel", "list"})
    EXPECT_NE(r.out.find(std::string("  morphctl bids ") + verb), std::string::npos) << verb << "\n" << r.out;
  r = morphctl({"--help"});
  EXPECT_EQ(r.rc, kOk);
  EXPECT_NE(r.out.find("Exit codes: 0 ok, 1 the controller refused"), std::string::npos) << r.out;
}

TEST(Morphctl, KeysGenWritesAPairLocally) {
  const std::string dir = ::testing::TempDir() + "morphctl_keys_" + std::to_string(getpid());
  auto r = morphctl({"--connect", kNowhere, "keys", "gen", "--out", dir, "--name", "host-a", "--json"});
  ASSERT_EQ(r.rc, kOk) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["name"], "host-a");
  EXPECT_EQ(j["public_key"].get<std::string>().size(), 40u);
  EXPECT_EQ(j["secret_key_file"], dir + "/host-a.key");
  EXPECT_TRUE(std::filesystem::exists(dir + "/host-a.pub"));
  // A second time refuses to overwrite (exit 1, naming the file).
  r = morphctl({"keys", "gen", "--out", dir, "--name", "host-a"});
  EXPECT_EQ(r.rc, kRefused);
  EXPECT_NE(r.err.find("host-a"), std::string::npos) << r.err;
  std::filesystem::remove_all(dir);
}

TEST(MorphctlPrint, TableAlignsColumnsUnderUpperCaseHeaders) {
  std::ostringstream out;
  print(json::array({{{"host", "a"}, {"vms", 12}, {"up", true}}, {{"host", "host-b"}, {"vms", 3}, {"up", false}}}),
        false, out);
  EXPECT_EQ(out.str(),
            "HOST    VMS  UP\n"
            "a       12   true\n"
            "host-b  3    false\n");
  out.str("");
  print(json::array(), false, out);
  EXPECT_EQ(out.str(), "(none)\n");
  out.str("");
  print(json{{"account", "acme"}, {"balance_ucredits", 5}}, false, out);  // one object: one row
  EXPECT_EQ(out.str(), "ACCOUNT  BALANCE_UCREDITS\nacme     5\n");
  out.str("");
  print(json{{"b", 1}, {"a", 2}}, true, out);  // JSON keeps the record's field order
  EXPECT_EQ(out.str(), "{\n  \"b\": 1,\n  \"a\": 2\n}\n");
}

TEST(MorphctlArgs, ResourceAndTierWords) {
  EXPECT_EQ(resource_arg("disk_iops"), v1::Resource::disk_iops);
  for (const char* not_sold : {"vcpu_pin", "cpu_shares", "migrate", "gpu"}) {
    try {
      resource_arg(not_sold);
      ADD_FAILURE() << not_sold << " taken";
    } catch (const CommandError& e) {
      EXPECT_EQ(e.code, kUsage);
      EXPECT_EQ(e.message.rfind(std::string("--resource ") + not_sold + ": not a resource the market sells", 0), 0u)
          << e.message;
    }
  }
  EXPECT_EQ(tier_arg("sla"), v1::BidTier::sla_critical);
  EXPECT_EQ(tier_arg("improvement"), v1::BidTier::improvement);
  EXPECT_STREQ(tier_word(v1::BidTier::speculative), "speculative");
  try {
    tier_arg("gold");
    FAIL() << "no error";
  } catch (const CommandError& e) {
    EXPECT_EQ(e.code, kUsage);
    EXPECT_EQ(e.message, "--tier gold: unknown tier (sla, improve, speculative)");
  }
}

// Builds one record with the generated API and returns it from a finished buffer.
template <class T, class Build>
const T* record(flatbuffers::FlatBufferBuilder& fbb, Build build) {
  fbb.Finish(build(fbb));
  return flatbuffers::GetRoot<T>(fbb.GetBufferPointer());
}

TEST(MorphctlRecords, BidAsPrintedWithTierWordAndFieldOrder) {
  flatbuffers::FlatBufferBuilder fbb;
  auto* b = record<v1::BidInfo>(fbb, [](auto& f) {
    return v1::CreateBidInfoDirect(f, 17, "acme", "uuid-1", v1::Resource::cpu, 500, 100, 20, v1::BidTier::sla_critical,
                                   v1::BidState::active, 0, 0, 300, false, "host-a", true);
  });
  json j = bid_json(*b);
  EXPECT_EQ(j["bid_id"], 17);
  EXPECT_EQ(j["vm"], "uuid-1");
  EXPECT_EQ(j["resource"], "cpu");
  EXPECT_EQ(j["tier"], "sla");
  EXPECT_EQ(j["state"], "active");
  EXPECT_EQ(j["filled"], 300);
  EXPECT_EQ(j["host"], "host-a");
  EXPECT_EQ(j["predictive"], true);
  std::vector<std::string> keys;
  for (auto& [k, v] : j.items()) keys.push_back(k);
  EXPECT_EQ(keys,
            (std::vector<std::string>{"bid_id", "account", "vm", "host", "resource", "tier", "quantity", "min_quantity",
                                      "max_price_ucredits", "state", "filled", "rescue", "predictive", "expires_ns"}));
}

TEST(MorphctlRecords, KpiRowInMillisecondsAndPermille) {
  flatbuffers::FlatBufferBuilder fbb;
  auto* k = record<v1::VmKpi>(fbb, [](auto& f) {
    return v1::CreateVmKpiDirect(f, "uuid-1", "vm1", 1'000'000'000ULL, 300'000'000ULL, 100'000'000ULL);
  });
  json j = kpi_json("host-a", *k);
  EXPECT_EQ(j["host"], "host-a");
  EXPECT_EQ(j["cpu_run_ms"], 300);
  EXPECT_EQ(j["cpu_wait_ms"], 100);
  EXPECT_EQ(j["runq_wait_permille"], 250);  // wait / (run + wait)
  flatbuffers::FlatBufferBuilder idle;
  EXPECT_EQ(kpi_json("h", *record<v1::VmKpi>(
                              idle, [](auto& f) { return v1::CreateVmKpiDirect(f, "u"); }))["runq_wait_permille"],
            0);
}

TEST(MorphctlRecords, AmountsByResourceName) {
  flatbuffers::FlatBufferBuilder fbb;
  auto* h = record<v1::HostStatus>(fbb, [](auto& f) {
    std::vector<flatbuffers::Offset<v1::ResourceAmount>> cap{v1::CreateResourceAmount(f, v1::Resource::cpu, 2000),
                                                             v1::CreateResourceAmount(f, v1::Resource::memory, 4096)};
    return v1::CreateHostStatusDirect(f, "host-a", true, 1, 0, &cap, 3);
  });
  json j = host_json(*h);
  EXPECT_EQ(j["capacity"], (json{{"cpu", 2000}, {"memory", 4096}}));
  EXPECT_EQ(j["vms"], 3);
  EXPECT_EQ(amounts_json(nullptr), json::object());
}

// A reply of another kind than the one asked for is a bad reply (exit 3), never a crash.
TEST(MorphctlRecords, AReplyOfAnotherKindIsABadReply) {
  flatbuffers::FlatBufferBuilder fbb;
  auto* reply = record<v1::ApiReply>(fbb, [](auto& f) {
    return v1::CreateApiReply(f, 1, 0, v1::ApiReplyBody::HostsReply, v1::CreateHostsReply(f).Union());
  });
  try {
    record_in<&v1::ApiReply::body_as_AccountReply, &v1::AccountReply::account, account_json>(*reply);
    FAIL() << "no error";
  } catch (const CommandError& e) {
    EXPECT_EQ(e.code, kUnreachable);
    EXPECT_EQ(e.message, "the controller's reply is not the one asked for");
  }
  EXPECT_EQ((rows_in<&v1::ApiReply::body_as_HostsReply, &v1::HostsReply::hosts, host_json>(*reply)), json::array());
}

}  // namespace
}  // namespace morph::cli
