// SPDX-License-Identifier: GPL-2.0
// CPU and memory-fault KPIs per VM: on-CPU time, run-queue delay (sum and log2 µs histogram), and minor /
// major page faults, from sched_switch alone on kernels with sched_info (CONFIG_SCHED_INFO, which
// delay accounting and schedstat need; every distribution kernel has it). tp_btf programs by default; the
// *_raw twins are the raw_tp fallback, chosen by user space with bpf_program__set_autoload before load.
// Both run one body (on_switch) and differ only in how they read the task and find its VM.
//
// sched_switch reads no clock:
//  - switch-in of any task: its thread id and slot go to the per-CPU morph_cpu_state; for a VM's task also
//    its se.sum_exec_runtime and fault counters, and its run-queue wait: the growth of its
//    sched_info.run_delay since its previous switch-in, counting the wait in progress (rq clock -
//    sched_info.last_queued, the kernel's own enqueue stamp, which sched_info_arrive adds right after
//    this tracepoint on the same clock value). One task-storage access: the task's run_delay baseline, so
//    the part of a wait that the kernel folds into run_delay when it moves a waiting task to another CPU
//    is counted too;
//  - switch-out of a VM's task: CPU time and faults are the growth of its own counters since its
//    switch-in (update_curr has run before the tracepoint), from the baselines in morph_cpu_state.
// The incoming task's slot comes from a per-CPU one-entry cache (cgroup id -> slot), else from cgroup
// local storage (the raw_tp twin: the cgroup_slots hash). So a switch to a task outside every VM costs one
// per-CPU lookup, the cgroup-id loads and at most one storage lookup; a VM's switch adds one vm_stats
// lookup per side, the task-storage access and a few loads.
//
// Kernels without sched_info keep the wakeup fallback: sched_wakeup / sched_wakeup_new (and a preempted
// task at sched_switch) stamp bpf_ktime_get_ns in per-task state, switch-in takes the difference. User
// space loads the wakeup programs only then (use_sched_info = false).
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "core_fixes.bpf.h"
#include "kpi.bpf.h"

#define TASK_RUNNING 0

// Set by user space before load.
const volatile bool count_faults = true;
const volatile bool use_sched_info = true;     // run-queue wait from sched_info, no wakeup programs
const volatile bool use_cgrp_storage = true;   // tp_btf: slot from cgroup local storage, not cgroup_slots
const volatile bool use_runq_baseline = true;  // sched_info: per-task run_delay baseline (waits cut by a move)

// Bumped by the agent after every change to the cgroup -> slot maps: invalidates the per-CPU slot caches.
volatile __u32 slot_gen;

// cgroup -> VM slot, set by the agent on every cgroup of a VM (the same ones as cgroup_slots).
struct {
  __uint(type, BPF_MAP_TYPE_CGRP_STORAGE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, int);
  __type(value, __u32);
} cgroup_slot_storage SEC(".maps");

// Per-task state: the run_delay baseline (sched_info), or enqueue stamps (wakeup fallback). Task storage
// under tp_btf, pid-keyed under raw_tp.
struct {
  __uint(type, BPF_MAP_TYPE_TASK_STORAGE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, int);
  __type(value, struct morph_task_state);
} task_state SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, __u32);  // pid (thread id)
  __type(value, struct morph_task_state);
} task_state_by_pid SEC(".maps");

static __always_inline struct morph_cpu_state* this_cpu_state(void) {
  __u32 zero = 0;

  return bpf_map_lookup_elem(&cpu_state, &zero);
}

// Reads one task field: a direct (CO-RE relocated) load from tp_btf's typed pointer, a probe read from
// raw_tp's. `raw` is a constant in every caller, so each program keeps one of the two.
#define TASK_READ(raw, t, field) ((raw) ? BPF_CORE_READ(t, field) : (t)->field)

static __always_inline __u32 task_slot(struct task_struct* t, bool raw) {
  if (!raw && use_cgrp_storage) {
    __u32* slot = bpf_cgrp_storage_get(&cgroup_slot_storage, t->cgroups->dfl_cgrp, 0, 0);

    return slot ? *slot : MORPH_NO_SLOT;
  }
  return morph_slot_of_cgroup(raw ? BPF_CORE_READ(t, cgroups, dfl_cgrp, kn, id) : t->cgroups->dfl_cgrp->kn->id);
}

// The rq clock of this CPU, through the incoming (CFS) task's own run queue: it was picked from this CPU's,
// so se.cfs_rq->rq is this CPU's rq (the `runqueues` per-CPU symbol would need CONFIG_KALLSYMS_ALL).
// The slot of the incoming task, through a one-entry per-CPU cache keyed by cgroup id: a CPU that runs one
// VM thread between idle periods (or threads of one cgroup in turn) needs no lookup.
static __always_inline __u32 next_slot_of(struct morph_cpu_state* cs, struct task_struct* next, bool raw, __u32 gen) {
  __u64 cgid = raw ? BPF_CORE_READ(next, cgroups, dfl_cgrp, kn, id) : next->cgroups->dfl_cgrp->kn->id;
  __u32 slot;

  if (cgid == cs->cgid && gen == cs->cgid_gen) return cs->cgid_slot;
  slot = raw ? morph_slot_of_cgroup(cgid) : task_slot(next, raw);
  cs->cgid = cgid;
  cs->cgid_slot = slot;
  cs->cgid_gen = gen;
  return slot;
}

static __always_inline __u64 rq_clock_of(struct task_struct* next, bool raw) {
  return raw ? BPF_CORE_READ(next, se.cfs_rq, rq, clock) : next->se.cfs_rq->rq->clock;
}

static __always_inline __u64 last_queued_of(struct task_struct* t, bool raw) {
  if (!bpf_core_field_exists(t->sched_info.last_queued)) return 0;
  return TASK_READ(raw, t, sched_info.last_queued);
}

static __always_inline __u64 run_delay_of(struct task_struct* t, bool raw) {
  if (!bpf_core_field_exists(t->sched_info.run_delay)) return 0;
  return TASK_READ(raw, t, sched_info.run_delay);
}

static __always_inline struct morph_task_state* task_state_get(struct task_struct* t, bool raw, bool create) {
  if (!raw) return bpf_task_storage_get(&task_state, t, 0, create ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);

  __u32 pid = BPF_CORE_READ(t, pid);
  struct morph_task_state* ts = bpf_map_lookup_elem(&task_state_by_pid, &pid);

  if (!ts && create) {
    struct morph_task_state zero = {};

    bpf_map_update_elem(&task_state_by_pid, &pid, &zero, BPF_NOEXIST);
    ts = bpf_map_lookup_elem(&task_state_by_pid, &pid);
  }
  return ts;
}

static __always_inline int on_switch(struct task_struct* prev, struct task_struct* next, bool raw) {
  struct morph_cpu_state* cs = this_cpu_state();
  struct morph_vm_stats *prev_st = NULL, *next_st;
  struct morph_task_state* ts;
  __u32 prev_tid, next_tid, prev_slot, next_slot = MORPH_NO_SLOT, gen;

  if (!cs) return 0;
  gen = slot_gen;
  prev_tid = TASK_READ(raw, prev, pid);
  prev_slot = morph_prev_slot(cs, prev_tid, gen);
  if (prev_slot == MORPH_SLOT_UNKNOWN) {
    // Not known from this CPU's state (first switch after load, or the maps changed since its
    // switch-in): looked up. Its slice is measured from its switch-in when that was seen (its faults
    // only if it was a VM's then), else from prev_sum_exec_runtime (set by the kernel when it last
    // picked it), its faults then waiting for its next slice.
    prev_slot = task_slot(prev, raw);
    if (prev_slot != MORPH_NO_SLOT) {
      prev_st = morph_stats(prev_slot);
      if (cs->tid == prev_tid)
        morph_switch_out(prev_st, cs->since_runtime, TASK_READ(raw, prev, se.sum_exec_runtime),
                         count_faults && cs->slot != MORPH_NO_SLOT, cs->min_flt, cs->maj_flt,
                         TASK_READ(raw, prev, min_flt), TASK_READ(raw, prev, maj_flt));
      else
        morph_switch_out(prev_st, TASK_READ(raw, prev, se.prev_sum_exec_runtime),
                         TASK_READ(raw, prev, se.sum_exec_runtime), false, 0, 0, 0, 0);
    }
  } else if (prev_slot != MORPH_NO_SLOT) {
    prev_st = morph_stats(prev_slot);
    morph_switch_out(prev_st, cs->since_runtime, TASK_READ(raw, prev, se.sum_exec_runtime), count_faults, cs->min_flt,
                     cs->maj_flt, TASK_READ(raw, prev, min_flt), TASK_READ(raw, prev, maj_flt));
  }
  if (!use_sched_info && prev_slot != MORPH_NO_SLOT && morph_get_task_state(prev) == TASK_RUNNING) {
    // Wakeup fallback: preempted while runnable, it waits on the run queue from now.
    ts = task_state_get(prev, raw, true);
    if (ts) morph_runq_enqueue(ts, bpf_ktime_get_ns());
  }

  next_tid = TASK_READ(raw, next, pid);
  // The idle task (pid 0) is in no VM: no lookup.
  if (next_tid) next_slot = next_slot_of(cs, next, raw, gen);
  if (next_slot == MORPH_NO_SLOT) {
    morph_switch_in(cs, next_tid, MORPH_NO_SLOT, next_tid ? TASK_READ(raw, next, se.sum_exec_runtime) : 0, 0, 0);
    return 0;
  }
  morph_switch_in(cs, next_tid, next_slot, TASK_READ(raw, next, se.sum_exec_runtime), TASK_READ(raw, next, min_flt),
                  TASK_READ(raw, next, maj_flt));
  next_st = next_slot == prev_slot ? prev_st : morph_stats(next_slot);
  if (use_sched_info) {
    ts = use_runq_baseline ? task_state_get(next, raw, true) : NULL;
    morph_runq_arrive(next_st, ts, TASK_READ(raw, next, start_time), rq_clock_of(next, raw), last_queued_of(next, raw),
                      run_delay_of(next, raw));
  } else {
    ts = task_state_get(next, raw, false);
    if (ts) morph_runq_dequeue_st(next_st, ts, bpf_ktime_get_ns());
  }
  return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(morph_sched_switch, bool preempt, struct task_struct* prev, struct task_struct* next) {
  return on_switch(prev, next, false);
}

SEC("raw_tp/sched_switch")
int BPF_PROG(morph_sched_switch_raw, bool preempt, struct task_struct* prev, struct task_struct* next) {
  return on_switch(prev, next, true);
}

// Wakeup fallback: a VM task becomes runnable, it waits on the run queue from now.
static __always_inline int on_wakeup(struct task_struct* p, bool raw) {
  struct morph_task_state* ts;

  if (task_slot(p, raw) == MORPH_NO_SLOT) return 0;
  ts = task_state_get(p, raw, true);
  if (ts) morph_runq_enqueue(ts, bpf_ktime_get_ns());
  return 0;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(morph_sched_wakeup, struct task_struct* p) {
  return on_wakeup(p, false);
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(morph_sched_wakeup_new, struct task_struct* p) {
  return on_wakeup(p, false);
}

SEC("raw_tp/sched_wakeup")
int BPF_PROG(morph_sched_wakeup_raw, struct task_struct* p) {
  return on_wakeup(p, true);
}

SEC("raw_tp/sched_wakeup_new")
int BPF_PROG(morph_sched_wakeup_new_raw, struct task_struct* p) {
  return on_wakeup(p, true);
}

char LICENSE[] SEC("license") = "GPL";
