// SPDX-License-Identifier: GPL-2.0
// CPU and memory-fault KPIs per VM: on-CPU time, run-queue delay (sum and log2 µs histogram), and minor /
// major page faults, from the scheduler tracepoints. tp_btf programs by default; the *_raw twins are the
// raw_tp fallback, chosen by user space with bpf_program__set_autoload before load.
//
// Cost per event, for tasks outside every VM: one cgroup-id read chain and one hash lookup (sched_switch,
// sched_wakeup). VM tasks add a task-storage access.
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "kpi.bpf.h"

#define TASK_RUNNING 0

// Set by user space before load.
const volatile bool count_faults = true;

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct morph_task_state);
} task_state SEC(".maps");

// raw_tp fallback: kernels without tp_btf have no task storage either.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);  // pid (thread id)
	__type(value, struct morph_task_state);
} task_state_by_pid SEC(".maps");

// task->__state was task->state before 5.14.
struct task_struct___o {
	volatile long int state;
} __attribute__((preserve_access_index));

static __always_inline long task_state_of(struct task_struct *t)
{
	if (bpf_core_field_exists(t->__state))
		return BPF_CORE_READ(t, __state);
	return BPF_CORE_READ((struct task_struct___o *)t, state);
}

static __always_inline struct morph_cpu_state *this_cpu_state(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&cpu_state, &zero);
}

/* ---- tp_btf: typed pointers, direct (CO-RE relocated) loads ---- */

static __always_inline __u64 task_cgroup_id(struct task_struct *t)
{
	return t->cgroups->dfl_cgrp->kn->id;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(morph_sched_wakeup, struct task_struct *p)
{
	struct morph_task_state *ts;

	if (morph_slot_of_cgroup(task_cgroup_id(p)) == MORPH_NO_SLOT)
		return 0;
	ts = bpf_task_storage_get(&task_state, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (ts) {
		morph_runq_enqueue(ts, bpf_ktime_get_ns());
		if (count_faults)
			morph_faults_baseline(ts, p->min_flt, p->maj_flt);
	}
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(morph_sched_wakeup_new, struct task_struct *p)
{
	struct morph_task_state *ts;

	if (morph_slot_of_cgroup(task_cgroup_id(p)) == MORPH_NO_SLOT)
		return 0;
	ts = bpf_task_storage_get(&task_state, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (ts) {
		morph_runq_enqueue(ts, bpf_ktime_get_ns());
		// fork zeroes the child's fault counters: its first slice's faults count too.
		ts->flt_valid = 1;
	}
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(morph_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct morph_cpu_state *cs = this_cpu_state();
	struct morph_task_state *ts;
	__u32 prev_slot, next_slot;
	__u64 now;

	if (!cs)
		return 0;
	next_slot = morph_slot_of_cgroup(task_cgroup_id(next));
	if (next_slot == MORPH_NO_SLOT && cs->slot == MORPH_NO_SLOT) {
		// Neither side is a VM's: nothing to credit (cs->since_ns is unused while slot is NO_SLOT).
		return 0;
	}
	now = bpf_ktime_get_ns();
	prev_slot = morph_cpu_switch(cs, now, next_slot);
	if (prev_slot != MORPH_NO_SLOT) {
		ts = bpf_task_storage_get(&task_state, prev, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (ts) {
			// Preempted while runnable: it waits on the run queue from now.
			if (task_state_of(prev) == TASK_RUNNING)
				morph_runq_enqueue(ts, now);
			if (count_faults)
				morph_faults_sample(prev_slot, ts, prev->min_flt, prev->maj_flt);
		}
	}
	if (next_slot != MORPH_NO_SLOT) {
		ts = bpf_task_storage_get(&task_state, next, 0, 0);
		if (ts)
			morph_runq_dequeue(next_slot, ts, now);
	}
	return 0;
}

/* ---- raw_tp fallback: untrusted pointers, probe reads, pid-keyed task state ---- */

static __always_inline __u64 task_cgroup_id_raw(struct task_struct *t)
{
	return BPF_CORE_READ(t, cgroups, dfl_cgrp, kn, id);
}

static __always_inline struct morph_task_state *task_state_raw(struct task_struct *t, bool create)
{
	__u32 pid = BPF_CORE_READ(t, pid);
	struct morph_task_state *ts = bpf_map_lookup_elem(&task_state_by_pid, &pid);

	if (!ts && create) {
		struct morph_task_state zero = {};

		bpf_map_update_elem(&task_state_by_pid, &pid, &zero, BPF_NOEXIST);
		ts = bpf_map_lookup_elem(&task_state_by_pid, &pid);
	}
	return ts;
}

static __always_inline int on_wakeup_raw(struct task_struct *p)
{
	struct morph_task_state *ts;

	if (morph_slot_of_cgroup(task_cgroup_id_raw(p)) == MORPH_NO_SLOT)
		return 0;
	ts = task_state_raw(p, true);
	if (ts) {
		morph_runq_enqueue(ts, bpf_ktime_get_ns());
		if (count_faults)
			morph_faults_baseline(ts, BPF_CORE_READ(p, min_flt), BPF_CORE_READ(p, maj_flt));
	}
	return 0;
}

SEC("raw_tp/sched_wakeup")
int BPF_PROG(morph_sched_wakeup_raw, struct task_struct *p)
{
	return on_wakeup_raw(p);
}

SEC("raw_tp/sched_wakeup_new")
int BPF_PROG(morph_sched_wakeup_new_raw, struct task_struct *p)
{
	return on_wakeup_raw(p);
}

SEC("raw_tp/sched_switch")
int BPF_PROG(morph_sched_switch_raw, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct morph_cpu_state *cs = this_cpu_state();
	struct morph_task_state *ts;
	__u32 prev_slot, next_slot;
	__u64 now;

	if (!cs)
		return 0;
	next_slot = morph_slot_of_cgroup(task_cgroup_id_raw(next));
	if (next_slot == MORPH_NO_SLOT && cs->slot == MORPH_NO_SLOT)
		return 0;
	now = bpf_ktime_get_ns();
	prev_slot = morph_cpu_switch(cs, now, next_slot);
	if (prev_slot != MORPH_NO_SLOT) {
		ts = task_state_raw(prev, true);
		if (ts) {
			if (task_state_of(prev) == TASK_RUNNING)
				morph_runq_enqueue(ts, now);
			if (count_faults)
				morph_faults_sample(prev_slot, ts, BPF_CORE_READ(prev, min_flt),
						    BPF_CORE_READ(prev, maj_flt));
		}
	}
	if (next_slot != MORPH_NO_SLOT) {
		ts = task_state_raw(next, false);
		if (ts)
			morph_runq_dequeue(next_slot, ts, now);
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
