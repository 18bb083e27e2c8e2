// The configuration loader: defaults → file → command line, and errors that name key, file, line and
// what was expected.

#include "common/config.h"

#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>

#include "common/config_schemas.h"
#include "common/resource.h"
#include "controller/market/money.h"

namespace morph::config {
namespace {

using namespace std::chrono_literals;

Schema test_schema() {
  Schema s("morph-test");
  s.add("agent.interval", Type::duration, "1s", "How often.").min("100ms").max("1m");
  s.add("agent.name", Type::string, "", "A name.");
  s.add("agent.verbose", Type::boolean, "false", "Talk more.");
  s.add("market.reserve.cpu", Type::integer, "0", "Reserve.").min("0").max("1000");
  s.add("buffer.size", Type::bytes, "64KiB", "A buffer.").min("4KiB");
  s.add("endpoints.ingest", Type::endpoint, "tcp://127.0.0.1:7710", "Ingest.");
  s.add("lease.on_expiry", Type::choice, "revert", "Policy.").choices({"revert", "hold"});
  s.add("metrics.listen", Type::listen, "127.0.0.1:9470", "Metrics.");
  return s;
}

TEST(ConfigParsers, Durations) {
  EXPECT_EQ(*parse_duration("1s"), 1s);
  EXPECT_EQ(*parse_duration("100ms"), 100ms);
  EXPECT_EQ(*parse_duration("5m"), 5min);
  EXPECT_EQ(*parse_duration("1m30s"), 90s);
  EXPECT_EQ(*parse_duration("1.5s"), 1500ms);
  EXPECT_EQ(*parse_duration("250us"), 250us);
  EXPECT_EQ(*parse_duration("2h"), 2h);
  for (const char* bad : {"", "5", "s", "1x", "-1s", "1.s", ".5s", "1..5s", "1 s"}) {
    EXPECT_FALSE(parse_duration(bad).ok()) << bad;
  }
  // On a command line a bare number is seconds; everything else is as above.
  EXPECT_EQ(*parse_duration_arg("30"), 30s);
  EXPECT_EQ(*parse_duration_arg("0.5"), 500ms);
  EXPECT_EQ(*parse_duration_arg("250ms"), 250ms);
  EXPECT_EQ(*parse_duration_arg("1m30s"), 90s);
  for (const char* bad : {"", ".", "1.", "1..5", "x", "-1", "5 s", "1x"}) {
    auto d = parse_duration_arg(bad);
    ASSERT_FALSE(d.ok()) << bad;
    EXPECT_NE(d.error().message().find("'" + std::string(bad) + "'"), std::string::npos) << d.error().message();
  }
  EXPECT_EQ(format_duration(1s), "1s");
  EXPECT_EQ(format_duration(100ms), "100ms");
  EXPECT_EQ(format_duration(5min), "5m");
  EXPECT_EQ(format_duration(90s), "90s");
  EXPECT_EQ(format_duration(0s), "0s");
}

TEST(ConfigParsers, Bytes) {
  EXPECT_EQ(*parse_bytes("1048576"), 1048576u);
  EXPECT_EQ(*parse_bytes("64KiB"), 65536u);
  EXPECT_EQ(*parse_bytes("64K"), 65536u);
  EXPECT_EQ(*parse_bytes("1MiB"), 1u << 20);
  EXPECT_EQ(*parse_bytes("2G"), 2ull << 30);
  EXPECT_EQ(*parse_bytes("1 TiB"), 1ull << 40);
  for (const char* bad : {"", "KiB", "1KB", "1.5MiB", "-1", "99999999999999999999", "20000000TiB"}) {
    EXPECT_FALSE(parse_bytes(bad).ok()) << bad;
  }
  EXPECT_EQ(format_bytes(65536), "64KiB");
  EXPECT_EQ(format_bytes(1000), "1000");
}

TEST(ConfigParsers, EndpointsAndListenAddresses) {
  EXPECT_TRUE(check_endpoint("tcp://127.0.0.1:7710").ok());
  EXPECT_TRUE(check_endpoint("tcp://*:7710").ok());
  EXPECT_TRUE(check_endpoint("ipc:///run/morph/ingest").ok());
  EXPECT_FALSE(check_endpoint("ipc://relative").ok());
  EXPECT_FALSE(check_endpoint("tcp://host").ok());
  EXPECT_FALSE(check_endpoint("tcp://host:99999").ok());
  EXPECT_FALSE(check_endpoint("http://host:80").ok());
  EXPECT_FALSE(check_endpoint("ipc:///x", {"tcp"}).ok());

  auto a = parse_listen("127.0.0.1:9470");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 9470);
  auto v6 = parse_listen("[::1]:0");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(parse_listen(":80")->host, "");
  EXPECT_FALSE(parse_listen("::1:80").ok());
  EXPECT_FALSE(parse_listen("localhost").ok());
  EXPECT_FALSE(parse_listen("h:70000").ok());
}

TEST(Config, DefaultsWhenNoFile) {
  Schema s = test_schema();
  auto c = load(s, std::nullopt);
  ASSERT_TRUE(c.ok()) << c.error().what();
  EXPECT_EQ(c->get_duration("agent.interval"), 1s);
  EXPECT_EQ(c->get_string("agent.name"), "");
  EXPECT_FALSE(c->get_bool("agent.verbose"));
  EXPECT_EQ(c->get_bytes("buffer.size"), 65536u);
  EXPECT_EQ(c->get_string("lease.on_expiry"), "revert");
  EXPECT_EQ(c->origin("agent.interval").where, "default");
  EXPECT_THROW((void)c->get_int("agent.intervall"), std::logic_error);
  EXPECT_THROW((void)c->get_int("agent.interval"), std::logic_error);
}

TEST(Config, FileOverridesDefaultsAndRecordsWhere) {
  Schema s = test_schema();
  auto c = parse(s,
                 "[agent]\n"
                 "interval = \"250ms\"\n"
                 "verbose = true\n"
                 "[market.reserve]\n"
                 "cpu = 40\n"
                 "[buffer]\n"
                 "size = \"1MiB\"\n",
                 "agent.toml");
  ASSERT_TRUE(c.ok()) << c.error().what();
  EXPECT_EQ(c->get_duration("agent.interval"), 250ms);
  EXPECT_TRUE(c->get_bool("agent.verbose"));
  EXPECT_EQ(c->get_int("market.reserve.cpu"), 40);
  EXPECT_EQ(c->get_bytes("buffer.size"), 1u << 20);
  EXPECT_EQ(c->origin("agent.interval").where, "agent.toml:2:12");
  EXPECT_EQ(c->text("agent.interval"), "250ms");
  // Dotted keys at the top level mean the same.
  auto d = parse(s, "agent.interval = \"2s\"\nbuffer.size = 8192\n", "d.toml");
  ASSERT_TRUE(d.ok()) << d.error().what();
  EXPECT_EQ(d->get_duration("agent.interval"), 2s);
  EXPECT_EQ(d->get_bytes("buffer.size"), 8192u);
}

TEST(Config, UnknownKeyNamesFileLineAndSuggestion) {
  Schema s = test_schema();
  auto c = parse(s, "[agent]\nname = \"h1\"\nintervall = \"1s\"\n", "/etc/morph/a.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), Errc::invalid_argument);
  EXPECT_EQ(c.error().message(),
            "/etc/morph/a.toml:3:1: unknown key 'agent.intervall' in the configuration of morph-test "
            "(did you mean 'agent.interval'?)");
  auto t = parse(s, "[nosuch]\nx = 1\n", "a.toml");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().message().find("a.toml:1:2: unknown table 'nosuch'"), std::string::npos) << t.error().message();
  // A key in the wrong table is suggested where it belongs.
  auto w = parse(s, "interval = \"1s\"\n", "a.toml");
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.error().message().find("did you mean 'agent.interval'"), std::string::npos) << w.error().message();
}

TEST(Config, InvalidValuesSayWhatWasExpected) {
  Schema s = test_schema();
  struct Case {
    std::string toml, want;
  };
  std::vector<Case> cases = {
      {"[agent]\ninterval = \"50ms\"\n",
       "a.toml:2:12: agent.interval: expected a duration like \"1s\", \"100ms\" or \"5m\" from 100ms to 1m, got "
       "string \"50ms\""},
      {"[agent]\ninterval = 5\n",
       "a.toml:2:12: agent.interval: expected a duration like \"1s\", \"100ms\" or \"5m\" from 100ms to 1m, got "
       "integer 5"},
      {"[agent]\nverbose = \"yes\"\n", "a.toml:2:11: agent.verbose: expected true or false, got string \"yes\""},
      {"[market.reserve]\ncpu = 1001\n",
       "a.toml:2:7: market.reserve.cpu: expected an integer from 0 to 1000, got integer 1001"},
      {"[market.reserve]\ncpu = -1\n",
       "a.toml:2:7: market.reserve.cpu: expected an integer from 0 to 1000, got integer -1"},
      {"[lease]\non_expiry = \"forget\"\n",
       "a.toml:2:13: lease.on_expiry: expected one of revert, hold, got string \"forget\""},
      {"[endpoints]\ningest = \"tcp://nohost\"\n",
       "a.toml:2:10: endpoints.ingest: expected an endpoint tcp://HOST:PORT or ipc:///PATH, got string "
       "\"tcp://nohost\""},
      {"[buffer]\nsize = \"1KiB\"\n",
       "a.toml:2:8: buffer.size: expected a size like 1048576, \"64KiB\" or \"1MiB\" of at least 4KiB, got "
       "string \"1KiB\""},
      {"[agent]\ninterval = { a = 1 }\n",
       "a.toml:2:12: agent.interval: expected a duration like \"1s\", \"100ms\" "
       "or \"5m\" from 100ms to 1m, got a table"},
      {"agent = 3\n", "a.toml:1:1: unknown key 'agent' in the configuration of morph-test"},
  };
  for (const auto& c : cases) {
    auto r = parse(s, c.toml, "a.toml");
    ASSERT_FALSE(r.ok()) << c.toml;
    EXPECT_EQ(r.error().code(), Errc::invalid_argument);
    EXPECT_EQ(r.error().message().substr(0, c.want.size()), c.want) << r.error().message();
  }
}

TEST(Config, SyntaxErrorNamesFileAndLine) {
  Schema s = test_schema();
  auto r = parse(s, "[agent]\ninterval = \"1s\n", "bad.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message().rfind("bad.toml:2:", 0), 0u) << r.error().message();
  EXPECT_NE(r.error().message().find("TOML syntax error"), std::string::npos);
}

TEST(Config, OverridesWinOverFileInOrder) {
  Schema s = test_schema();
  std::vector<Override> o = {{"agent.interval", "300ms", "--set"},
                             {"agent.interval", "400ms", "--interval"},
                             {"agent.name", "\"h2\"", "--set"}};
  auto c = parse(s, "[agent]\ninterval = \"2s\"\nname = \"h1\"\n", "a.toml", o);
  ASSERT_TRUE(c.ok()) << c.error().what();
  EXPECT_EQ(c->get_duration("agent.interval"), 400ms);
  EXPECT_EQ(c->origin("agent.interval").where, "command line (--interval)");
  EXPECT_EQ(c->get_string("agent.name"), "h2");

  auto bad = parse(s, "", "a.toml", {{"agent.interval", "fast", "--set"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message(),
            "--set agent.interval=fast: expected a duration like \"1s\", \"100ms\" or \"5m\" from 100ms to 1m, got "
            "\"fast\"");
  auto unknown = parse(s, "", "a.toml", {{"agent.nme", "x", "--set"}});
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message().find("did you mean 'agent.name'"), std::string::npos);
}

TEST(Config, CommandLineBindsSetAndTypedFlags) {
  Schema s = test_schema();
  auto dir = std::filesystem::temp_directory_path() / ("morph-config-test-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto file = dir / "t.toml";
  std::ofstream(file) << "[agent]\ninterval = \"2s\"\nname = \"from-file\"\n";

  CLI::App app("t");
  CommandLine cl(s);
  cl.add_config_option(app);
  cl.add_set_option(app);
  cl.add_flag(app, "--interval", "agent.interval");
  EXPECT_THROW(cl.add_flag(app, "--nope", "agent.nope"), std::logic_error);
  std::vector<std::string> args = {
      "t",          "--config", file.string(), "--set", "agent.verbose=true", "--set", "agent.interval=700ms",
      "--interval", "500ms"};
  std::vector<const char*> argv;
  for (auto& a : args) argv.push_back(a.c_str());
  ASSERT_NO_THROW(app.parse(static_cast<int>(argv.size()), const_cast<char**>(argv.data())));
  ASSERT_EQ(cl.overrides().size(), 3u);
  auto c = cl.load();
  ASSERT_TRUE(c.ok()) << c.error().what();
  EXPECT_EQ(c->get_duration("agent.interval"), 500ms);  // the typed flag wins over --set
  EXPECT_TRUE(c->get_bool("agent.verbose"));
  EXPECT_EQ(c->get_string("agent.name"), "from-file");
  EXPECT_EQ(c->origin("agent.name").where, file.string() + ":3:8");

  // A missing file that the operator named is an error; a missing default file is not.
  EXPECT_FALSE(load(s, dir / "missing.toml").ok());
  CLI::App app2("t");
  CommandLine cl2(s);
  cl2.add_config_option(app2, (dir / "missing.toml").string());
  const char* argv2[] = {"t"};
  app2.parse(1, const_cast<char**>(argv2));
  EXPECT_FALSE(cl2.config_file().has_value());
  EXPECT_TRUE(cl2.load().ok());
  std::filesystem::remove_all(dir);
}

TEST(ConfigSchema, RejectsBadDeclarations) {
  {
    Schema s("x");
    s.add("a.b", Type::duration, "10ms", "d").min("100ms");
    EXPECT_FALSE(s.validate().ok());  // default below its minimum
  }
  {
    Schema s("x");
    s.add("a", Type::integer, "1", "d");
    s.add("a.b", Type::integer, "1", "d");
    EXPECT_FALSE(s.validate().ok());  // a key that is also a table
  }
  {
    Schema s("x");
    s.add("Bad-Name", Type::integer, "1", "d");
    EXPECT_FALSE(s.validate().ok());
  }
  {
    Schema s("x");
    s.add("a.b", Type::choice, "x", "d");
    EXPECT_FALSE(s.validate().ok());  // no choices
  }
}

TEST(ConfigSchema, DaemonSchemasAreValidAndDeclareTheirKeyNames) {
  ASSERT_TRUE(agent_schema().validate().ok()) << agent_schema().validate().error().what();
  ASSERT_TRUE(controller_schema().validate().ok()) << controller_schema().validate().error().what();
  for (auto k :
       {agent_keys::host_id, agent_keys::libvirt_uri, agent_keys::interval, agent_keys::ingest, agent_keys::control,
        agent_keys::keys_dir, agent_keys::lease_default, agent_keys::lease_on_expiry, agent_keys::lease_state_file,
        agent_keys::bpf_pin_dir, agent_keys::metrics_listen, agent_keys::log_level}) {
    EXPECT_NE(agent_schema().find(k), nullptr) << k;
  }
  for (auto k : {controller_keys::tick, controller_keys::ingest, controller_keys::control, controller_keys::api,
                 controller_keys::events, controller_keys::ledger_path, controller_keys::min_hold_ticks,
                 controller_keys::speculative_notice_ticks, controller_keys::hysteresis_pct, controller_keys::keys_dir,
                 controller_keys::allow_list, controller_keys::metrics_listen, controller_keys::dashboard_listen,
                 controller_keys::log_level}) {
    EXPECT_NE(controller_schema().find(k), nullptr) << k;
  }
  for (Resource r : kMarketResources) {
    const std::string key = std::string(controller_keys::reserve_prefix) + resource_name(r);
    EXPECT_NE(controller_schema().find(key), nullptr) << key;
    // The reserve's bound is the market's price bound (docs/market.md "Money bounds").
    EXPECT_TRUE(
        parse(controller_schema(),
              "[market.reserve]\n" + std::string(resource_name(r)) + " = " + std::to_string(market::kMaxPrice) + "\n",
              "c.toml")
            .ok())
        << key;
    auto over = parse(
        controller_schema(),
        "[market.reserve]\n" + std::string(resource_name(r)) + " = " + std::to_string(market::kMaxPrice + 1) + "\n",
        "c.toml");
    ASSERT_FALSE(over.ok()) << key;
    EXPECT_NE(over.error().message().find(key), std::string::npos) << over.error().message();
  }
  auto a = load(agent_schema(), std::nullopt);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->get_duration(agent_keys::interval), 1s);
  EXPECT_EQ(a->get_duration(agent_keys::lease_default), 5s);
  EXPECT_EQ(a->get_string(agent_keys::lease_on_expiry), "revert");
  EXPECT_FALSE(parse(agent_schema(), "[agent]\ninterval = \"99ms\"\n", "a.toml").ok());
  auto c = load(controller_schema(), std::nullopt);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->get_duration(controller_keys::tick), 1s);
  EXPECT_EQ(c->get_int(controller_keys::min_hold_ticks), 5);
}

}  // namespace
}  // namespace morph::config
