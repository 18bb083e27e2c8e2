// SPDX-License-Identifier: GPL-2.0
// Test entry point for the KPI helpers of bpf/lib/kpi.bpf.h: one SEC("syscall") program that runs the
// helper named by ctx->op on plain values under BPF_PROG_TEST_RUN. Same helpers and map layouts as the
// agent's programs, in a separate object (never loaded by the agent).
#include "vmlinux.h"

#include <bpf/bpf_helpers.h>

#include "kpi.bpf.h"

#define MORPH_TEST_TASKS 8

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, MORPH_TEST_TASKS);
  __type(key, __u32);
  __type(value, struct morph_task_state);
} test_tasks SEC(".maps");

static __always_inline struct morph_task_state* test_task(__u64 i) {
  __u32 key = i;

  return bpf_map_lookup_elem(&test_tasks, &key);
}

SEC("syscall")
int morph_test_helpers(struct morph_test_ctx* ctx) {
  struct morph_task_state* ts;
  struct morph_cpu_state* cs;
  __u32 zero = 0, prev_slot;

  switch (ctx->op) {
    case MORPH_TEST_LOG2_BUCKET:
      ctx->out = morph_hist_bucket(ctx->a);
      return 0;
    case MORPH_TEST_SWITCH:
      // The sequence of the agent's sched_switch (bpf/cpu.bpf.c on_switch) on plain values.
      cs = bpf_map_lookup_elem(&cpu_state, &zero);
      if (!cs) return 1;
      prev_slot = morph_prev_slot(cs, ctx->a, 0);
      ctx->out = prev_slot;
      if (prev_slot != MORPH_NO_SLOT && prev_slot != MORPH_SLOT_UNKNOWN)
        morph_switch_out(morph_stats(prev_slot), cs->since_runtime, ctx->b, true, cs->min_flt, cs->maj_flt, ctx->e,
                         ctx->f);
      morph_switch_in(cs, ctx->c, ctx->slot, ctx->d, ctx->g, ctx->h);
      return 0;
    case MORPH_TEST_RESET_CPU:
      cs = bpf_map_lookup_elem(&cpu_state, &zero);
      if (!cs) return 1;
      cs->tid = 0;
      cs->slot = MORPH_NO_SLOT;
      cs->cgid = 0;
      cs->cgid_gen = 0;
      return 0;
    case MORPH_TEST_RUNQ_WAIT:
      ts = test_task(ctx->e);
      if (!ts) return 1;
      morph_runq_arrive(morph_stats(ctx->slot), ts, ctx->d, ctx->a, ctx->b, ctx->c);
      return 0;
    case MORPH_TEST_ENQUEUE:
      ts = test_task(ctx->b);
      if (!ts) return 1;
      morph_runq_enqueue(ts, ctx->a);
      return 0;
    case MORPH_TEST_DEQUEUE:
      ts = test_task(ctx->b);
      if (!ts) return 1;
      morph_runq_dequeue(ctx->slot, ts, ctx->a);
      return 0;
    case MORPH_TEST_BLK_START:
      morph_blk_start(ctx->a, ctx->slot, ctx->b, ctx->c);
      return 0;
    case MORPH_TEST_BLK_DONE:
      morph_blk_done(ctx->a, ctx->b, ctx->c, ctx->d);
      return 0;
    case MORPH_TEST_CGROUP_SLOT:
      ctx->out = morph_slot_of_cgroup(ctx->a);
      return 0;
  }
  return 2;
}

char LICENSE[] SEC("license") = "GPL";
