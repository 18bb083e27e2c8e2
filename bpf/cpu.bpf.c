// SPDX-License-Identifier: GPL-2.0
// CPU and memory-fault KPIs per VM: on-CPU time, run-queue delay (sum and log2 µs histogram), and minor /
// major page faults, from the scheduler tracepoints. tp_btf programs by default; the *_raw twins are the
// raw_tp fallback, chosen by user space with bpf_program__set_autoload before load.
//
// CPU time is the kernel's own charge (se.sum_exec_runtime growth over each slice), so it sums like the
// cgroup's CPU usage. Cost per event, for tasks outside every VM: one cgroup-id read chain and one hash lookup (sched_switch,
// sched_wakeup); none for a switch to the idle task. VM tasks add one task-storage access at wakeup and at
// switch-in, and one at switch-out only when the task is preempted (still runnable) or exits: a task that
// goes to sleep needs nothing at switch-out, its faults are sampled at its next wakeup instead.
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "kpi.bpf.h"

#define TASK_RUNNING 0
#define TASK_DEAD 0x80

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

// A VM task becomes runnable: it waits on the run queue from now. Its faults since it last ran (the slice
// that ended in sleep) are sampled here, where its state is at hand anyway.
static __always_inline void on_wakeup(__u32 slot, struct morph_task_state *ts, __u64 min_flt, __u64 maj_flt)
{
	morph_runq_enqueue(ts, bpf_ktime_get_ns());
	if (count_faults)
		morph_faults_sample_st(morph_stats(slot), ts, min_flt, maj_flt);
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(morph_sched_wakeup, struct task_struct *p)
{
	struct morph_task_state *ts;
	__u32 slot = morph_slot_of_cgroup(task_cgroup_id(p));

	if (slot == MORPH_NO_SLOT)
		return 0;
	ts = bpf_task_storage_get(&task_state, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (ts)
		on_wakeup(slot, ts, p->min_flt, p->maj_flt);
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

// The outgoing VM task: preempted while runnable, it waits on the run queue from now; preempted or exiting,
// its faults are sampled (a task going to sleep is sampled at its wakeup). Returns whether its state is
// needed, so the common case, a task going to sleep, costs no task-storage access.
static __always_inline bool switch_out_needs_state(long state)
{
	return state == TASK_RUNNING || (count_faults && (state & TASK_DEAD));
}

static __always_inline void on_switch_out(struct morph_vm_stats *st, struct morph_task_state *ts, long state,
					  __u64 now, __u64 min_flt, __u64 maj_flt)
{
	if (state == TASK_RUNNING)
		morph_runq_enqueue(ts, now);
	if (count_faults)
		morph_faults_sample_st(st, ts, min_flt, maj_flt);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(morph_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct morph_cpu_state *cs = this_cpu_state();
	struct morph_vm_stats *prev_st = NULL, *next_st;
	struct morph_task_state *ts;
	__u32 prev_slot, next_slot;
	long state;
	__u64 now;

	if (!cs)
		return 0;
	// The idle task (pid 0) is in no VM: skip its cgroup chain and map lookup.
	next_slot = next->pid ? morph_slot_of_cgroup(task_cgroup_id(next)) : MORPH_NO_SLOT;
	prev_slot = cs->slot;
	if (next_slot == MORPH_NO_SLOT && prev_slot == MORPH_NO_SLOT) {
		// Neither side is a VM's: nothing to credit (cs->since_ns is unused while slot is NO_SLOT).
		return 0;
	}
	now = bpf_ktime_get_ns();
	// One stats lookup per VM involved, shared by CPU time, faults and run-queue delay.
	if (prev_slot != MORPH_NO_SLOT)
		prev_st = morph_stats(prev_slot);
	morph_cpu_credit_runtime(prev_st, cs, now, prev->se.sum_exec_runtime, next_slot, next->se.sum_exec_runtime);
	if (prev_slot != MORPH_NO_SLOT) {
		state = task_state_of(prev);
		if (switch_out_needs_state(state)) {
			ts = bpf_task_storage_get(&task_state, prev, 0,
						  state == TASK_RUNNING ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
			if (ts)
				on_switch_out(prev_st, ts, state, now, prev->min_flt, prev->maj_flt);
		}
	}
	if (next_slot != MORPH_NO_SLOT) {
		ts = bpf_task_storage_get(&task_state, next, 0, 0);
		if (ts) {
			next_st = next_slot == prev_slot ? prev_st : morph_stats(next_slot);
			morph_runq_dequeue_st(next_st, ts, now);
		}
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
	__u32 slot = morph_slot_of_cgroup(task_cgroup_id_raw(p));

	if (slot == MORPH_NO_SLOT)
		return 0;
	ts = task_state_raw(p, true);
	if (ts)
		on_wakeup(slot, ts, BPF_CORE_READ(p, min_flt), BPF_CORE_READ(p, maj_flt));
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
	struct morph_task_state *ts;

	if (morph_slot_of_cgroup(task_cgroup_id_raw(p)) == MORPH_NO_SLOT)
		return 0;
	ts = task_state_raw(p, true);
	if (ts) {
		morph_runq_enqueue(ts, bpf_ktime_get_ns());
		ts->flt_valid = 1;
	}
	return 0;
}

SEC("raw_tp/sched_switch")
int BPF_PROG(morph_sched_switch_raw, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct morph_cpu_state *cs = this_cpu_state();
	struct morph_vm_stats *prev_st = NULL, *next_st;
	struct morph_task_state *ts;
	__u32 prev_slot, next_slot;
	long state;
	__u64 now;

	if (!cs)
		return 0;
	next_slot = BPF_CORE_READ(next, pid) ? morph_slot_of_cgroup(task_cgroup_id_raw(next)) : MORPH_NO_SLOT;
	prev_slot = cs->slot;
	if (next_slot == MORPH_NO_SLOT && prev_slot == MORPH_NO_SLOT)
		return 0;
	now = bpf_ktime_get_ns();
	if (prev_slot != MORPH_NO_SLOT)
		prev_st = morph_stats(prev_slot);
	morph_cpu_credit_runtime(prev_st, cs, now, BPF_CORE_READ(prev, se.sum_exec_runtime), next_slot,
				 BPF_CORE_READ(next, se.sum_exec_runtime));
	if (prev_slot != MORPH_NO_SLOT) {
		state = task_state_of(prev);
		if (switch_out_needs_state(state)) {
			ts = task_state_raw(prev, state == TASK_RUNNING);
			if (ts)
				on_switch_out(prev_st, ts, state, now, BPF_CORE_READ(prev, min_flt),
					      BPF_CORE_READ(prev, maj_flt));
		}
	}
	if (next_slot != MORPH_NO_SLOT) {
		ts = task_state_raw(next, false);
		if (ts) {
			next_st = next_slot == prev_slot ? prev_st : morph_stats(next_slot);
			morph_runq_dequeue_st(next_st, ts, now);
		}
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
