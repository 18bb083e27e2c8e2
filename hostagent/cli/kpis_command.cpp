#include "hostagent/cli/kpis_command.h"

#include <spdlog/spdlog.h>

#include <csignal>
#include <iostream>
#include <nlohmann/json.hpp>
#include <ostream>

#include "common/config.h"
#include "common/kpi/derived.h"
#include "hostagent/cli/agent_cli.h"
#include "hostagent/inventory/inventory.h"
#include "hostagent/probes/inventory_vm_source.h"

namespace morph::agent::cli {

Result<std::chrono::milliseconds> parse_interval(const std::string& text) {
  auto d = config::parse_duration_arg(text);
  if (!d) return std::move(d).error().with_context("--interval");
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
  if (ms < kMinKpiInterval)
    return Error(Errc::invalid_argument, "interval '" + text + "' is below the minimum of 100ms");
  return ms;
}

nlohmann::json kpis_to_json(const kpi::VmKpis& k, uint64_t timestamp_ns) {
  return nlohmann::json{
      {"timestamp_ns", timestamp_ns},
      {"uuid", k.uuid},
      {"name", k.name},
      {"interval_ns", k.interval_ns},
      {"cpu_run_ns", k.cpu_run_ns},
      {"cpu_wait_ns", k.cpu_wait_ns},
      {"cpu_throttled_ns", k.cpu_throttled_ns},
      {"runq_lat_us", k.runq_lat_us},
      {"blk_read_bytes", k.blk_read_bytes},
      {"blk_write_bytes", k.blk_write_bytes},
      {"blk_read_ops", k.blk_read_ops},
      {"blk_write_ops", k.blk_write_ops},
      {"blk_lat_us", k.blk_lat_us},
      {"net_rx_bytes", k.net_rx_bytes},
      {"net_tx_bytes", k.net_tx_bytes},
      {"net_rx_pkts", k.net_rx_pkts},
      {"net_tx_pkts", k.net_tx_pkts},
      {"net_rx_drops", k.net_rx_drops},
      {"net_tx_drops", k.net_tx_drops},
      {"net_rx_policed_bytes", k.net_rx_policed_bytes},
      {"net_tx_policed_bytes", k.net_tx_policed_bytes},
      {"mem_major_faults", k.mem_major_faults},
      {"mem_minor_faults", k.mem_minor_faults},
      {"mem_rss_bytes", k.mem_rss_bytes},
      {"mem_balloon_kib", k.mem_balloon_kib},
  };
}

std::string kpis_to_text(const kpi::VmKpis& k) {
  auto kib_per_s = [&](uint64_t bytes) { return kpi::per_second(bytes, k.interval_ns) / 1024; };
  char line[512];
  std::snprintf(line, sizeof(line),
                "%-20s cpu %6.1f%% wait %6.1f%% thr %6.1fms | blk r %8.1fKiB/s w %8.1fKiB/s %6.0f iops | "
                "net rx %8.1fKiB/s tx %8.1fKiB/s drops %llu/%llu | flt maj %llu min %llu rss %lluMiB\n",
                k.name.c_str(), 100.0 * kpi::cpu_share(k.cpu_run_ns, k.interval_ns), 100.0 * kpi::runq_wait_share(k),
                double(k.cpu_throttled_ns) / 1e6, kib_per_s(k.blk_read_bytes), kib_per_s(k.blk_write_bytes),
                kpi::per_second(kpi::blk_ops(k), k.interval_ns), kib_per_s(k.net_rx_bytes), kib_per_s(k.net_tx_bytes),
                (unsigned long long)k.net_rx_drops, (unsigned long long)k.net_tx_drops,
                (unsigned long long)k.mem_major_faults, (unsigned long long)k.mem_minor_faults,
                (unsigned long long)(k.mem_rss_bytes >> 20));
  return line;
}

Status run_kpis(KpiProbes& probes, VmSource& source, const KpisCommandOptions& options, std::ostream& out,
                const volatile bool* stop) {
  return run_kpi_loop(
      probes, source, {options.interval, options.count},
      [&](const std::vector<kpi::VmKpis>& kpis, uint64_t ts) {
        for (const kpi::VmKpis& k : kpis) out << (options.json ? kpis_to_json(k, ts).dump() + '\n' : kpis_to_text(k));
        out.flush();
      },
      stop);
}

namespace {

struct KpisArgs {
  std::string interval = "1s";
  uint64_t count = 0;
  bool json = false;
  bool raw_tp = false;
  std::vector<std::string> vms;  // NAME:CGROUP_PATH[:TAP,...]; empty = the VMs libvirt runs
};

volatile bool g_stop = false;
void on_signal(int) {
  g_stop = true;
}

// VMs from libvirt through the inventory; --vm replaces it for hosts without libvirtd.
Result<std::unique_ptr<VmSource>> vm_source(const KpisArgs& args, const ProbeOptions& popts) {
  if (!args.vms.empty()) {
    MORPH_TRY_ASSIGN(StaticVmSource s, StaticVmSource::parse(args.vms, popts.cgroup2_root));
    return std::unique_ptr<VmSource>(std::make_unique<StaticVmSource>(std::move(s)));
  }
  auto inv = Inventory::open();
  if (!inv) return std::move(inv).error().with_context("VM source");
  return std::unique_ptr<VmSource>(
      std::make_unique<InventoryVmSource>(std::shared_ptr<Inventory>(std::move(inv).value())));
}

int run_kpis_command(const KpisArgs& args) {
  auto interval = parse_interval(args.interval);
  if (!interval) {
    spdlog::error("{}", interval.error().what());
    return 2;
  }
  ProbeOptions popts;
  auto source = vm_source(args, popts);
  if (!source) {
    spdlog::error("{}", source.error().what());
    return args.vms.empty() ? 1 : 2;
  }
  // The policer's maps are read from their pins, so its drops are those of the limits set on this host; a
  // look at the KPIs creates no policer state of its own.
  BpfRuntimeOptions bopts;
  bopts.policer_pinned_only = true;
  bopts.kpi_programs.force_raw_tp = args.raw_tp;
  auto bpf = BpfRuntime::load(bopts);
  auto probes = bpf ? KpiProbes::create(*bpf, popts) : Result<std::unique_ptr<KpiProbes>>(bpf.error());
  if (!probes) {
    spdlog::error("{}", probes.error().what());
    return 1;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  KpisCommandOptions opts{*interval, args.count, args.json};
  if (auto st = run_kpis(**probes, **source, opts, std::cout, &g_stop); !st) {
    spdlog::error("{}", st.error().what());
    return 1;
  }
  return 0;
}

}  // namespace

void add_kpis(AgentCommands& c) {
  auto args = std::make_shared<KpisArgs>();
  auto* cmd = c.app().add_subcommand("kpis", "print per-VM KPIs from the BPF probes every interval");
  cmd->add_option("--interval", args->interval, "interval, e.g. 1s or 250ms (minimum 100ms)");
  cmd->add_option("--count", args->count, "intervals to print (0: until interrupted)");
  cmd->add_flag("--json", args->json, "one JSON object per VM per interval");
  cmd->add_flag("--raw-tp", args->raw_tp, "use the raw_tp programs even where tp_btf works");
  cmd->add_option("--vm", args->vms,
                  "measure this cgroup as a VM instead of asking libvirt: NAME:CGROUP_PATH[:TAP,...]");
  c.on(cmd, [args] { return run_kpis_command(*args); });
}

}  // namespace morph::agent::cli
