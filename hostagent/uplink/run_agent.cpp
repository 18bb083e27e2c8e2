#include "hostagent/uplink/run_agent.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <ctime>
#include <filesystem>

#include "hostagent/uplink/synthetic_source.h"

namespace morph::agent {

std::vector<std::pair<msg::Resource, int64_t>> host_cpu_memory_capacity() {
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return {{msg::Resource::cpu, int64_t(cpus > 0 ? cpus : 1) * 1000},
          {msg::Resource::memory, pages > 0 && page > 0 ? int64_t(pages) * int64_t(page) / (1024 * 1024) : 0}};
}

namespace {

// CURVE keys: explicit files win; otherwise keys_dir/<host>.key and keys_dir/controller.pub, which are
// required when an endpoint is tcp:// (the controller refuses plaintext there) and used when present.
Status load_keys(const config::Config& cfg, const RunOptions& o, const std::string& host, UplinkConfig& up) {
  std::string key = o.key_file, pub = o.server_key_file;
  const bool tcp = msg::is_tcp(up.ingest_endpoint) || msg::is_tcp(up.control_endpoint);
  if (key.empty() && pub.empty()) {
    const std::filesystem::path dir = cfg.get_string("security.keys_dir");
    std::error_code ec;
    const bool present = std::filesystem::exists(dir / (host + ".key"), ec);
    if (!tcp && !present) return {};
    key = (dir / (host + ".key")).string();
    pub = (dir / "controller.pub").string();
  }
  MORPH_TRY_ASSIGN(up.security, msg::load_client_security({key, pub, "security.keys_dir", "security.keys_dir"}));
  return {};
}

struct UplinkMetrics {
  std::shared_ptr<metrics::Gauge> up;
  std::shared_ptr<metrics::Counter> reports, dropped, hellos, results, bad, restarts;
  uint64_t last_reports = 0, last_dropped = 0, last_hellos = 0, last_results = 0, last_bad = 0, last_restarts = 0;
};

}  // namespace

int run_agent(const config::Config& cfg, const RunOptions& o, const HostRuntimeFactory& make_runtime) {
  if (cfg.origin("log.level").where != "default")
    spdlog::set_level(spdlog::level::from_str(cfg.get_string("log.level")));

  std::string host = cfg.get_string("agent.host_id");
  if (host.empty()) {
    char hn[256] = {};
    ::gethostname(hn, sizeof(hn) - 1);
    host = hn;
  }
  UplinkConfig up;
  up.host = host;
  up.ingest_endpoint = cfg.get_string("endpoints.ingest");
  up.control_endpoint = cfg.get_string("endpoints.control");
  up.interval_ns = uint64_t(cfg.get_duration("agent.interval").count());
  up.default_lease_ns = uint64_t(cfg.get_duration("lease.default").count());
  up.agent_version = o.version;
  if (auto st = load_keys(cfg, o, host, up); !st) {
    spdlog::error("{}", st.error().what());
    return 2;
  }

  metrics::Registry registry;
  HostDescription desc;
  std::shared_ptr<KpiSource> source;
  std::shared_ptr<ShiftHandler> shifts = std::make_shared<ShiftUnavailable>();
  std::unique_ptr<HostRuntime> runtime;
  if (o.synthetic_vms > 0) {
    spdlog::warn("publishing SYNTHETIC KPIs for {} made-up VMs", o.synthetic_vms);
    desc.vms = synthetic_vms(host, o.synthetic_vms);
    desc.capacity = {{msg::Resource::cpu, 16000}, {msg::Resource::memory, 65536}};
    source = std::make_shared<SyntheticKpiSource>(desc.vms, o.synthetic_demand_file);
  } else if (make_runtime) {
    auto rt = make_runtime(RuntimeContext{cfg, o, host, registry});
    if (!rt) {
      spdlog::error("{}", rt.error().what());
      return 1;
    }
    runtime = std::move(rt).value();
    desc = runtime->host();
    source = runtime->kpi_source();
    shifts = runtime->shift_handler();
  } else {
    spdlog::error("no VM source in this build: use --synthetic-vms");
    return 2;
  }

  // Block the stop signals before any thread starts, so only sigtimedwait below sees them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  Uplink uplink(up, std::move(desc), source, shifts);
  auto um = std::make_shared<UplinkMetrics>();
  um->up = registry.gauge("morph_agent_uplink_controller_up", "1 while the controller answers heartbeats").with({});
  auto& ev = registry.counter("morph_agent_uplink_messages_total", "Messages of the uplink, by kind", {"kind"});
  um->reports = ev.with({"kpi_report_sent"});
  um->dropped = ev.with({"kpi_report_dropped"});
  um->hellos = ev.with({"hello_sent"});
  um->results = ev.with({"shift_result_sent"});
  um->bad = ev.with({"bad_message"});
  um->restarts = ev.with({"controller_restart"});
  registry.on_collect([um, &uplink] {
    const UplinkStats& s = uplink.stats();
    um->up->set(s.controller_up ? 1 : 0);
    auto delta = [](std::shared_ptr<metrics::Counter>& c, uint64_t& last, const std::atomic<uint64_t>& now) {
      const uint64_t v = now.load();
      c->inc(double(v - last));
      last = v;
    };
    delta(um->reports, um->last_reports, s.reports_sent);
    delta(um->dropped, um->last_dropped, s.reports_dropped);
    delta(um->hellos, um->last_hellos, s.hellos_sent);
    delta(um->results, um->last_results, s.results_sent);
    delta(um->bad, um->last_bad, s.bad_messages);
    delta(um->restarts, um->last_restarts, s.controller_restarts);
  });
  std::unique_ptr<metrics::MetricsServer> server;
  if (const std::string& listen = cfg.get_string("metrics.listen"); !listen.empty()) {
    // A taken port must not keep VMs from being measured and shifted: run on without /metrics.
    if (auto srv = metrics::MetricsServer::start(registry, listen); !srv) {
      spdlog::error("metrics.listen {}: {}; running without /metrics", listen, srv.error().what());
    } else {
      server = std::move(srv).value();
      spdlog::info("metrics on {}/metrics", server->url());
    }
  }
  // The runtime first: it only queues onto the uplink (HostHello updates, lease reports) and must be
  // wired before the uplink thread calls its KpiSource.
  if (runtime) {
    if (auto st = runtime->start(uplink); !st) {
      spdlog::error("{}", st.error().what());
      return 1;
    }
  }
  if (auto st = uplink.start(); !st) {
    spdlog::error("{}", st.error().what());
    if (runtime) runtime->stop();
    return 1;
  }
  spdlog::info("agent {} running: ingest {} control {} interval {}", host, up.ingest_endpoint, up.control_endpoint,
               cfg.text("agent.interval"));
  timespec ts{0, 200'000'000};
  for (;;) {
    int sig = sigtimedwait(&set, nullptr, &ts);
    if (sig == SIGINT || sig == SIGTERM) break;
  }
  spdlog::info("stopping");
  server.reset();
  if (runtime) runtime->stop();
  uplink.stop();
  return 0;
}

}  // namespace morph::agent
