#pragma once
// SyntheticKpiSource: a stand-in KpiSource for `morph-agent run --synthetic-vms N` until the BPF probes are
// wired into the run mode: N made-up VMs ("<host>-vmI", stable UUIDs) with plausible, varying deltas. It is
// labelled as synthetic in the logs and in the VM names; it never claims to measure anything. With a demand
// file (--synthetic-demand) every VM's CPU demand (on-CPU time, millicores) is the number the file holds when
// the interval ends, so a test can drive a rise and a fall; an unreadable file leaves the made-up demand.

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "hostagent/inventory/vm.h"
#include "hostagent/uplink/kpi_source.h"

namespace morph::agent {

inline std::vector<VmInfo> synthetic_vms(const std::string& host, int n) {
  std::vector<VmInfo> vms;
  for (int i = 0; i < n; ++i) {
    VmInfo vm;
    char uuid[40];
    std::snprintf(uuid, sizeof(uuid), "00000000-0000-4000-8000-%012x",
                  static_cast<unsigned>(std::hash<std::string>{}(host) % 0xfffff) * 4096u + static_cast<unsigned>(i));
    vm.uuid = uuid;
    vm.name = host + "-synthetic-vm" + std::to_string(i);
    vm.libvirt_id = i + 1;
    vm.ownership.owner = "demo";
    // 16 vCPUs capped at 1000 mc: the ceiling is the synthetic host's whole 16 cores, so tests can exhaust
    // the host's supply with one VM's bids.
    vm.baseline = {16, 512 * 1024, 1024 * 1024, 1000};
    vms.push_back(vm);
  }
  return vms;
}

class SyntheticKpiSource final : public KpiSource {
 public:
  explicit SyntheticKpiSource(std::vector<VmInfo> vms, std::string demand_file = {})
      : vms_(std::move(vms)), demand_file_(std::move(demand_file)) {}
  Result<std::vector<kpi::VmKpis>> collect(uint64_t interval_ns) override {
    ++round_;
    long long demand_mc = -1;
    if (!demand_file_.empty()) {
      std::ifstream in(demand_file_);
      if (!(in >> demand_mc) || demand_mc < 0 || demand_mc > 1'000'000) demand_mc = -1;
    }
    std::vector<kpi::VmKpis> out;
    for (size_t i = 0; i < vms_.size(); ++i) {
      kpi::VmKpis k;
      k.uuid = vms_[i].uuid;
      k.name = vms_[i].name;
      k.interval_ns = interval_ns;
      uint64_t wobble = (round_ * 7919 + i * 104729) % 1000;
      k.cpu_run_ns = interval_ns / 4 + wobble * 1000;
      k.cpu_wait_ns = wobble * 500;
      if (demand_mc >= 0) {
        k.cpu_run_ns = interval_ns / 1000 * static_cast<uint64_t>(demand_mc);
        k.cpu_wait_ns = 0;
      }
      k.runq_lat_us[4] = 10 + wobble % 50;
      k.blk_read_bytes = 4096 * wobble;
      k.blk_read_ops = wobble;
      k.blk_lat_us[7] = wobble;
      k.net_rx_bytes = 1500 * wobble;
      k.net_rx_pkts = wobble;
      k.mem_rss_bytes = 256ull << 20;
      out.push_back(std::move(k));
    }
    return out;
  }

 private:
  std::vector<VmInfo> vms_;
  std::string demand_file_;
  uint64_t round_ = 0;
};

}  // namespace morph::agent
