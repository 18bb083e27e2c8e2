#include "hostagent/cli/run_command.h"

#include <spdlog/spdlog.h>

#include "common/config_schemas.h"

namespace morph::agent::cli {

std::shared_ptr<RunCommand> add_run_command(CLI::App& app, std::string version) {
  auto o = std::make_shared<RunCommand>();
  o->options.version = std::move(version);
  o->config = std::make_unique<config::CommandLine>(config::agent_schema());
  auto* c = app.add_subcommand("run", "connect to the controller, publish this host's KPIs and apply shifts");
  o->config->add_config_option(*c);
  o->config->add_set_option(*c);
  o->config->add_flag(*c, "--host", "agent.host_id");
  o->config->add_flag(*c, "--ingest", "endpoints.ingest");
  o->config->add_flag(*c, "--control", "endpoints.control");
  o->config->add_flag(*c, "--interval", "agent.interval");
  o->config->add_flag(*c, "--connect", "agent.libvirt_uri");
  o->config->add_flag(*c, "--metrics-listen", "metrics.listen");
  o->config->add_flag(*c, "--lease-state-file", "lease.state_file");
  c->add_option("--key", o->options.key_file,
                "this agent's secret key file (default: security.keys_dir/<host_id>.key)");
  c->add_option("--server-key", o->options.server_key_file,
                "the controller's public key file (default: security.keys_dir/controller.pub)");
  c->add_option("--interval-ms", o->interval_ms, "KPI interval in ms (same as --interval)")
      ->check(CLI::Range(100, 60000));
  c->add_option("--synthetic-vms", o->options.synthetic_vms,
                "publish made-up KPIs for N synthetic VMs (no libvirt, no BPF)")
      ->check(CLI::Range(0, 4096));
  c->add_option("--synthetic-demand", o->options.synthetic_demand_file,
                "with --synthetic-vms: a file holding the synthetic VMs' CPU demand in millicores, read at each "
                "interval (a test or demo drives demand by rewriting it)");
  c->add_option("--vm", o->options.static_vms,
                "measure this cgroup as a VM instead of asking libvirt: NAME:CGROUP_PATH[:TAP,...]");
  c->add_flag("--raw-tp", o->options.raw_tp, "use the raw_tp programs even where tp_btf works");
  o->command = c;
  return o;
}

int run_run_command(const RunCommand& run, const HostRuntimeFactory& runtime) {
  std::vector<config::Override> overrides = run.config->overrides();
  if (run.interval_ms > 0)
    overrides.insert(overrides.begin(), {"agent.interval", std::to_string(run.interval_ms) + "ms", "--interval-ms"});
  auto loaded = config::load(config::agent_schema(), run.config->config_file(), overrides);
  if (!loaded) {
    spdlog::error("{}", loaded.error().what());
    return 2;
  }
  return run_agent(*loaded, run.options, runtime);
}

}  // namespace morph::agent::cli
