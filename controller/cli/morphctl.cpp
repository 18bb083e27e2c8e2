#include "controller/cli/morphctl.h"

#include <ostream>

#include "controller/cli/command.h"

namespace morph::cli {

#define MORPHCTL_NOUN(x) void add_##x(Commands& c);
#include "controller/cli/nouns.def"
#undef MORPHCTL_NOUN

namespace {

constexpr const char* kFooter = R"(Connection: --connect ipc:///run/morph/api (local: no keys, acts as admin) or
  --connect tcp://ctl:7712 --key me.key --server-key controller.pub (a tenant acts on its account only).
Amounts and prices are integer micro-credits; prices are per unit per second (cpu unit: millicore).
Exit codes: 0 ok, 1 the controller refused (its error is printed), 2 usage, 3 controller unreachable,
4 the controller refused the connection (key not allowed, wrong server key).
Examples:
  morphctl --connect ipc:///run/morph/api accounts create acme
  morphctl accounts deposit acme 5000000
  morphctl quote --vm 0f1e... --quantity 500
  morphctl bids submit --account acme --vm 0f1e... --quantity 500 --max-price 20 --tier improve
  morphctl policy set 0f1e... --rescue on --runq-wait-permille 200 --max-price 50 --budget-per-hour 5000000
  morphctl allocations list --json
  morphctl ledger show --account acme --since-tick 100)";

// The first word that is not a global option must be a command: named when it is none (CLI11 alone
// would only say that a subcommand is required).
bool unknown_command(CLI::App& app, int argc, const char* const* argv, std::ostream& err) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--connect" || a == "--key" || a == "--server-key" || a == "--timeout-ms") {
      ++i;  // its value
      continue;
    }
    if (a.starts_with("-")) continue;
    if (app.get_subcommands([&](CLI::App* c) { return c->check_name(a); }).empty()) {
      err << "morphctl: unknown command '" << a << "' (morphctl commands lists them; morphctl --help explains them)\n";
      return true;
    }
    return false;
  }
  return false;
}

}  // namespace

int run_morphctl(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  CLI::App app{"morphctl: operate and trade on a Morph controller"};
  app.set_version_flag("--version", "0.1.0");
  app.require_subcommand(1);
  app.footer(kFooter);
  Connection conn;
  app.add_option("--connect", conn.connect, "controller api endpoint")->envname("MORPH_CONNECT")->capture_default_str();
  app.add_option("--key", conn.key_file, "this client's secret key file (NAME.key), for tcp");
  app.add_option("--server-key", conn.server_key_file, "the controller's public key file (NAME.pub), for tcp");
  app.add_option("--timeout-ms", conn.timeout_ms, "how long to wait for the controller")->capture_default_str();

  Commands commands(app);
#define MORPHCTL_NOUN(x) add_##x(commands);
#include "controller/cli/nouns.def"
#undef MORPHCTL_NOUN
  commands.finish();

  if (unknown_command(app, argc, argv, err)) return kUsage;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e, out, err) == 0 ? kOk : kUsage;
  }
  if (!commands.chosen()) return kUsage;
  try {
    Client client(conn);
    Session session{client, out, err};
    return commands.chosen()(session);
  } catch (const CommandError& e) {
    err << "morphctl: " << e.message << "\n";
    return e.code;
  }
}

}  // namespace morph::cli
