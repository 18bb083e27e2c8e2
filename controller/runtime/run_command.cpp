#include "controller/runtime/run_command.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <ctime>
#include <optional>

#include "common/config_schemas.h"
#include "common/metrics.h"
#include "controller/api/controller_server.h"
#include "controller/dashboard/dashboard.h"
#include "controller/runtime/kpi_consumers.h"
#include "controller/runtime/market_service.h"

namespace morph::controller {

namespace keys = config::controller_keys;

std::shared_ptr<RunOptions> add_run_command(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  auto* c = app.add_subcommand(
      "run", "bind the messaging endpoints, run the market and serve agents, clients and subscribers");
  o->cli = std::make_unique<config::CommandLine>(config::controller_schema());
  o->cli->add_config_option(*c);
  o->cli->add_set_option(*c);
  o->cli->add_flag(*c, "--ingest", std::string(keys::ingest));
  o->cli->add_flag(*c, "--control", std::string(keys::control));
  o->cli->add_flag(*c, "--api", std::string(keys::api));
  o->cli->add_flag(*c, "--events", std::string(keys::events));
  o->cli->add_flag(*c, "--tick", std::string(keys::tick));
  o->cli->add_flag(*c, "--ledger", std::string(keys::ledger_path));
  o->cli->add_flag(*c, "--metrics-listen", std::string(keys::metrics_listen));
  o->cli->add_flag(*c, "--dashboard-listen", std::string(keys::dashboard_listen));
  c->add_option("--ipc-dir", o->ipc_dir, "serve on ipc:// sockets in this directory (mode 0700) instead");
  c->add_option("--key", o->key_file,
                "the controller's secret key file (NAME.key, mode 0600); default with tcp endpoints: "
                "security.keys_dir/controller.key");
  c->add_option("--allow", o->allow_file, "allow-list of public keys by role (default: security.allow_list)");
  c->add_option("--lease", o->lease, "lease of each ShiftCommand, renewed every tick while the allocation holds")
      ->capture_default_str();
  c->add_flag("--no-market", o->no_market, "serve messaging only: market requests answer 'unavailable'");
  o->command = c;
  return o;
}

namespace {
Result<MarketServiceConfig> market_config(const config::Config& cfg, const std::string& lease) {
  MarketServiceConfig m;
  m.tick = cfg.get_duration(keys::tick);
  if (m.tick < std::chrono::milliseconds(100))
    return Error(Errc::invalid_argument, std::string(keys::tick) + ": must be at least 100ms");
  m.tick_offset = cfg.get_duration(keys::tick_offset);
  if (m.tick_offset >= m.tick)
    return Error(Errc::invalid_argument, std::string(keys::tick_offset) + " " + cfg.text(keys::tick_offset) +
                                             ": must be shorter than " + std::string(keys::tick) + " (" +
                                             cfg.text(keys::tick) + ")");
  MORPH_TRY_ASSIGN(m.lease, config::parse_duration(lease));
  if (m.lease < m.tick * 2) return Error(Errc::invalid_argument, "--lease " + lease + ": must be at least two ticks");
  m.ledger_path = cfg.get_string(keys::ledger_path);
  // Retention counts ticks: the duration kept, rounded up to whole ticks.
  if (auto keep = cfg.get_duration(keys::retention_keep); keep.count() > 0)
    m.retention.keep_ticks = static_cast<market::Tick>((keep + m.tick - std::chrono::nanoseconds(1)) / m.tick);
  m.retention.archive_path = cfg.get_string(keys::retention_archive);
  m.retention.batch_ticks = static_cast<market::Tick>(cfg.get_int(keys::retention_batch_ticks));
  for (Resource r : kMarketResources)
    m.market.set_reserve(r, cfg.get_int(std::string(keys::reserve_prefix) + resource_name(r)));
  m.market.hold_ticks = static_cast<uint32_t>(cfg.get_int(keys::min_hold_ticks));
  m.market.notice_ticks = static_cast<uint32_t>(cfg.get_int(keys::speculative_notice_ticks));
  m.market.hysteresis_pct = static_cast<uint32_t>(cfg.get_int(keys::hysteresis_pct));
  return m;
}

// The in-process dashboard's own client identity on CURVE endpoints: a key pair generated at every start,
// held in memory only, and added to the allow-list as a tenant whose account can never exist (not a valid
// account name), so it may read (snapshots, events) and act on nothing. It is what lets the dashboard's
// FleetView use the same authenticated endpoints as every other client, tcp or ipc.
constexpr const char* kDashboardPrincipal = "morph-controller.dashboard";
constexpr const char* kDashboardNoAccount = "(none: read-only dashboard)";

// The bound endpoint as a local client reaches it: a wildcard bind is connected to over loopback.
std::string local_endpoint(std::string ep) {
  for (auto [any, lo] : {std::pair{"tcp://0.0.0.0:", "tcp://127.0.0.1:"}, std::pair{"tcp://[::]:", "tcp://[::1]:"}})
    if (ep.starts_with(any)) return lo + ep.substr(std::string_view(any).size());
  return ep;
}

bool loopback_host(const std::string& host) {
  return host == "localhost" || host == "::1" || host.starts_with("127.");
}
}  // namespace

int run_controller(const RunOptions& o, std::shared_ptr<MarketApi> market) {
  auto loaded = o.cli->load();
  if (!loaded) {
    spdlog::error("{}", loaded.error().what());
    return 2;
  }
  const config::Config& conf = *loaded;
  ControllerConfig cfg;
  cfg.endpoints = {conf.get_string(keys::ingest), conf.get_string(keys::control), conf.get_string(keys::api),
                   conf.get_string(keys::events)};
  if (!o.ipc_dir.empty()) {
    cfg.endpoints = {"ipc://" + o.ipc_dir + "/ingest", "ipc://" + o.ipc_dir + "/control", "ipc://" + o.ipc_dir + "/api",
                     "ipc://" + o.ipc_dir + "/events"};
  }
  // CURVE: --key, or with any tcp endpoint the controller's key in security.keys_dir (as packaged).
  std::string key_file = o.key_file;
  std::optional<msg::KeyPair> dashboard_key;  // the in-process dashboard's CURVE identity (below)
  const auto& e = cfg.endpoints;
  if (key_file.empty() &&
      (msg::is_tcp(e.ingest) || msg::is_tcp(e.control) || msg::is_tcp(e.api) || msg::is_tcp(e.events)))
    key_file = conf.get_string(keys::keys_dir) + "/controller.key";
  if (!key_file.empty()) {
    auto kp = msg::load_keypair(key_file);
    if (!kp) {
      spdlog::error("{}", kp.error().what());
      return 2;
    }
    cfg.server_key = *kp;
    std::string allow = o.allow_file.empty() ? conf.get_string(keys::allow_list) : o.allow_file;
    auto al = msg::AllowList::load(allow);
    if (!al) {
      spdlog::error("{} (--key needs an allow-list: without one nobody could connect)", al.error().what());
      return 2;
    }
    spdlog::info("allow-list {}: {} principals", allow, al->size());
    if (!conf.get_string(keys::dashboard_listen).empty()) {
      auto dkp = msg::generate_keypair();
      if (!dkp) {
        spdlog::error("{}: the dashboard's client key: {}", keys::dashboard_listen, dkp.error().what());
        return 2;
      }
      if (auto st = al->add({msg::Role::tenant, kDashboardPrincipal, kDashboardNoAccount, dkp->public_z85}); !st) {
        spdlog::error("{}: cannot allow the dashboard's client key: {}", keys::dashboard_listen, st.error().what());
        return 2;
      }
      dashboard_key = *dkp;
      cfg.reads_all = kDashboardPrincipal;  // its snapshots show every tenant's allocations, as an admin's
    }
    cfg.allow = std::make_shared<const msg::AllowList>(std::move(al).value());
  }

  metrics::Registry registry;
  std::shared_ptr<MarketService> service;
  if (!market && !o.no_market) {
    auto mc = market_config(conf, o.lease);
    if (!mc) {
      spdlog::error("{}", mc.error().what());
      return 2;
    }
    auto s = MarketService::open(std::move(mc).value(), &registry);
    if (!s) {
      spdlog::error("market: {}", s.error().what());
      return 2;
    }
    service = *s;
    market = service;
  }
  DemandForecastsConfig fc;
  fc.step = conf.get_duration(keys::forecast_step);
  fc.min_steps = static_cast<uint32_t>(conf.get_int(keys::forecast_min_steps));
  KpiConsumers kpis(fc);
  kpis.rescue = service;
  if (service) service->use_forecasts(kpis.forecasts);
  cfg.kpi_observers = kpis.observers();

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // libzmq writes with send(2) without MSG_NOSIGNAL: a peer that shut its end down (or one the controller
  // disconnects, docs/security.md "Limits") must cost an EPIPE, not the process.
  ::signal(SIGPIPE, SIG_IGN);
  ControllerServer server(cfg, std::move(market));
  if (service) service->attach(&server);
  auto up = registry.gauge("morph_controller_hosts_up", "Hosts currently up").with({});
  auto bad =
      registry
          .gauge("morph_controller_bad_messages",
                 "Messages refused (malformed, unverified, unauthorised), and VM entries left out of KPI reports")
          .with({});
  auto reports = registry.gauge("morph_controller_kpi_reports", "KpiReports ingested").with({});
  auto api = registry.gauge("morph_controller_api_requests", "Api requests served").with({});
  auto subs = registry.gauge("morph_controller_event_subscriptions", "Topic prefixes subscribed on events").with({});
  auto dropped = registry
                     .gauge("morph_controller_event_subscribers_dropped",
                            "Events connections dropped for a subscription past the limits (docs/security.md)")
                     .with({});
  registry.on_collect([&] {
    up->set(static_cast<double>(server.stats().hosts_up.load()));
    bad->set(static_cast<double>(server.stats().bad_messages.load()));
    reports->set(static_cast<double>(server.stats().kpi_reports.load()));
    api->set(static_cast<double>(server.stats().api_requests.load()));
    subs->set(static_cast<double>(server.stats().subscriptions.load()));
    dropped->set(static_cast<double>(server.stats().subscribers_dropped.load()));
  });
  std::unique_ptr<metrics::MetricsServer> metrics_server;
  if (auto listen = conf.get_string(keys::metrics_listen); !listen.empty()) {
    auto ms = metrics::MetricsServer::start(registry, listen);
    if (!ms) {
      spdlog::error("{}: {}", keys::metrics_listen, ms.error().what());
      return 2;
    }
    metrics_server = std::move(ms).value();
    spdlog::info("metrics on {}/metrics", metrics_server->url());
  }
  if (auto st = server.start(); !st) {
    spdlog::error("{}", st.error().what());
    return 1;
  }
  // The dashboard, served in process: its FleetView is a client of the endpoints just bound (over CURVE with
  // the identity generated above when they are tcp). It only reads: snapshots and the events stream.
  std::unique_ptr<dashboard::Dashboard> dash;
  if (auto listen = conf.get_string(keys::dashboard_listen); !listen.empty()) {
    dashboard::DashboardOptions d;
    d.listen = listen;
    d.fleet.api = local_endpoint(server.endpoints().api);
    d.fleet.events = local_endpoint(server.endpoints().events);
    if (dashboard_key) {
      d.fleet.security.curve = *dashboard_key;
      d.fleet.security.server_public_z85 = cfg.server_key->public_z85;
    }
    auto ds = dashboard::start_dashboard(d);
    if (!ds) {
      spdlog::error(
          "{} = \"{}\": {} (another controller or morph-dashboard there? choose another address, or \"\" "
          "for no dashboard)",
          keys::dashboard_listen, listen, ds.error().what());
      server.stop();
      return 2;
    }
    dash = std::move(ds).value();
    if (auto addr = config::parse_listen(listen); addr && !loopback_host(addr->host))
      spdlog::warn(
          "{} {} is not a loopback address: anyone who reaches it sees every host, VM, tenant account, bid "
          "and price, without authentication (docs/security.md)",
          keys::dashboard_listen, listen);
  }
  if (service) service->start();
  // The bound endpoints on stdout, one per line, so scripts and tests can use ephemeral ports.
  auto& b = server.endpoints();
  std::printf("ingest %s\ncontrol %s\napi %s\nevents %s\n", b.ingest.c_str(), b.control.c_str(), b.api.c_str(),
              b.events.c_str());
  if (metrics_server) std::printf("metrics %s\n", metrics_server->url().c_str());
  if (dash) std::printf("dashboard %s\n", dash->url().c_str());
  std::fflush(stdout);
  timespec ts{0, 100'000'000};
  int rc = 0;
  for (;;) {
    int sig = sigtimedwait(&set, nullptr, &ts);
    if (sig == SIGINT || sig == SIGTERM) break;
    if (!server.running()) {
      auto st = server.wait();
      spdlog::critical("controller stopped serving: {}", st ? "unknown reason" : st.error().what());
      rc = 3;
      break;
    }
  }
  spdlog::info("stopping");
  dash.reset();  // its FleetView's sockets before the server's
  if (service) service->stop();
  server.stop();
  return rc;
}

}  // namespace morph::controller
