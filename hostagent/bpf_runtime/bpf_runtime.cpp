#include "hostagent/bpf_runtime/bpf_runtime.h"

#include <bpf/btf.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "morph_bpf.skel.h"

namespace morph::agent {
namespace {

// libbpf's own messages, into spdlog: warn and info levels; debug only at trace.
int libbpf_print(enum libbpf_print_level level, const char* fmt, va_list args) {
  char buf[1024];
  int n = std::vsnprintf(buf, sizeof(buf), fmt, args);
  if (n > 0 && buf[std::min<size_t>(n, sizeof(buf) - 1) - 1] == '\n') buf[std::min<size_t>(n, sizeof(buf) - 1) - 1] = 0;
  // The kernel's answer to creating a clsact qdisc that exists (NLM_F_EXCL), which libbpf prints as a
  // warning before returning -EEXIST; every caller here treats EEXIST as "already there".
  if (level == LIBBPF_WARN && std::strstr(buf, "Exclusivity flag on, cannot modify") != nullptr) level = LIBBPF_INFO;
  // Most of libbpf's messages carry their own "libbpf: " prefix; every one gets exactly one.
  const char* text = std::strncmp(buf, "libbpf: ", 8) == 0 ? buf + 8 : buf;
  switch (level) {
    case LIBBPF_WARN:
      spdlog::warn("libbpf: {}", text);
      break;
    case LIBBPF_INFO:
      spdlog::debug("libbpf: {}", text);
      break;
    case LIBBPF_DEBUG:
      spdlog::trace("libbpf: {}", text);
      break;
  }
  return n;
}

bool btf_has_typedef(const btf* vmlinux, const char* name) {
  return btf__find_by_name_kind(vmlinux, name, BTF_KIND_TYPEDEF) > 0;
}

// Whether struct `type` of the kernel's BTF has a member `member` (by name, top level).
bool btf_has_member(const btf* vmlinux, const char* type, const char* member) {
  int id = btf__find_by_name_kind(vmlinux, type, BTF_KIND_STRUCT);
  if (id <= 0) return false;
  const btf_type* t = btf__type_by_id(vmlinux, id);
  const btf_member* m = btf_members(t);
  for (int i = 0; i < btf_vlen(t); i++, m++)
    if (std::strcmp(btf__name_by_offset(vmlinux, m->name_off), member) == 0) return true;
  return false;
}

// Why the policer's maps pinned in `pin_dir` cannot be reused by this process; empty when they can. The
// kernel checks the pin file's mode on open (BPF_OBJ_GET), so the effective uid's access is what counts.
std::string pinned_policer_unusable(const std::string& pin_dir) {
  if (pin_dir.empty()) return "no pin directory";
  for (const char* name : {"policer_cfg", "policer_bucket", "policer_stats"}) {
    const std::string path = pin_dir + "/" + name;
    if (::faccessat(AT_FDCWD, path.c_str(), F_OK, AT_EACCESS) != 0)
      return path + " is not pinned (no agent has set a network limit on this host)";
    if (::faccessat(AT_FDCWD, path.c_str(), R_OK | W_OK, AT_EACCESS) != 0)
      return path + " belongs to another user (uid " + std::to_string(::geteuid()) + " may not open it)";
  }
  return {};
}

}  // namespace

Result<std::shared_ptr<BpfRuntime>> BpfRuntime::load(const BpfRuntimeOptions& options) {
  if (!options.kpi && !options.policer)
    return Error(Errc::invalid_argument, "a BPF runtime needs the KPI programs, the policer or both");
  libbpf_set_print(libbpf_print);

  btf* vmlinux = btf__load_vmlinux_btf();
  if (!vmlinux) return Error(Errc::unavailable, "kernel BTF (/sys/kernel/btf/vmlinux) is required for CO-RE", errno);
  KernelFeatures kernel;
  // tp_btf needs the tracepoint's btf_trace_* typedef in the kernel's BTF (5.5+).
  kernel.tp_btf = btf_has_typedef(vmlinux, "btf_trace_sched_switch");
  kernel.block_io_start = btf_has_typedef(vmlinux, "btf_trace_block_io_start");
  // CONFIG_SCHED_INFO: the kernel's own enqueue stamp and run delay per task. The rq clock is read through
  // the task's se.cfs_rq (CONFIG_FAIR_GROUP_SCHED, which cgroup CPU control needs).
  kernel.sched_info =
      btf_has_member(vmlinux, "sched_info", "last_queued") && btf_has_member(vmlinux, "sched_entity", "cfs_rq");
  // BPF_MAP_TYPE_CGRP_STORAGE (6.2+).
  kernel.cgrp_storage = btf_has_member(vmlinux, "cgroup", "bpf_cgrp_storage");
  btf__free(vmlinux);

  std::shared_ptr<BpfRuntime> rt(new BpfRuntime());
  bool with_policer = options.policer;
  if (with_policer && options.policer_pinned_only) {
    if (std::string why = pinned_policer_unusable(options.pin_dir); !why.empty()) {
      if (!options.kpi) return Error(Errc::unavailable, why);
      rt->policer_error_ = why;
      spdlog::info("BPF: no policer drops to read: {}", why);
      with_policer = false;
    }
  }
  Status loaded = rt->open_and_load(options, kernel, with_policer);
  if (!loaded && options.kpi && with_policer) {
    // The KPI programs do not need the policer: measure without it, as with no policer at all (network
    // shifts are then refused). Whatever failed, a second failure below is the KPI programs' own.
    rt->policer_error_ = loaded.error().what();
    spdlog::warn("BPF: loading without the network policer: {}", rt->policer_error_);
    loaded = rt->open_and_load(options, kernel, false);
  }
  if (!loaded) return std::move(loaded).error();

  std::string what;
  if (const KpiObjects* k = rt->kpi())
    what = fmt::format("KPI programs ({}, run-queue wait from {}, slots by {}, block start at {}, faults {})",
                       k->raw_tp ? "raw_tp" : "tp_btf", k->sched_info ? "sched_info" : "wakeup",
                       k->cgrp_storage ? "cgroup storage" : "cgroup-id hash", k->block_start,
                       k->count_faults ? "on" : "off");
  if (const PolicerObjects* p = rt->policer())
    what += fmt::format("{}policer (maps {})", what.empty() ? "" : ", ",
                        p->pin_dir.empty() ? "not pinned" : "pinned in " + p->pin_dir);
  spdlog::info("BPF object loaded once: {}", what);
  return rt;
}

void BpfRuntime::choose_kpi_programs(const KpiProgramOptions& options, const KernelFeatures& kernel, KpiObjects& k) {
  k.raw_tp = options.force_raw_tp || !kernel.tp_btf;
  k.sched_info = options.sched_info && kernel.sched_info;
  k.cgrp_storage = !k.raw_tp && kernel.cgrp_storage;
  k.runq_baseline = options.runq_baseline;
  k.count_faults = options.count_faults;
  k.block_start = !options.block ? "none" : kernel.block_io_start ? "block_io_start" : "block_rq_issue";
  skel_->rodata->count_faults = options.count_faults;
  skel_->rodata->use_sched_info = k.sched_info;
  skel_->rodata->use_cgrp_storage = k.cgrp_storage;
  skel_->rodata->use_runq_baseline = options.runq_baseline;

  auto* pr = &skel_->progs;
  const bool raw = k.raw_tp;
  auto load = [](bpf_program* p, bool on) { bpf_program__set_autoload(p, on); };
  load(raw ? pr->morph_sched_switch_raw : pr->morph_sched_switch, true);
  // The wakeup programs only for the fallback without sched_info.
  load(raw ? pr->morph_sched_wakeup_raw : pr->morph_sched_wakeup, !k.sched_info);
  load(raw ? pr->morph_sched_wakeup_new_raw : pr->morph_sched_wakeup_new, !k.sched_info);
  // One submission-side program: block_io_start (submitter context, >= 6.5) else block_rq_issue.
  load(raw ? pr->morph_block_io_start_raw : pr->morph_block_io_start, options.block && kernel.block_io_start);
  load(raw ? pr->morph_block_rq_issue_raw : pr->morph_block_rq_issue, options.block && !kernel.block_io_start);
  load(raw ? pr->morph_block_rq_complete_raw : pr->morph_block_rq_complete, options.block);
  load(pr->morph_tc_tap_ingress, true);
  load(pr->morph_tc_tap_egress, true);
  // Task storage backs the tp_btf programs only; the raw_tp ones keep task state in a pid hash.
  bpf_map__set_autocreate(raw ? skel_->maps.task_state : skel_->maps.task_state_by_pid, false);
  // cgroup_slot_storage: referenced by the tp_btf sched_switch only. Where the kernel lacks the map type the
  // program keeps the reference in dead code (use_cgrp_storage is false), so a token array stands in.
  if (raw) {
    bpf_map__set_autocreate(skel_->maps.cgroup_slot_storage, false);
  } else if (!k.cgrp_storage) {
    bpf_map__set_type(skel_->maps.cgroup_slot_storage, BPF_MAP_TYPE_ARRAY);
    bpf_map__set_map_flags(skel_->maps.cgroup_slot_storage, 0);
    bpf_map__set_max_entries(skel_->maps.cgroup_slot_storage, 1);
  }
}

Status BpfRuntime::open_and_load(const BpfRuntimeOptions& options, const KernelFeatures& kernel, bool with_policer) {
  close();
  skel_ = morph_bpf__open();
  if (!skel_) return Error::from_errno("opening the BPF object");
  // Nothing loads or is created unless a part below asks for it.
  bpf_program* prog = nullptr;
  bpf_object__for_each_program(prog, skel_->obj) bpf_program__set_autoload(prog, false);
  auto* m = &skel_->maps;
  KpiObjects kpi;
  if (options.kpi) {
    choose_kpi_programs(options.kpi_programs, kernel, kpi);
  } else {
    for (bpf_map* map : {m->vm_stats, m->cgroup_slots, m->tap_slots, m->cpu_state, m->blk_inflight,
                         m->cgroup_slot_storage, m->task_state, m->task_state_by_pid})
      bpf_map__set_autocreate(map, false);
  }
  bpf_map* const pinned[] = {m->policer_cfg, m->policer_bucket, m->policer_stats};
  const std::string pin_dir = with_policer ? options.pin_dir : "";
  if (with_policer) {
    bpf_program__set_autoload(skel_->progs.policer_tap_ingress, true);
    bpf_program__set_autoload(skel_->progs.policer_tap_egress, true);
    bpf_program__set_autoload(skel_->progs.policer_test_verdict, options.policer_test_entry);
    if (!pin_dir.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(pin_dir, ec);
      if (ec) return Error(Errc::unavailable, "creating the BPF pin directory " + pin_dir, ec.value());
      // libbpf reuses a map pinned at the path when its type, sizes and flags match, else fails the load;
      // a map it creates is pinned there after the load (and unpinned again if the load fails).
      for (bpf_map* map : pinned) {
        const std::string path = pin_dir + "/" + bpf_map__name(map);
        if (int err = bpf_map__set_pin_path(map, path.c_str()); err)
          return Error::from_errno("setting pin path " + path, -err);
      }
    }
  } else {
    for (bpf_map* map : pinned) bpf_map__set_autocreate(map, false);
  }

  if (int err = morph_bpf__load(skel_); err) {
    std::string what = "loading the BPF programs (";
    if (options.kpi)
      what += std::string(kpi.raw_tp ? "raw_tp" : "tp_btf") + ", run-queue wait from " +
              (kpi.sched_info ? "sched_info" : "wakeup") + (with_policer ? ", " : "");
    if (with_policer) what += pin_dir.empty() ? "policer" : "policer with its maps pinned in " + pin_dir;
    return Error(Errc::unavailable, what + ")", -err);
  }

  if (options.kpi) {
    kpi.vm_stats = m->vm_stats;
    kpi.cgroup_slots = m->cgroup_slots;
    kpi.cgroup_slot_storage = kpi.cgrp_storage ? m->cgroup_slot_storage : nullptr;
    kpi.tap_slots = m->tap_slots;
    kpi.cpu_state = m->cpu_state;
    kpi.slot_gen = &skel_->bss->slot_gen;
    auto* pr = &skel_->progs;
    for (bpf_program* p : {pr->morph_sched_switch, pr->morph_sched_switch_raw, pr->morph_sched_wakeup,
                           pr->morph_sched_wakeup_new, pr->morph_sched_wakeup_raw, pr->morph_sched_wakeup_new_raw,
                           pr->morph_block_io_start, pr->morph_block_io_start_raw, pr->morph_block_rq_issue,
                           pr->morph_block_rq_issue_raw, pr->morph_block_rq_complete, pr->morph_block_rq_complete_raw})
      if (bpf_program__autoload(p)) kpi.tracing.push_back(p);
    kpi.tc_ingress = pr->morph_tc_tap_ingress;
    kpi.tc_egress = pr->morph_tc_tap_egress;
    kpi_ = std::move(kpi);
  }
  if (with_policer) {
    PolicerObjects pol;
    pol.cfg = m->policer_cfg;
    pol.bucket = m->policer_bucket;
    pol.stats = m->policer_stats;
    pol.tap_ingress = skel_->progs.policer_tap_ingress;
    pol.tap_egress = skel_->progs.policer_tap_egress;
    pol.test_verdict = options.policer_test_entry ? skel_->progs.policer_test_verdict : nullptr;
    pol.pin_dir = pin_dir;
    policer_ = std::move(pol);
  }
  return {};
}

void BpfRuntime::close() {
  kpi_.reset();
  policer_.reset();
  if (skel_) morph_bpf__destroy(skel_);
  skel_ = nullptr;
}

BpfRuntime::~BpfRuntime() {
  // Pinned maps stay pinned, and what users attached stays attached until they detach it: the policer's
  // tc filters on purpose (limits outlive the agent).
  close();
}

}  // namespace morph::agent
