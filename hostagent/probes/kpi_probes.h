#pragma once
// KpiProbes: the one owner of Morph's BPF skeleton (bpf/*.bpf.c -> morph.bpf.o; skeleton morph_kpi_bpf.skel.h) in the
// agent. It owns: loading (tp_btf, or raw_tp where the kernel lacks it), attaching the tracing programs, the VM slot
// table, the cgroup-id -> slot and ifindex -> slot maps, the tc clsact filters on VM taps, and the batched per-interval
// read of per-VM deltas into VmKpis. It must never: parse libvirt XML or talk to libvirt (VmInfo arrives resolved from
// a VmSource), touch another component's tc filters or qdiscs, or send per-event data to user space.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/kpi/vm_kpis.h"
#include "hostagent/inventory/vm.h"

struct morph_kpi_bpf;

namespace morph::agent {

struct ProbeOptions {
  bool force_raw_tp = false;  // load the raw_tp programs even where tp_btf works (tests, old kernels)
  bool count_faults = true;   // sample task fault counters at switch-out
  // Run-queue wait from the kernel's sched_info (sched_switch alone) where the kernel has it; false forces
  // the wakeup fallback (sched_wakeup/sched_wakeup_new and per-task stamps), as on kernels without it.
  bool sched_info = true;
  // With sched_info: keep each VM thread's run_delay as of its last switch-in (one task-storage access per
  // VM switch-in, ~15 ns here), so the part of a wait before the kernel moved the waiting thread to
  // another CPU counts too. false: only the wait in progress at switch-in (cheaper, misses those parts).
  bool runq_baseline = true;
  bool block = true;                                    // block request programs
  std::string cgroup2_root = "/sys/fs/cgroup/unified";  // cgroup v2 mount (unified hierarchy)
  std::string cgroup1_root = "/sys/fs/cgroup";          // v1 controllers (cpu, memory) when not on v2
};

class KpiProbes {
 public:
  // Opens, configures, loads and attaches. Errc::unavailable when BPF cannot be loaded here.
  static Result<std::unique_ptr<KpiProbes>> create(const ProbeOptions& options = {});
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

  // Drops of the network policer (hostagent/shifter's NetPolicer, which loads the policer programs in its
  // own object): read() adds them to net_*_drops, and removes guest-rx drops from net_rx_* (our programs
  // count before the policer). Unset: no policer drops.
  struct PolicerCounts {
    uint64_t drop_packets = 0, drop_bytes = 0;
  };
  using PolicerSource = std::function<std::optional<PolicerCounts>(uint32_t ifindex, bool guest_rx)>;
  void set_policer_source(PolicerSource source) { policer_source_ = std::move(source); }

  size_t vm_count() const { return vms_.size(); }
  const char* attach_mode() const { return raw_tp_ ? "raw_tp" : "tp_btf"; }
  // Where run-queue wait comes from: "sched_info" (sched_switch only) or "wakeup" (the fallback).
  const char* runq_source() const {
    return !sched_info_ ? "wakeup" : options_.runq_baseline ? "sched_info" : "sched_info (no baseline)";
  }
  const char* block_start_event() const { return block_start_; }
  // The loaded skeleton, for tests and for sharing its maps (e.g. the policer's) with other components.
  const morph_kpi_bpf* skeleton() const { return skel_; }

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

  KpiProbes() = default;
  Status load(const ProbeOptions& options);
  Status map_cgroups(Vm& vm);
  Status attach_tap(Tap& tap);
  void detach_tap(Tap& tap);
  void unregister(Vm& vm);
  void bump_slot_gen();
  // Totals of every registered VM, keyed by slot; `now_ns` is CLOCK_MONOTONIC at the read.
  Result<std::map<uint32_t, Totals>> read_totals(uint64_t& now_ns);
  void add_host_counters(const Vm& vm, Totals& t) const;

  ProbeOptions options_;
  morph_kpi_bpf* skel_ = nullptr;
  bool raw_tp_ = false;
  bool sched_info_ = false;
  bool cgrp_storage_ = false;  // sched_switch finds slots in cgroup_slot_storage
  const char* block_start_ = "none";
  std::vector<bool> slot_used_;
  std::map<std::string, Vm> vms_;  // by uuid
  PolicerSource policer_source_;
};

// Where hostagent/shifter's NetPolicer pins its maps (its Options::pin_dir default).
inline constexpr const char* kPolicerPinDir = "/sys/fs/bpf/morph";
// A PolicerSource over the policer's pinned `policer_stats` map in `pin_dir`, opened on first use and
// re-tried while absent (no policer has run on this host yet: no drops).
KpiProbes::PolicerSource pinned_policer_source(const std::string& pin_dir);

// Reads a "key value" file such as memory.stat or cpu.stat; missing keys are absent.
std::map<std::string, uint64_t> read_flat_keyed(const std::string& path);
// The cgroup v2 id of a cgroup directory (what bpf_get_current_cgroup_id() returns for its tasks).
Result<uint64_t> cgroup_id_of(const std::string& dir);

}  // namespace morph::agent
