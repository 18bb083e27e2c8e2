// SPDX-License-Identifier: GPL-2.0
// Maps and accounting helpers shared by the KPI programs. Maps are __weak so every *.bpf.c that includes
// this header refers to the same map after `bpftool gen object` links them.
//
// The helpers take plain values (slot, timestamps, counters, pointers to state) and never read kernel
// structures, so tests/bpf/kpi_helpers_test.bpf.c drives them under BPF_PROG_TEST_RUN.
#pragma once

#include "bits.bpf.h"
#include "morph_kpi.h"

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, MORPH_MAX_VMS);
  __type(key, __u32);
  __type(value, struct morph_vm_stats);
} vm_stats SEC(".maps") __weak;

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, MORPH_MAX_CGROUPS);
  __type(key, __u64);    // cgroup v2 id
  __type(value, __u32);  // slot
} cgroup_slots SEC(".maps") __weak;

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, MORPH_MAX_TAPS);
  __type(key, __u32);    // ifindex
  __type(value, __u32);  // slot
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
  __type(key, __u64);  // struct request *
  __type(value, struct morph_blk_start);
} blk_inflight SEC(".maps") __weak;

static __always_inline __u32 morph_slot_of_cgroup(__u64 cgid) {
  __u32* slot = bpf_map_lookup_elem(&cgroup_slots, &cgid);

  return slot ? *slot : MORPH_NO_SLOT;
}

static __always_inline __u32 morph_slot_of_ifindex(__u32 ifindex) {
  __u32* slot = bpf_map_lookup_elem(&tap_slots, &ifindex);

  return slot ? *slot : MORPH_NO_SLOT;
}

static __always_inline struct morph_vm_stats* morph_stats(__u32 slot) {
  if (slot >= MORPH_MAX_VMS) return NULL;
  return bpf_map_lookup_elem(&vm_stats, &slot);
}

// The outgoing task's slot as recorded at its switch-in (MORPH_NO_SLOT: not a VM's), or MORPH_SLOT_UNKNOWN
// when this CPU's state does not describe it: its switch-in was not seen (the first switch after load), or
// the agent changed the slot maps since (`gen`, slot_gen now, differs from the one of that switch-in).
static __always_inline __u32 morph_prev_slot(const struct morph_cpu_state* cs, __u32 prev_tid, __u32 gen) {
  if (cs->tid == prev_tid && cs->cgid_gen == gen) return cs->slot;
  return prev_tid ? MORPH_SLOT_UNKNOWN : MORPH_NO_SLOT;
}

// The outgoing task of a context switch, a VM's (`st`, its slot's stats): its slice is the kernel's own
// charge to it, the growth of se.sum_exec_runtime since it was switched in (`since_runtime`); this is what
// cgroup CPU usage (libvirt's cpu.time) sums. Its page faults are the growth of task->min_flt/maj_flt over
// the slice (the kernel counts a fault against the task that takes it, so they only grow while it runs;
// get_user_pages faults, KVM's, included). `have_faults` is false when the switch-in baselines are unknown.
static __always_inline void morph_switch_out(struct morph_vm_stats* st, __u64 since_runtime, __u64 runtime,
                                             bool have_faults, __u64 min_flt0, __u64 maj_flt0, __u64 min_flt,
                                             __u64 maj_flt) {
  // Per-CPU value and non-reentrant tracepoint: plain adds, no atomics.
  if (!st) return;
  if (runtime > since_runtime) st->cpu_run_ns += runtime - since_runtime;
  if (have_faults && min_flt >= min_flt0 && maj_flt >= maj_flt0) {
    st->mem_minor_faults += min_flt - min_flt0;
    st->mem_major_faults += maj_flt - maj_flt0;
  }
}

// The incoming task: who it is and its runtime (any task: a thread whose cgroup is registered while it
// runs is measured from here), and for a VM's task the fault baselines its switch-out will need.
static __always_inline void morph_switch_in(struct morph_cpu_state* cs, __u32 tid, __u32 slot, __u64 runtime,
                                            __u64 min_flt, __u64 maj_flt) {
  cs->tid = tid;
  cs->slot = slot;
  cs->since_runtime = runtime;
  if (slot == MORPH_NO_SLOT) return;
  cs->min_flt = min_flt;
  cs->maj_flt = maj_flt;
}

static __always_inline void morph_runq_add(struct morph_vm_stats* st, __u64 wait) {
  if (!st || !wait) return;
  st->cpu_wait_ns += wait;
  morph_hist_add(st->runq_hist, wait);
}

// Run-queue wait of a VM task that gets the CPU, from the kernel's own bookkeeping (sched_info):
// `last_queued` is the rq clock when it was enqueued or preempted while runnable (0 if it was not waiting)
// and `clock` this switch's rq clock; sched_info_arrive, right after the tracepoint, adds clock -
// last_queued to run_delay. The wait is the growth of run_delay (that addition included) since the task's
// previous switch-in, kept in `ts`: it also holds the part of a wait that the kernel folded into run_delay
// when it moved the waiting task to another CPU (sched_info_dequeue resets last_queued then). The first
// switch-in seen of a task (or `ts` NULL) counts the wait in progress only. One histogram sample per
// switch-in.
static __always_inline void morph_runq_arrive(struct morph_vm_stats* st, struct morph_task_state* ts, __u64 start_time,
                                              __u64 clock, __u64 last_queued, __u64 run_delay) {
  __u64 pending = last_queued && clock > last_queued ? clock - last_queued : 0;
  __u64 total = run_delay + pending, wait = pending;

  if (ts) {
    if (ts->start_time == start_time && total >= ts->run_delay) wait = total - ts->run_delay;
    ts->start_time = start_time;
    ts->run_delay = total;
  }
  morph_runq_add(st, wait);
}

// Wakeup fallback (kernels without sched_info): per-task enqueue timestamps.
static __always_inline void morph_runq_enqueue(struct morph_task_state* ts, __u64 now) {
  ts->enqueued_ns = now;
}

// The task gets the CPU at `now`: its run-queue delay since the last enqueue goes to `st` (its VM's stats).
static __always_inline void morph_runq_dequeue_st(struct morph_vm_stats* st, struct morph_task_state* ts, __u64 now) {
  __u64 enqueued = ts->enqueued_ns;

  ts->enqueued_ns = 0;
  if (enqueued && now > enqueued) morph_runq_add(st, now - enqueued);
}

static __always_inline void morph_runq_dequeue(__u32 slot, struct morph_task_state* ts, __u64 now) {
  morph_runq_dequeue_st(morph_stats(slot), ts, now);
}

// A block request enters the block layer in the submitter's context: remember whose it is.
static __always_inline void morph_blk_start(__u64 rq, __u32 slot, __u64 now, __u32 op) {
  struct morph_blk_start v = {.start_ns = now, .slot = slot, .op = op};

  if (slot == MORPH_NO_SLOT || (op != MORPH_REQ_OP_READ && op != MORPH_REQ_OP_WRITE)) return;
  bpf_map_update_elem(&blk_inflight, &rq, &v, BPF_ANY);
}

// Some or all of a request completes (any context, usually an interrupt): `bytes` of it now, out of the
// `remaining` it had left before (blk_update_request fires block_rq_complete before it updates the request,
// so remaining is blk_rq_bytes(rq)). A driver may complete a request in pieces (seen on virtio-blk under disk
// load: 124 KiB, then the other 900 KiB of a 1 MiB write): every piece's bytes count, and the op and its
// latency count once, with the piece that ends it, which also forgets the request.
static __always_inline void morph_blk_done(__u64 rq, __u64 now, __u64 bytes, __u64 remaining) {
  struct morph_blk_start* v = bpf_map_lookup_elem(&blk_inflight, &rq);
  struct morph_vm_stats* st;
  bool last = bytes >= remaining;

  if (!v) return;
  st = morph_stats(v->slot);
  if (st) {
    if (v->op == MORPH_REQ_OP_READ) {
      st->blk_read_bytes += bytes;
      st->blk_read_ops += last;
    } else {
      st->blk_write_bytes += bytes;
      st->blk_write_ops += last;
    }
    if (last) morph_hist_add(st->blk_hist, now > v->start_ns ? now - v->start_ns : 0);
  }
  if (last) bpf_map_delete_elem(&blk_inflight, &rq);
}
