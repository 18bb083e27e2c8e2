#pragma once
// ProbeKpiSource: the uplink's KpiSource over the BPF probes (KpiProbes) and a VmSource (libvirt through
// the inventory, or static cgroups). It owns the probes' registered set: it follows the source's lifecycle
// events (queued by the source's thread, applied on the uplink thread at collect(), since KpiProbes is
// single-threaded), reconciles with list() every 30 intervals, and tells its owner when the running set
// changed so the HostHello is sent again. It also keeps per-VM KPI gauges (label vm = name).
// It must never shift anything or talk to the controller.

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/metrics.h"
#include "hostagent/probes/kpi_probes.h"
#include "hostagent/probes/vm_source.h"
#include "hostagent/uplink/kpi_source.h"

namespace morph::agent {

class ProbeKpiSource final : public KpiSource {
 public:
  using VmsChanged = std::function<void(std::vector<VmInfo>)>;
  ProbeKpiSource(std::unique_ptr<KpiProbes> probes, std::unique_ptr<VmSource> source, metrics::Registry& registry);
  ~ProbeKpiSource() override;

  // Registers the running VMs and starts following the source's events. Call once, before collect().
  Status start();
  // The VMs registered now (by the last start/collect).
  std::vector<VmInfo> vms() const;
  // Called on the uplink thread (from collect) after the running set changed.
  void on_vms_changed(VmsChanged fn) { changed_ = std::move(fn); }

  Result<std::vector<kpi::VmKpis>> collect(uint64_t interval_ns) override;

 private:
  struct Gauges;
  void reconcile();
  bool apply_changes();  // true when a resync was asked
  void export_kpis(const std::vector<kpi::VmKpis>& kpis);
  std::string signature() const;

  std::unique_ptr<KpiProbes> probes_;
  std::unique_ptr<VmSource> source_;
  metrics::Registry& registry_;
  struct Queue {
    std::mutex mu;
    std::vector<VmChange> changes;
  };
  std::shared_ptr<Queue> queue_ = std::make_shared<Queue>();
  bool events_ = false;
  uint64_t intervals_ = 0;
  mutable std::mutex vms_mu_;
  std::map<std::string, VmInfo> vms_;            // by uuid
  std::map<std::string, std::string> exported_;  // uuid -> name with gauges
  std::unique_ptr<Gauges> gauges_;
  VmsChanged changed_;
};

}  // namespace morph::agent
