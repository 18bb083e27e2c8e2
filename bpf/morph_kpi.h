#pragma once
// Per-VM KPI counters: the structs shared by the BPF programs (bpf/cpu.bpf.c, block.bpf.c, net.bpf.c) and
// their owner in user space (hostagent/probes). Plain __u64 fields only; this header is the one copy.
//
// Attribution: every counter lives in the per-CPU array `vm_stats`, indexed by a VM slot. The agent
// assigns slots and fills two hash maps: cgroup v2 id -> slot (the VM's cgroup AND every descendant, e.g.
// .../vcpu0 and .../emulator, so programs need one lookup and no ancestor walk) and tap ifindex -> slot.

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define MORPH_MAX_VMS 256          // slots in vm_stats
#define MORPH_MAX_CGROUPS 8192     // cgroup ids over all VMs (a VM has 1 + vCPUs + a few)
#define MORPH_MAX_TAPS 1024
#define MORPH_MAX_INFLIGHT_IO 16384
#define MORPH_HIST_BUCKETS 27      // log2 µs; must equal morph::agent::kHistBuckets
#define MORPH_NO_SLOT 0xffffffffu

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
	__u64 net_rx_drops;   // verdicts TC_ACT_SHOT returned by the KPI programs' own hook (morph_net_police)
	__u64 net_tx_drops;
	__u64 mem_minor_faults;
	__u64 mem_major_faults;
};

// Per CPU: who is on this CPU since when. The slot of `next` is looked up once at switch-in and reused
// as `prev`'s slot at switch-out, so sched_switch does one hash lookup. User space also reads it to credit
// the slice still running at read time.
struct morph_cpu_state {
	__u64 since_ns;       // bpf_ktime_get_ns() of the last switch on this CPU; 0 before the first
	__u32 slot;           // slot of the task switched in then, or MORPH_NO_SLOT
	__u32 pad;
	__u64 since_runtime;  // that task's se.sum_exec_runtime when it was switched in
};

// Per VM task (task storage; a pid-keyed hash under the raw_tp fallback).
struct morph_task_state {
	__u64 enqueued_ns;    // when it became runnable; 0 while running or sleeping
	__u64 min_flt;        // task->min_flt / maj_flt at its last switch-out
	__u64 maj_flt;
	__u64 flt_valid;      // min_flt/maj_flt hold a sample
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
	MORPH_TEST_SWITCH = 2,       // a = now, b = next slot; out = slot credited (prev)
	MORPH_TEST_ENQUEUE = 3,      // a = now; task state of test task b
	MORPH_TEST_DEQUEUE = 4,      // a = now, slot; task state of test task b
	MORPH_TEST_FAULTS = 5,       // slot, a = min_flt, b = maj_flt, c = test task
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
	__u64 out;
};
