#include "hostagent/uplink/run_command.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <ctime>

#include "hostagent/uplink/synthetic_source.h"
#include "hostagent/uplink/uplink.h"

namespace morph::agent {

std::shared_ptr<RunOptions> add_run_command(CLI::App& app, std::string version) {
  auto o = std::make_shared<RunOptions>();
  o->version = std::move(version);
  char hn[256] = {};
  ::gethostname(hn, sizeof(hn) - 1);
  o->host = hn;
  auto* c = app.add_subcommand("run", "connect to the controller and publish this host's KPIs");
  c->add_option("--host", o->host, "host id (must equal the agent key's allow-list name)")->capture_default_str();
  c->add_option("--ingest", o->ingest, "controller ingest endpoint")->capture_default_str();
  c->add_option("--control", o->control, "controller control endpoint")->capture_default_str();
  c->add_option("--key", o->key_file, "this agent's secret key file (NAME.key, mode 0600)");
  c->add_option("--server-key", o->server_key_file, "the controller's public key file (NAME.pub)");
  c->add_option("--interval-ms", o->interval_ms, "KPI interval")->check(CLI::Range(100, 60000))->capture_default_str();
  c->add_option("--synthetic-vms", o->synthetic_vms, "publish made-up KPIs for N synthetic VMs (until probes are wired)")
      ->check(CLI::Range(0, 4096));
  o->command = c;
  return o;
}

int run_agent(const RunOptions& o) {
  UplinkConfig cfg;
  cfg.host = o.host;
  cfg.ingest_endpoint = o.ingest;
  cfg.control_endpoint = o.control;
  cfg.interval_ns = uint64_t(o.interval_ms) * 1'000'000ULL;
  cfg.agent_version = o.version;
  if (!o.key_file.empty() || !o.server_key_file.empty()) {
    auto kp = msg::load_keypair(o.key_file);
    if (!kp) {
      spdlog::error("{}", kp.error().what());
      return 2;
    }
    auto sk = msg::load_public_key(o.server_key_file);
    if (!sk) {
      spdlog::error("{}", sk.error().what());
      return 2;
    }
    cfg.security.curve = *kp;
    cfg.security.server_public_z85 = *sk;
  }
  HostDescription host;
  std::shared_ptr<KpiSource> source;
  if (o.synthetic_vms > 0) {
    spdlog::warn("publishing SYNTHETIC KPIs for {} made-up VMs", o.synthetic_vms);
    host.vms = synthetic_vms(o.host, o.synthetic_vms);
    host.capacity = {{msg::Resource::cpu, 16000}, {msg::Resource::memory, 65536}};
    source = std::make_shared<SyntheticKpiSource>(host.vms);
  } else {
    source = std::make_shared<QueuedKpiSource>();  // the probes plug in here
  }
  // Block the stop signals before any thread starts, so only sigtimedwait below sees them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  Uplink uplink(cfg, std::move(host), source, std::make_shared<ShiftUnavailable>());
  if (auto st = uplink.start(); !st) {
    spdlog::error("{}", st.error().what());
    return 1;
  }
  timespec ts{0, 200'000'000};
  for (;;) {
    int sig = sigtimedwait(&set, nullptr, &ts);
    if (sig == SIGINT || sig == SIGTERM) break;
  }
  spdlog::info("stopping");
  uplink.stop();
  return 0;
}

}  // namespace morph::agent
