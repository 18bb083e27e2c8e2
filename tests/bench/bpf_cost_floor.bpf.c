// SPDX-License-Identifier: GPL-2.0
// The floor under Morph's sched_switch cost (tests/bench/bpf_cost_bench.cpp): each program adds one
// ingredient of bpf/cpu.bpf.c's switch path to an empty one, all attached to sched_switch at once, so
// their run_time_ns / run_cnt in the same windows give the price of each ingredient on this machine.
// Never loaded by the agent.
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} floor_cpu SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_CGRP_STORAGE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, int);
  __type(value, __u32);
} floor_cgrp SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1024);
  __type(key, __u64);
  __type(value, __u32);
} floor_hash SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_TASK_STORAGE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, int);
  __type(value, __u64);
} floor_task SEC(".maps");

// 1. Entry and exit of a tp_btf program (with bpf_stats' own two clock reads).
SEC("tp_btf/sched_switch")
int BPF_PROG(f1_empty, bool preempt, struct task_struct* prev, struct task_struct* next) {
  return 0;
}

// 2. + the per-CPU state lookup (cpu_state).
SEC("tp_btf/sched_switch")
int BPF_PROG(f2_percpu, bool preempt, struct task_struct* prev, struct task_struct* next) {
  __u32 zero = 0;
  __u64* v = bpf_map_lookup_elem(&floor_cpu, &zero);

  if (v) *v += next->pid;
  return 0;
}

// 3. + the incoming task's slot from cgroup local storage (a miss for a cgroup without storage).
SEC("tp_btf/sched_switch")
int BPF_PROG(f3_cgrp_store, bool preempt, struct task_struct* prev, struct task_struct* next) {
  __u32 zero = 0;
  __u64* v = bpf_map_lookup_elem(&floor_cpu, &zero);
  __u32* slot;

  if (!v) return 0;
  slot = bpf_cgrp_storage_get(&floor_cgrp, next->cgroups->dfl_cgrp, 0, 0);
  *v += slot ? *slot : 1;
  return 0;
}

// 3'. The same with the cgroup-id chain and a hash lookup instead (what the previous version did).
SEC("tp_btf/sched_switch")
int BPF_PROG(f3_hash, bool preempt, struct task_struct* prev, struct task_struct* next) {
  __u32 zero = 0;
  __u64* v = bpf_map_lookup_elem(&floor_cpu, &zero);
  __u64 id;
  __u32* slot;

  if (!v) return 0;
  id = next->cgroups->dfl_cgrp->kn->id;
  slot = bpf_map_lookup_elem(&floor_hash, &id);
  *v += slot ? *slot : 1;
  return 0;
}

// 4. A clock read (bpf_ktime_get_ns), which the new switch path no longer makes.
SEC("tp_btf/sched_switch")
int BPF_PROG(f4_ktime, bool preempt, struct task_struct* prev, struct task_struct* next) {
  __u32 zero = 0;
  __u64* v = bpf_map_lookup_elem(&floor_cpu, &zero);

  if (v) *v += bpf_ktime_get_ns();
  return 0;
}

// 5. A task-storage access (the previous version's per-task state), without creating.
SEC("tp_btf/sched_switch")
int BPF_PROG(f5_task_store, bool preempt, struct task_struct* prev, struct task_struct* next) {
  __u32 zero = 0;
  __u64* v = bpf_map_lookup_elem(&floor_cpu, &zero);
  __u64* ts;

  if (!v) return 0;
  ts = bpf_task_storage_get(&floor_task, next, 0, 0);
  *v += ts ? *ts : 1;
  return 0;
}

// 6. The loads of the new VM path: rq clock through se.cfs_rq, sched_info.last_queued, runtimes, faults.
SEC("tp_btf/sched_switch")
int BPF_PROG(f6_loads, bool preempt, struct task_struct* prev, struct task_struct* next) {
  __u32 zero = 0;
  __u64* v = bpf_map_lookup_elem(&floor_cpu, &zero);

  if (!v) return 0;
  *v += next->se.cfs_rq->rq->clock - next->sched_info.last_queued + prev->se.sum_exec_runtime +
        next->se.sum_exec_runtime + prev->min_flt + prev->maj_flt + next->min_flt + next->maj_flt;
  return 0;
}

// 7. The raw_tp entry, for comparison with 1.
SEC("raw_tp/sched_switch")
int BPF_PROG(f7_raw_empty, bool preempt, struct task_struct* prev, struct task_struct* next) {
  return 0;
}

char LICENSE[] SEC("license") = "GPL";
