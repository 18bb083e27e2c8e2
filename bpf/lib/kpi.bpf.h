// SPDX-License-Identifier: GPL-2.0
// Maps and accounting helpers shared by the KPI programs. Maps are __weak so every *.bpf.c that includes
// this header refers to the same map after `bpftool gen object` links them.
//
// The helpers take plain values (slot, timestamps, counters, pointers to state) and never read kernel
// structures, so tests/bpf/kpi_helpers_test.bpf.c drives them under BPF_PROG_TEST_RUN.
#pragma once

#include "morph_kpi.h"
#include "bits.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MORPH_MAX_VMS);
	__type(key, __u32);
	__type(value, struct morph_vm_stats);
} vm_stats SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MORPH_MAX_CGROUPS);
	__type(key, __u64);   // cgroup v2 id
	__type(value, __u32); // slot
} cgroup_slots SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MORPH_MAX_TAPS);
	__type(key, __u32);   // ifindex
	__type(value, __u32); // slot
} tap_slots SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct morph_cpu_state);
} cpu_state SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MORPH_MAX_INFLIGHT_IO);
	__type(key, __u64);   // struct request *
	__type(value, struct morph_blk_start);
} blk_inflight SEC(".maps") __weak;

static __always_inline __u32 morph_slot_of_cgroup(__u64 cgid)
{
	__u32 *slot = bpf_map_lookup_elem(&cgroup_slots, &cgid);

	return slot ? *slot : MORPH_NO_SLOT;
}

static __always_inline __u32 morph_slot_of_ifindex(__u32 ifindex)
{
	__u32 *slot = bpf_map_lookup_elem(&tap_slots, &ifindex);

	return slot ? *slot : MORPH_NO_SLOT;
}

static __always_inline struct morph_vm_stats *morph_stats(__u32 slot)
{
	if (slot >= MORPH_MAX_VMS)
		return NULL;
	return bpf_map_lookup_elem(&vm_stats, &slot);
}

// A context switch on this CPU at `now`: credits the outgoing task's slice to `st` (the stats of the slot it
// was switched in with, NULL when not a VM's) and records the incoming slot. Callers look the outgoing
// slot's stats up once and reuse them for its faults and, when the incoming task is of the same VM, for
// its run-queue delay.
static __always_inline void morph_cpu_credit(struct morph_vm_stats *st, struct morph_cpu_state *cs, __u64 now,
					     __u32 next_slot)
{
	// Per-CPU value and non-reentrant tracepoint: plain adds, no atomics.
	if (st && cs->since_ns && now > cs->since_ns)
		st->cpu_run_ns += now - cs->since_ns;
	cs->since_ns = now;
	cs->slot = next_slot;
}

// As morph_cpu_credit, but the slice is the kernel's own charge to the outgoing task: the growth of its
// se.sum_exec_runtime since it was switched in (`prev_runtime` now, cs->since_runtime then). This is what
// cgroup CPU usage (libvirt's cpu.time) sums. It differs from timestamps at the switches where the kernel
// moves a slice boundary: a wakeup that preempts skips the clock update in __schedule, so the kernel
// charges the preemption latency to the woken task rather than the preempted one.
static __always_inline void morph_cpu_credit_runtime(struct morph_vm_stats *st, struct morph_cpu_state *cs, __u64 now,
						     __u64 prev_runtime, __u32 next_slot, __u64 next_runtime)
{
	if (st && cs->since_ns && prev_runtime > cs->since_runtime)
		st->cpu_run_ns += prev_runtime - cs->since_runtime;
	cs->since_ns = now;
	cs->since_runtime = next_runtime;
	cs->slot = next_slot;
}

// As morph_cpu_credit, looking the outgoing slot up itself. Returns the outgoing slot (MORPH_NO_SLOT when
// not a VM's).
static __always_inline __u32 morph_cpu_switch(struct morph_cpu_state *cs, __u64 now, __u32 next_slot)
{
	__u32 prev_slot = cs->slot;

	morph_cpu_credit(prev_slot != MORPH_NO_SLOT ? morph_stats(prev_slot) : NULL, cs, now, next_slot);
	return prev_slot;
}

static __always_inline void morph_runq_enqueue(struct morph_task_state *ts, __u64 now)
{
	ts->enqueued_ns = now;
}

// The task gets the CPU at `now`: its run-queue delay since the last enqueue goes to `st` (its VM's stats).
static __always_inline void morph_runq_dequeue_st(struct morph_vm_stats *st, struct morph_task_state *ts,
						  __u64 now)
{
	__u64 delta;

	if (!ts->enqueued_ns || now < ts->enqueued_ns)
		return;
	delta = now - ts->enqueued_ns;
	ts->enqueued_ns = 0;
	if (!st)
		return;
	st->cpu_wait_ns += delta;
	morph_hist_add(st->runq_hist, delta);
}

static __always_inline void morph_runq_dequeue(__u32 slot, struct morph_task_state *ts, __u64 now)
{
	morph_runq_dequeue_st(morph_stats(slot), ts, now);
}

// Page faults by delta of the task's own counters (task->min_flt/maj_flt). The kernel increments them in
// mm_account_fault for every completed fault, including faults taken through get_user_pages (KVM's), which
// the exceptions/page_fault_user tracepoint never sees. Sampled where the programs already hold the task's
// state: at its wakeup (the slices that ended in sleep), when it is preempted, and at its final switch-out.
// The first sample of a task only sets the baseline.
static __always_inline void morph_faults_sample_st(struct morph_vm_stats *st, struct morph_task_state *ts,
						   __u64 min_flt, __u64 maj_flt)
{
	if (ts->flt_valid && min_flt >= ts->min_flt && maj_flt >= ts->maj_flt && st) {
		st->mem_minor_faults += min_flt - ts->min_flt;
		st->mem_major_faults += maj_flt - ts->maj_flt;
	}
	ts->min_flt = min_flt;
	ts->maj_flt = maj_flt;
	ts->flt_valid = 1;
}

static __always_inline void morph_faults_sample(__u32 slot, struct morph_task_state *ts, __u64 min_flt,
						__u64 maj_flt)
{
	morph_faults_sample_st(morph_stats(slot), ts, min_flt, maj_flt);
}

// Baseline for a task first seen asleep (at its wakeup): its counters are stable then, so every fault of
// its next slice counts.
static __always_inline void morph_faults_baseline(struct morph_task_state *ts, __u64 min_flt, __u64 maj_flt)
{
	if (ts->flt_valid)
		return;
	ts->min_flt = min_flt;
	ts->maj_flt = maj_flt;
	ts->flt_valid = 1;
}

// A block request enters the block layer in the submitter's context: remember whose it is.
static __always_inline void morph_blk_start(__u64 rq, __u32 slot, __u64 now, __u32 op)
{
	struct morph_blk_start v = { .start_ns = now, .slot = slot, .op = op };

	if (slot == MORPH_NO_SLOT || (op != MORPH_REQ_OP_READ && op != MORPH_REQ_OP_WRITE))
		return;
	bpf_map_update_elem(&blk_inflight, &rq, &v, BPF_ANY);
}

// The request completes (any context, usually an interrupt): account bytes, one op and the latency.
static __always_inline void morph_blk_done(__u64 rq, __u64 now, __u64 bytes)
{
	struct morph_blk_start *v = bpf_map_lookup_elem(&blk_inflight, &rq);
	struct morph_vm_stats *st;

	if (!v)
		return;
	st = morph_stats(v->slot);
	if (st) {
		if (v->op == MORPH_REQ_OP_READ) {
			st->blk_read_bytes += bytes;
			st->blk_read_ops++;
		} else {
			st->blk_write_bytes += bytes;
			st->blk_write_ops++;
		}
		morph_hist_add(st->blk_hist, now > v->start_ns ? now - v->start_ns : 0);
	}
	bpf_map_delete_elem(&blk_inflight, &rq);
}
