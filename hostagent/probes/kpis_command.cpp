#include "hostagent/probes/kpis_command.h"

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <csignal>
#include <ctime>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <ostream>
#include <thread>

#include "common/kpi/derived.h"

namespace morph::agent {

Result<std::chrono::milliseconds> parse_interval(const std::string& text) {
  size_t pos = 0;
  double v = 0;
  try {
    v = std::stod(text, &pos);
  } catch (const std::exception&) {
    return Error(Errc::invalid_argument, "interval '" + text + "' is not a number with unit ms or s");
  }
  const std::string unit = text.substr(pos);
  double ms = 0;
  if (unit.empty() || unit == "s")
    ms = v * 1000;
  else if (unit == "ms")
    ms = v;
  else
    return Error(Errc::invalid_argument, "interval '" + text + "': unit must be ms or s");
  if (ms < double(kMinKpiInterval.count()))
    return Error(Errc::invalid_argument, "interval '" + text + "' is below the minimum of 100ms");
  return std::chrono::milliseconds(int64_t(ms));
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

namespace {
uint64_t realtime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

void print_text(const kpi::VmKpis& k, std::ostream& out) {
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
  out << line;
}
}  // namespace

namespace {
// Changes pushed by the source's thread, applied by the KPI loop (KpiProbes is single-threaded). Shared so
// that a callback still in flight after watch(nullptr) finds it alive.
struct ChangeQueue {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<VmChange> changes;
};

// With events, list() is only a safety net (and the answer to resync): once per this many intervals.
constexpr uint64_t kReconcileEveryIntervals = 30;
}  // namespace

Status run_kpis(KpiProbes& probes, VmSource& source, const KpisCommandOptions& options, std::ostream& out,
                const volatile bool* stop) {
  auto queue = std::make_shared<ChangeQueue>();
  const bool events = source.watch([queue](VmChange c) {
    {
      std::lock_guard lock(queue->mu);
      queue->changes.push_back(std::move(c));
    }
    queue->cv.notify_one();
  });
  struct Unwatch {
    VmSource& s;
    ~Unwatch() { s.watch(nullptr); }
  } unwatch{source};

  auto reconcile = [&]() -> Status {
    auto vms = source.list();
    if (!vms) {
      spdlog::warn("listing VMs: {}", vms.error().what());  // keep the registered set until it answers
      return {};
    }
    (void)probes.sync(*vms);  // per-VM failures are logged by sync
    return probes.refresh_cgroups();
  };
  // Applies queued changes; true when one asked for a full reconcile.
  auto apply_changes = [&]() {
    std::vector<VmChange> changes;
    {
      std::lock_guard lock(queue->mu);
      changes.swap(queue->changes);
    }
    bool resync = false;
    for (VmChange& c : changes) {
      if (c.kind == VmChange::Kind::resync) {
        resync = true;
      } else if (c.kind == VmChange::Kind::remove) {
        if (auto st = probes.remove_vm(c.vm.uuid); !st && st.error().code() != Errc::not_found)
          spdlog::warn("{}", st.error().what());
      } else if (auto st = probes.update_vm(c.vm); !st) {
        spdlog::warn("{}", st.error().what());
      }
    }
    return resync;
  };
  if (auto st = reconcile(); !st) spdlog::warn("{}", st.error().what());
  if (probes.vm_count() == 0) spdlog::warn("no VMs to measure yet");
  auto next = std::chrono::steady_clock::now();
  for (uint64_t n = 0; options.count == 0 || n < options.count; n++) {
    next += options.interval;
    // Sleep until the interval ends, registering and unregistering VMs as their events arrive: a VM
    // started now is in this interval's output (its first interval starts at registration).
    for (;;) {
      {
        std::unique_lock lock(queue->mu);
        queue->cv.wait_until(lock, next, [&] { return !queue->changes.empty() || (stop && *stop); });
      }
      if (apply_changes()) {
        if (auto st = reconcile(); !st) spdlog::warn("{}", st.error().what());
      }
      if (std::chrono::steady_clock::now() >= next || (stop && *stop)) break;
    }
    if (stop && *stop) break;
    MORPH_TRY_ASSIGN(auto kpis, probes.read());
    const uint64_t ts = realtime_ns();
    for (kpi::VmKpis& k : kpis) {
      if (auto kib = source.balloon_kib(k.uuid)) k.mem_balloon_kib = *kib;
      if (options.json)
        out << kpis_to_json(k, ts).dump() << '\n';
      else
        print_text(k, out);
    }
    out.flush();
    // Without events, new/gone VMs join or leave at interval boundaries; with them, list() is a safety
    // net. New cgroups of registered VMs (hot-plugged vCPUs) have no event: re-scan every interval.
    if (!events || (n + 1) % kReconcileEveryIntervals == 0) {
      if (auto st = reconcile(); !st) spdlog::warn("{}", st.error().what());
    } else if (auto st = probes.refresh_cgroups(); !st) {
      spdlog::warn("{}", st.error().what());
    }
  }
  return {};
}

std::shared_ptr<KpisCli> add_kpis_command(CLI::App& app) {
  auto cli = std::make_shared<KpisCli>();
  cli->command = app.add_subcommand("kpis", "print per-VM KPIs from the BPF probes every interval");
  cli->command->add_option("--interval", cli->interval, "interval, e.g. 1s or 250ms (minimum 100ms)");
  cli->command->add_option("--count", cli->count, "intervals to print (0: until interrupted)");
  cli->command->add_flag("--json", cli->json, "one JSON object per VM per interval");
  cli->command->add_flag("--raw-tp", cli->raw_tp, "use the raw_tp programs even where tp_btf works");
  cli->command->add_option("--vm", cli->vms,
                           "measure this cgroup as a VM instead of asking libvirt: NAME:CGROUP_PATH[:TAP,...]");
  return cli;
}

namespace {
volatile bool g_stop = false;
void on_signal(int) {
  g_stop = true;
}
}  // namespace

int run_kpis_command(const KpisCli& cli, const VmSourceFactory& default_source) {
  auto interval = parse_interval(cli.interval);
  if (!interval) {
    spdlog::error("{}", interval.error().what());
    return 2;
  }
  ProbeOptions popts;
  std::unique_ptr<VmSource> source;
  if (!cli.vms.empty()) {
    auto s = StaticVmSource::parse(cli.vms, popts.cgroup2_root);
    if (!s) {
      spdlog::error("{}", s.error().what());
      return 2;
    }
    source = std::make_unique<StaticVmSource>(std::move(s).value());
  } else {
    auto s =
        default_source ? default_source() : Result<std::unique_ptr<VmSource>>(Error(Errc::unavailable, "no VM source"));
    if (!s) {
      spdlog::error("VM source: {}", s.error().what());
      return 1;
    }
    source = std::move(s).value();
  }
  // The policer's maps are reused from their pins, so its drops are those of the limits set on this host.
  BpfRuntimeOptions bopts;
  bopts.kpi_programs.force_raw_tp = cli.raw_tp;
  auto bpf = BpfRuntime::load(bopts);
  auto probes = bpf ? KpiProbes::create(*bpf, popts) : Result<std::unique_ptr<KpiProbes>>(bpf.error());
  if (!probes) {
    spdlog::error("{}", probes.error().what());
    return 1;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  KpisCommandOptions opts{*interval, cli.count, cli.json};
  if (auto st = run_kpis(**probes, *source, opts, std::cout, &g_stop); !st) {
    spdlog::error("{}", st.error().what());
    return 1;
  }
  return 0;
}

}  // namespace morph::agent
