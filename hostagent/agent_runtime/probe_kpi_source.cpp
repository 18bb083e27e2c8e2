#include "hostagent/agent_runtime/probe_kpi_source.h"

#include <spdlog/spdlog.h>

#include "common/kpi/derived.h"
#include "common/msg/wire.h"

namespace morph::agent {

namespace {
// With events, list() is only a safety net (lost events, hot-plugged cgroups): once per this many intervals.
constexpr uint64_t kReconcileEveryIntervals = 30;
}  // namespace

struct ProbeKpiSource::Gauges {
  metrics::Family<metrics::Gauge>* cpu_run;
  metrics::Family<metrics::Gauge>* cpu_wait;
  metrics::Family<metrics::Gauge>* cpu_throttled;
  metrics::Family<metrics::Gauge>* blk_read;
  metrics::Family<metrics::Gauge>* blk_write;
  metrics::Family<metrics::Gauge>* net_rx;
  metrics::Family<metrics::Gauge>* net_tx;
  metrics::Family<metrics::Gauge>* net_drops;
  metrics::Family<metrics::Gauge>* rss;
  metrics::Family<metrics::Gauge>* balloon;
  std::vector<metrics::Family<metrics::Gauge>*> all() const {
    return {cpu_run, cpu_wait, cpu_throttled, blk_read, blk_write, net_rx, net_tx, net_drops, rss, balloon};
  }
};

ProbeKpiSource::ProbeKpiSource(std::unique_ptr<KpiProbes> probes, std::unique_ptr<VmSource> source,
                               metrics::Registry& r)
    : probes_(std::move(probes)), source_(std::move(source)), registry_(r) {
  const std::vector<std::string> l{"vm"};
  gauges_ = std::make_unique<Gauges>(Gauges{
      &r.gauge("morph_agent_vm_cpu_run_ratio", "Share of one host CPU the VM ran in the last interval", l),
      &r.gauge("morph_agent_vm_cpu_wait_ratio",
               "Run-queue wait share: of the time the VM's threads were runnable, the part spent waiting", l),
      &r.gauge("morph_agent_vm_cpu_throttled_ratio", "Share of the last interval the VM was CFS-throttled", l),
      &r.gauge("morph_agent_vm_disk_read_bytes_per_second", "Block bytes read per second", l),
      &r.gauge("morph_agent_vm_disk_write_bytes_per_second", "Block bytes written per second", l),
      &r.gauge("morph_agent_vm_net_rx_bytes_per_second", "Bytes the guest received per second", l),
      &r.gauge("morph_agent_vm_net_tx_bytes_per_second", "Bytes the guest sent per second", l),
      &r.gauge("morph_agent_vm_net_drops_per_second", "Packets dropped per second (both directions)", l),
      &r.gauge("morph_agent_vm_memory_rss_bytes", "Resident memory of the VM's cgroup", l),
      &r.gauge("morph_agent_vm_memory_balloon_bytes", "Balloon size in force", l),
  });
  registry_.gauge("morph_agent_vms", "VMs the probes measure").with({});
}

ProbeKpiSource::~ProbeKpiSource() {
  source_->watch(nullptr);
}

Status ProbeKpiSource::start() {
  auto q = queue_;
  events_ = source_->watch([q](VmChange c) {
    std::lock_guard lk(q->mu);
    q->changes.push_back(std::move(c));
  });
  reconcile();
  if (probes_->vm_count() == 0) spdlog::warn("no VMs to measure yet");
  return {};
}

std::vector<VmInfo> ProbeKpiSource::vms() const {
  std::lock_guard lk(vms_mu_);
  std::vector<VmInfo> out;
  for (auto& [_, vm] : vms_) out.push_back(vm);
  return out;
}

std::string ProbeKpiSource::signature() const {
  std::lock_guard lk(vms_mu_);
  std::string s;
  for (auto& [uuid, vm] : vms_)
    s += uuid + '/' + vm.name + '/' + std::to_string(vm.baseline.vcpus) + '/' + std::to_string(vm.baseline.memory_kib) +
         '/' + vm.ownership.owner + '/' + vm.ownership.sla_class + ';';
  return s;
}

void ProbeKpiSource::reconcile() {
  auto vms = source_->list();
  if (!vms) {
    spdlog::warn("listing VMs: {}", vms.error().what());  // keep the registered set until it answers
    return;
  }
  (void)probes_->sync(*vms);  // per-VM failures are logged by sync
  if (auto st = probes_->refresh_cgroups(); !st) spdlog::warn("{}", st.error().what());
  std::lock_guard lk(vms_mu_);
  vms_.clear();
  for (auto& vm : *vms) vms_[vm.uuid] = vm;
}

bool ProbeKpiSource::apply_changes() {
  std::vector<VmChange> changes;
  {
    std::lock_guard lk(queue_->mu);
    changes.swap(queue_->changes);
  }
  bool resync = false;
  for (VmChange& c : changes) {
    if (c.kind == VmChange::Kind::resync) {
      resync = true;
    } else if (c.kind == VmChange::Kind::remove) {
      if (auto st = probes_->remove_vm(c.vm.uuid); !st && st.error().code() != Errc::not_found)
        spdlog::warn("vm={} name={}: {}", c.vm.uuid, c.vm.name, st.error().what());
      std::lock_guard lk(vms_mu_);
      vms_.erase(c.vm.uuid);
      spdlog::info("vm={} name={} gone; no longer measured", c.vm.uuid, c.vm.name);
    } else if (auto st = probes_->update_vm(c.vm); !st) {
      spdlog::warn("vm={} name={}: {}", c.vm.uuid, c.vm.name, st.error().what());
    } else {
      std::lock_guard lk(vms_mu_);
      vms_[c.vm.uuid] = c.vm;
      spdlog::info("vm={} name={} measured", c.vm.uuid, c.vm.name);
    }
  }
  return resync;
}

Result<std::vector<kpi::VmKpis>> ProbeKpiSource::collect(uint64_t interval_ns) {
  (void)interval_ns;  // the probes measure the real interval since their last read
  const std::string before = signature();
  const bool resync = apply_changes();
  if (resync || !events_ || ++intervals_ % kReconcileEveryIntervals == 0)
    reconcile();
  else if (auto st = probes_->refresh_cgroups(); !st)
    spdlog::warn("{}", st.error().what());
  if (changed_ && signature() != before) changed_(vms());
  MORPH_TRY_ASSIGN(auto kpis, probes_->read());
  // A VM that joined just before this read has a sliver of an interval (seen: 0.7-0.9 ms when another VM
  // started). The controller's decoder refuses a report holding a VM interval under half the minimum, and
  // with it every other VM's KPIs: leave the sliver out (its counts are a few ms of a new VM's life).
  std::erase_if(kpis, [](const kpi::VmKpis& k) {
    const bool sliver = k.interval_ns != 0 && k.interval_ns < msg::Limits::kMinIntervalNs / 2;
    if (sliver) spdlog::debug("vm={} left out of this report: measured for only {} ns", k.uuid, k.interval_ns);
    return sliver;
  });
  for (kpi::VmKpis& k : kpis)
    if (auto kib = source_->balloon_kib(k.uuid)) k.mem_balloon_kib = *kib;
  export_kpis(kpis);
  return kpis;
}

void ProbeKpiSource::export_kpis(const std::vector<kpi::VmKpis>& kpis) {
  std::map<std::string, std::string> now;
  for (const kpi::VmKpis& k : kpis) {
    const std::string name = k.name.empty() ? k.uuid : k.name;
    now[k.uuid] = name;
    auto per_s = [&](uint64_t count) { return kpi::per_second(count, k.interval_ns); };
    const metrics::LabelValues l{name};
    gauges_->cpu_run->with(l)->set(kpi::cpu_share(k.cpu_run_ns, k.interval_ns));
    gauges_->cpu_wait->with(l)->set(kpi::runq_wait_share(k));
    gauges_->cpu_throttled->with(l)->set(kpi::cpu_share(k.cpu_throttled_ns, k.interval_ns));
    gauges_->blk_read->with(l)->set(per_s(k.blk_read_bytes));
    gauges_->blk_write->with(l)->set(per_s(k.blk_write_bytes));
    gauges_->net_rx->with(l)->set(per_s(k.net_rx_bytes));
    gauges_->net_tx->with(l)->set(per_s(k.net_tx_bytes));
    gauges_->net_drops->with(l)->set(per_s(kpi::net_drops(k)));
    gauges_->rss->with(l)->set(double(k.mem_rss_bytes));
    gauges_->balloon->with(l)->set(double(k.mem_balloon_kib) * 1024);
  }
  for (auto& [uuid, name] : exported_)
    if (!now.count(uuid))
      for (auto* f : gauges_->all()) f->remove({name});
  exported_ = std::move(now);
  registry_.gauge("morph_agent_vms", "VMs the probes measure").with({})->set(double(kpis.size()));
}

}  // namespace morph::agent
