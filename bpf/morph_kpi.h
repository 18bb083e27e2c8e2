#pragma once
// Per-VM KPI counters: the structs shared by the BPF programs (bpf/cpu.bpf.c, block.bpf.c, net.bpf.c) and
// their owner in user space (hostagent/probes). Plain __u64 fields only; this header is the one copy.
//
// Attribution: every counter lives in the per-CPU array `vm_stats`, indexed by a VM slot. The agent
// assigns slots and fills two hash maps: cgroup v2 id -> slot (the VM's cgroup AND every descendant, e.g.
// .../vcpu0 and .../emulator, so programs need one lookup and no ancestor walk) and tap ifindex -> slot.
// sched_switch (tp_btf) reads the slot from cgroup local storage of the same cgroups instead, which the
// agent sets alongside the hash entries: a cgroup without storage (any non-VM task) costs one pointer test.

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define MORPH_MAX_VMS 256       // slots in vm_stats
#define MORPH_MAX_CGROUPS 8192  // cgroup ids over all VMs (a VM has 1 + vCPUs + a few)
#define MORPH_MAX_TAPS 1024
#define MORPH_MAX_INFLIGHT_IO 16384
#define MORPH_HIST_BUCKETS 27  // log2 µs; must equal morph::kpi::kHistBuckets
#define MORPH_NO_SLOT 0xffffffffu
#define MORPH_SLOT_UNKNOWN 0xfffffffeu  // sched_switch: the outgoing task's switch-in was not seen

// Request operations we account (low byte of request->cmd_flags, REQ_OP_*).
#define MORPH_REQ_OP_MASK 0xffu
#define MORPH_REQ_OP_READ 0u
#define MORPH_REQ_OP_WRITE 1u

// Network directions, named from the guest's point of view (as libvirt's domstats are).
#define MORPH_NET_GUEST_RX 0u  // tc egress of the host tap: the tap transmits to the guest
#define MORPH_NET_GUEST_TX 1u  // tc ingress of the host tap: packets arriving from the guest

// tc filter identity of the KPI programs. Lower priority number than the policer's (bpf/policer.h, 100):
// counting runs first and sees every packet, including the ones the policer then drops.
#define MORPH_KPI_TC_PRIORITY 10
#define MORPH_KPI_TC_HANDLE 0x4b50

// Running totals per VM slot and CPU; user space sums CPUs and takes deltas per interval.
struct morph_vm_stats {
  __u64 cpu_run_ns;
  __u64 cpu_wait_ns;
  __u64 runq_hist[MORPH_HIST_BUCKETS];
  __u64 blk_read_bytes;
  __u64 blk_write_bytes;
  __u64 blk_read_ops;
  __u64 blk_write_ops;
  __u64 blk_hist[MORPH_HIST_BUCKETS];
  __u64 net_rx_bytes;
  __u64 net_tx_bytes;
  __u64 net_rx_pkts;
  __u64 net_tx_pkts;
  __u64 mem_minor_faults;
  __u64 mem_major_faults;
};

// Per CPU: who is on this CPU since its last switch. Written at every switch-in (thread id and slot of every
// task; runtime and fault counters only for a VM's task) and read at the next switch-out, so sched_switch
// needs no per-task state and no clock: the slice is the growth of the task's own counters since then.
// `tid` guards against a missed switch-in (the outgoing task is not the one recorded). User space reads it
// to credit the slice still running at read time (that thread's /proc/TID/schedstat runtime - since_runtime).
struct morph_cpu_state {
  __u32 slot;           // slot of the task switched in last, or MORPH_NO_SLOT
  __u32 tid;            // its thread id (0: the idle task, or nothing seen yet)
  __u64 since_runtime;  // its se.sum_exec_runtime when switched in (VM tasks only)
  __u64 min_flt;        // its task->min_flt / maj_flt when switched in (VM tasks only)
  __u64 maj_flt;
  __u64 cgid;       // cache: cgroup id of the last task looked up on this CPU (ids are never reused),
  __u32 cgid_slot;  //   its slot,
  __u32 cgid_gen;   //   and the slot_gen it was looked up under (the agent bumps slot_gen on map changes)
};

// Per VM task (task storage under tp_btf, a pid-keyed hash under raw_tp).
struct morph_task_state {
  __u64 run_delay;    // its sched_info.run_delay as of its last switch-in, that switch's wait included
  __u64 start_time;   // task->start_time of the task it describes (a reused pid is another task)
  __u64 enqueued_ns;  // wakeup fallback only: when it became runnable (bpf_ktime_get_ns); 0 otherwise
};

// One block request in flight, keyed by the request pointer.
struct morph_blk_start {
  __u64 start_ns;
  __u32 slot;
  __u32 op;
};

// Context of the helper test entry point (tests/bpf/kpi_helpers_test.bpf.c); never used by the agent.
enum morph_test_op {
  MORPH_TEST_LOG2_BUCKET = 1,  // a = ns; out = bucket
  MORPH_TEST_SWITCH = 2,       // a = prev tid, b = its runtime, e/f = its min/maj_flt; c = next tid, slot =
                               // its slot, d = its runtime, g/h = its min/maj_flt; out = prev's slot
  MORPH_TEST_ENQUEUE = 3,      // a = now; task state of test task b (wakeup fallback)
  MORPH_TEST_DEQUEUE = 4,      // a = now, slot; task state of test task b (wakeup fallback)
  MORPH_TEST_RUNQ_WAIT = 5,    // slot, a = rq clock, b = last_queued, c = run_delay, d = start_time, e =
                               // test task (switch-in wait from sched_info)
  MORPH_TEST_BLK_START = 6,    // a = request key, b = now, c = op, slot
  MORPH_TEST_BLK_DONE = 7,     // a = request key, b = now, c = bytes
  MORPH_TEST_CGROUP_SLOT = 8,  // a = cgroup id; out = slot
  MORPH_TEST_RESET_CPU = 9,    // clears this CPU's morph_cpu_state
};

struct morph_test_ctx {
  __u32 op;
  __u32 slot;
  __u64 a;
  __u64 b;
  __u64 c;
  __u64 d;
  __u64 e;
  __u64 f;
  __u64 g;
  __u64 h;
  __u64 out;
};
