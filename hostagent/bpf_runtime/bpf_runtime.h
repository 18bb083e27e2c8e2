#pragma once
// BpfRuntime: the agent's one owner of the loaded BPF object (bpf/*.bpf.c linked into morph_bpf.bpf.o; its
// skeleton morph_bpf.skel.h is included by bpf_runtime.cpp alone). It owns, in this order: probing the
// kernel's features, opening the object, setting its rodata knobs, choosing which programs load (tp_btf or
// raw_tp, sched_info or the wakeup fallback, the block start event, the policer), pinning the maps that
// must outlive the agent under a configurable bpffs directory and reusing them when they are there,
// loading once, and routing libbpf's messages into spdlog. It then hands the loaded maps and programs to
// their users: KpiObjects to hostagent/probes, PolicerObjects to hostagent/shifter's NetPolicer, which
// share it (std::shared_ptr: the agent's KPI source outlives the host runtime that built it).
// It must never attach a program, read or write a map entry, or know what a VM is: that is its users'.
//
// A new program or map plugs in at three places: its bpf/*.bpf.c (shared BPF code in bpf/lib/), the
// choice of whether it loads in BpfRuntime::open_and_load, and a field of the view its user takes.

#include <bpf/libbpf.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"

struct morph_bpf;

namespace morph::agent {

// Where the maps that must outlive the agent are pinned unless configured (agent.bpf_pin_dir).
inline constexpr const char* kDefaultBpfPinDir = "/sys/fs/bpf/morph";

// How the KPI programs measure, fixed at load: rodata knobs and the choice of programs.
struct KpiProgramOptions {
  bool force_raw_tp = false;  // load the raw_tp programs even where tp_btf works (tests, old kernels)
  bool count_faults = true;   // sample task fault counters at switch-out
  // Run-queue wait from the kernel's sched_info (sched_switch alone) where the kernel has it; false forces
  // the wakeup fallback (sched_wakeup/sched_wakeup_new and per-task stamps), as on kernels without it.
  bool sched_info = true;
  // With sched_info: keep each VM thread's run_delay as of its last switch-in (one task-storage access per
  // VM switch-in, ~15 ns here), so the part of a wait before the kernel moved the waiting thread to
  // another CPU counts too. false: only the wait in progress at switch-in (cheaper, misses those parts).
  bool runq_baseline = true;
  bool block = true;  // block request programs
};

struct BpfRuntimeOptions {
  bool kpi = true;  // the KPI programs and maps (bpf/cpu, block, net.bpf.c), for hostagent/probes
  KpiProgramOptions kpi_programs;
  bool policer = true;              // the network policer (bpf/policer.bpf.c), for hostagent/shifter
  bool policer_test_entry = false;  // also policer_test_verdict, never attached (BPF_PROG_TEST_RUN)
  // bpffs directory of the maps that must outlive this process: the policer's, so limits in force stay
  // in force and a restarted agent reads them back. Maps found there are reused; missing ones are created
  // and pinned. Two agents on one kernel need two directories. Empty: nothing is pinned (tests).
  std::string pin_dir = kDefaultBpfPinDir;
  // Only to read what an agent's policer pinned (`morph-agent kpis` shows its drops): the policer loads
  // only when all its maps are pinned in pin_dir and this process may open them; otherwise it is left out
  // (policer_error() says why, at info level) and nothing is created or pinned.
  bool policer_pinned_only = false;
};

// The KPI programs' maps and programs, and what was chosen for this kernel.
struct KpiObjects {
  bpf_map* vm_stats = nullptr;             // per-CPU counters per VM slot
  bpf_map* cgroup_slots = nullptr;         // cgroup v2 id -> slot
  bpf_map* cgroup_slot_storage = nullptr;  // cgroup local storage -> slot; null unless cgrp_storage
  bpf_map* tap_slots = nullptr;            // tap ifindex -> slot
  bpf_map* cpu_state = nullptr;            // per CPU: the task switched in last
  // The mmapped global that invalidates sched_switch's per-CPU slot caches when bumped.
  volatile uint32_t* slot_gen = nullptr;
  std::vector<bpf_program*> tracing;  // the loaded scheduler and block programs, for their user to attach
  bpf_program* tc_ingress = nullptr;  // tap ingress hook: the guest transmits
  bpf_program* tc_egress = nullptr;   // tap egress hook: the guest receives
  bool raw_tp = false;                // raw_tp programs (no tp_btf on this kernel, or forced)
  bool sched_info = false;            // run-queue wait from sched_info; false: the wakeup programs
  bool runq_baseline = true;
  bool cgrp_storage = false;  // sched_switch finds slots in cgroup_slot_storage
  bool count_faults = true;
  const char* block_start = "none";  // "block_io_start", "block_rq_issue" or "none"
};

// The network policer's maps (pinned under pin_dir when it is set) and programs.
struct PolicerObjects {
  bpf_map* cfg = nullptr;     // (ifindex, direction) -> rate and burst
  bpf_map* bucket = nullptr;  // token buckets
  bpf_map* stats = nullptr;   // per-CPU passed/dropped packets and bytes
  bpf_program* tap_ingress = nullptr;
  bpf_program* tap_egress = nullptr;
  bpf_program* test_verdict = nullptr;  // only with BpfRuntimeOptions::policer_test_entry
  std::string pin_dir;                  // "" when not pinned
};

class BpfRuntime {
 public:
  // Probes the kernel, opens, configures and loads. Errc::unavailable when BPF cannot be loaded here.
  // With both the KPI programs and the policer asked for, a policer that cannot load (e.g. maps pinned by
  // an agent of another layout) leaves the KPI programs loaded: policer() is null and policer_error()
  // says why.
  static Result<std::shared_ptr<BpfRuntime>> load(const BpfRuntimeOptions& options = {});
  ~BpfRuntime();
  BpfRuntime(const BpfRuntime&) = delete;
  BpfRuntime& operator=(const BpfRuntime&) = delete;
  BpfRuntime(BpfRuntime&&) = delete;
  BpfRuntime& operator=(BpfRuntime&&) = delete;

  // Null when that part was not asked for (or, for the policer, could not load).
  const KpiObjects* kpi() const { return kpi_ ? &*kpi_ : nullptr; }
  const PolicerObjects* policer() const { return policer_ ? &*policer_ : nullptr; }
  // Why policer() is null; empty when it was not asked for.
  const std::string& policer_error() const { return policer_error_; }

 private:
  struct KernelFeatures {
    bool tp_btf = false, block_io_start = false, sched_info = false, cgrp_storage = false;
  };
  BpfRuntime() = default;
  Status open_and_load(const BpfRuntimeOptions& options, const KernelFeatures& kernel, bool with_policer);
  void choose_kpi_programs(const KpiProgramOptions& options, const KernelFeatures& kernel, KpiObjects& kpi);
  void close();

  morph_bpf* skel_ = nullptr;
  std::optional<KpiObjects> kpi_;
  std::optional<PolicerObjects> policer_;
  std::string policer_error_;
};

// A per-CPU map's value at `key`, one element per possible CPU. Errc::not_found when `key` is absent.
template <class V>
Result<std::vector<V>> lookup_percpu(const bpf_map* map, const void* key, size_t key_size) {
  const int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return Error::from_errno("counting possible CPUs", -ncpu);
  std::vector<V> out(static_cast<size_t>(ncpu));
  if (bpf_map__lookup_elem(map, key, key_size, out.data(), out.size() * sizeof(V), 0) != 0) {
    const int err = errno;
    if (err == ENOENT) return Error(Errc::not_found, std::string("no such key in ") + bpf_map__name(map), err);
    return Error::from_errno(std::string("reading ") + bpf_map__name(map), err);
  }
  return out;
}

}  // namespace morph::agent
