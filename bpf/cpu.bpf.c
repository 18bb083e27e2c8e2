// SPDX-License-Identifier: GPL-2.0
// Placeholder proving the BPF build pipeline; replaced by the CPU KPI program.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

__u64 switches = 0;

SEC("tp_btf/sched_switch")
int BPF_PROG(morph_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__sync_fetch_and_add(&switches, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
