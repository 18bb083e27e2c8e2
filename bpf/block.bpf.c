// SPDX-License-Identifier: GPL-2.0
// Block I/O KPIs per VM: read/write bytes and ops, and a log2 µs latency histogram.
//
// A request is attributed when it enters the block layer, in the submitter's context
// (block_io_start, fired from blk_mq_bio_to_request since 6.5; block_rq_issue on older kernels, which may
// run in another context), and accounted at block_rq_complete in whatever context completes it, piece by
// piece when the driver completes it in parts. The
// latency is submission to completion: scheduler queueing plus device time, what the guest waits for.
// User space keeps one of the start programs (bpf_program__set_autoload) and tp_btf or raw_tp.
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "kpi.bpf.h"

static __always_inline int blk_start_current(__u64 rq, __u32 cmd_flags) {
  __u32 slot = morph_slot_of_cgroup(bpf_get_current_cgroup_id());

  if (slot != MORPH_NO_SLOT) morph_blk_start(rq, slot, bpf_ktime_get_ns(), cmd_flags & MORPH_REQ_OP_MASK);
  return 0;
}

SEC("tp_btf/block_io_start")
int BPF_PROG(morph_block_io_start, struct request* rq) {
  return blk_start_current((__u64)rq, rq->cmd_flags);
}

SEC("tp_btf/block_rq_issue")
int BPF_PROG(morph_block_rq_issue, struct request* rq) {
  return blk_start_current((__u64)rq, rq->cmd_flags);
}

SEC("tp_btf/block_rq_complete")
int BPF_PROG(morph_block_rq_complete, struct request* rq, int error, unsigned int nr_bytes) {
  morph_blk_done((__u64)rq, bpf_ktime_get_ns(), nr_bytes, rq->__data_len);
  return 0;
}

SEC("raw_tp/block_io_start")
int BPF_PROG(morph_block_io_start_raw, struct request* rq) {
  return blk_start_current((__u64)rq, BPF_CORE_READ(rq, cmd_flags));
}

SEC("raw_tp/block_rq_issue")
int BPF_PROG(morph_block_rq_issue_raw, struct request* rq) {
  return blk_start_current((__u64)rq, BPF_CORE_READ(rq, cmd_flags));
}

SEC("raw_tp/block_rq_complete")
int BPF_PROG(morph_block_rq_complete_raw, struct request* rq, int error, unsigned int nr_bytes) {
  morph_blk_done((__u64)rq, bpf_ktime_get_ns(), nr_bytes, BPF_CORE_READ(rq, __data_len));
  return 0;
}

char LICENSE[] SEC("license") = "GPL";
