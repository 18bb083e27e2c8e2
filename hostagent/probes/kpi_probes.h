#pragma once
// KpiProbes: the KPI side of the agent's BPF object. It takes the KPI programs and maps from the agent's one
// BpfRuntime (hostagent/bpf_runtime, which loads the object) and owns: attaching the tracing programs, the
// VM slot table, the cgroup-id -> slot and ifindex -> slot maps, the tc clsact filters of the KPI programs
// on VM taps, and the batched per-interval read of per-VM deltas into VmKpis, with the policer's drops read
// from the policer's map in the same runtime. It must never: load BPF itself, parse libvirt XML or talk to
// libvirt (VmInfo arrives resolved from a VmSource), touch another component's tc filters or qdiscs, write
// the policer's maps, or send per-event data to user space.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/kpi/vm_kpis.h"
#include "hostagent/bpf_runtime/bpf_runtime.h"
#include "hostagent/inventory/vm.h"

namespace morph::agent {

// What the probes read beside the BPF maps. How the programs measure is fixed when the runtime loads them
// (KpiProgramOptions).
struct ProbeOptions {
  std::string cgroup2_root = "/sys/fs/cgroup/unified";  // cgroup v2 mount (unified hierarchy)
  std::string cgroup1_root = "/sys/fs/cgroup";          // v1 controllers (cpu, memory) when not on v2
};

class KpiProbes {
 public:
  // Attaches the KPI programs of `runtime` (loaded with BpfRuntimeOptions::kpi). Errc::unavailable when the
  // runtime has no KPI programs or they cannot be attached here.
  static Result<std::unique_ptr<KpiProbes>> create(std::shared_ptr<BpfRuntime> runtime,
                                                   const ProbeOptions& options = {});
  ~KpiProbes();
  KpiProbes(const KpiProbes&) = delete;
  KpiProbes& operator=(const KpiProbes&) = delete;

  // Registers a running VM: allocates a slot, maps its cgroup and every descendant cgroup (vcpuN,
  // emulator, ...) and each resolved tap (ifindex != 0) to it, and attaches the tc programs to the taps.
  // Counters start from zero at this call. Errc::already_exists if the uuid is registered.
  Status add_vm(const VmInfo& vm);
  // Unregisters: unmaps, detaches the tc filters (tolerating a tap that is already gone), frees the slot.
  Status remove_vm(const std::string& uuid);
  // Registers `vm`, or re-registers it when its cgroup or taps differ from the registered ones (its
  // counters restart); nothing when it is registered unchanged. For lifecycle events.
  Status update_vm(const VmInfo& vm);
  // Makes the registered set equal to `vms`: adds new uuids, removes missing ones, re-adds a VM whose
  // cgroup or taps changed (its counters restart).
  Status sync(const std::vector<VmInfo>& vms);
  // Re-scans each VM's cgroup subtree and maps cgroups created since (e.g. a hot-plugged vCPU).
  Status refresh_cgroups();

  // Per-VM deltas since the previous read (or since add_vm), one batched map read for all VMs. Gauges
  // (mem_rss_bytes) are current values; mem_balloon_kib is left 0 (libvirt's, filled by the caller).
  Result<std::vector<kpi::VmKpis>> read();

  size_t vm_count() const { return vms_.size(); }
  const char* attach_mode() const { return kpi_->raw_tp ? "raw_tp" : "tp_btf"; }
  // Where run-queue wait comes from: "sched_info" (sched_switch only) or "wakeup" (the fallback).
  const char* runq_source() const {
    return !kpi_->sched_info ? "wakeup" : kpi_->runq_baseline ? "sched_info" : "sched_info (no baseline)";
  }
  const char* block_start_event() const { return kpi_->block_start; }

 private:
  struct Tap {
    std::string dev;
    uint32_t ifindex = 0;
    bool attached_ingress = false, attached_egress = false;
  };
  // Running totals of one VM as read from every source; deltas of two of these make a VmKpis.
  struct Totals {
    uint64_t cpu_run_ns = 0, cpu_wait_ns = 0, cpu_throttled_ns = 0;
    kpi::Log2Hist runq{}, blk{};
    uint64_t blk_read_bytes = 0, blk_write_bytes = 0, blk_read_ops = 0, blk_write_ops = 0;
    uint64_t net_rx_bytes = 0, net_tx_bytes = 0, net_rx_pkts = 0, net_tx_pkts = 0;
    uint64_t net_rx_drops = 0, net_tx_drops = 0;
    uint64_t net_rx_policed_bytes = 0, net_tx_policed_bytes = 0;
    uint64_t minor = 0, major = 0;
  };
  struct Vm {
    VmInfo info;
    uint32_t slot = 0;
    std::vector<uint64_t> cgroup_ids;
    std::vector<std::string> cgroup_dirs;  // those with cgroup_slot_storage set (by path)
    std::vector<Tap> taps;
    Totals last;
    uint64_t last_ns = 0;
  };

  KpiProbes(std::shared_ptr<BpfRuntime> runtime, const ProbeOptions& options);
  Status attach();
  Status map_cgroups(Vm& vm);
  Status attach_tap(Tap& tap);
  void detach_tap(Tap& tap);
  void unregister(Vm& vm);
  void bump_slot_gen();
  // Totals of every registered VM, keyed by slot; `now_ns` is CLOCK_MONOTONIC at the read.
  Result<std::map<uint32_t, Totals>> read_totals(uint64_t& now_ns);
  void add_host_counters(const Vm& vm, Totals& t) const;

  std::shared_ptr<BpfRuntime> runtime_;
  const KpiObjects* kpi_;  // runtime_'s
  ProbeOptions options_;
  std::vector<bpf_link*> links_;  // the attached tracing programs
  std::vector<bool> slot_used_;
  std::map<std::string, Vm> vms_;  // by uuid
};

// Reads a "key value" file such as memory.stat or cpu.stat; missing keys are absent.
std::map<std::string, uint64_t> read_flat_keyed(const std::string& path);
// The cgroup v2 id of a cgroup directory (what bpf_get_current_cgroup_id() returns for its tasks).
Result<uint64_t> cgroup_id_of(const std::string& dir);

}  // namespace morph::agent
