// Table-driven BPF_PROG_TEST_RUN tests of the KPI helpers (bpf/lib/kpi.bpf.h, bits.bpf.h) through the
// SEC("syscall") entry point of kpi_helpers_test.bpf.c.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <sched.h>

#include <cstdint>
#include <vector>

#include "kpi_helpers_test.skel.h"
#include "morph_kpi.h"
#include "tests/support/requirements.h"

namespace {

class KpiHelpers : public ::testing::Test {
 protected:
  void SetUp() override {
    MORPH_REQUIRE_BPF();
    // The per-CPU state under test must be the same CPU's on every run.
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(0, &set);
    ASSERT_EQ(sched_setaffinity(0, sizeof(set), &set), 0);
    skel_ = kpi_helpers_test__open_and_load();
    ASSERT_NE(skel_, nullptr) << "loading kpi_helpers_test.bpf.o";
    ncpu_ = libbpf_num_possible_cpus();
    run({.op = MORPH_TEST_RESET_CPU});
  }
  void TearDown() override {
    if (skel_) kpi_helpers_test__destroy(skel_);
  }

  morph_test_ctx run(morph_test_ctx ctx) {
    LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = &ctx, .ctx_size_in = sizeof(ctx));
    int err = bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.morph_test_helpers), &opts);
    EXPECT_EQ(err, 0) << "test run op " << ctx.op;
    EXPECT_EQ(opts.retval, 0u) << "op " << ctx.op;
    return ctx;
  }

  // One slot's counters summed over CPUs.
  morph_vm_stats stats(uint32_t slot) {
    std::vector<morph_vm_stats> per_cpu(ncpu_);
    EXPECT_EQ(bpf_map__lookup_elem(skel_->maps.vm_stats, &slot, sizeof(slot), per_cpu.data(),
                                   per_cpu.size() * sizeof(morph_vm_stats), 0),
              0);
    morph_vm_stats sum{};
    auto* out = reinterpret_cast<uint64_t*>(&sum);
    for (const auto& s : per_cpu) {
      auto* in = reinterpret_cast<const uint64_t*>(&s);
      for (size_t i = 0; i < sizeof(sum) / sizeof(uint64_t); i++) out[i] += in[i];
    }
    return sum;
  }

  kpi_helpers_test* skel_ = nullptr;
  int ncpu_ = 1;
};

TEST_F(KpiHelpers, Log2MicrosecondBuckets) {
  struct Row {
    uint64_t ns;
    uint64_t bucket;
  } rows[] = {
      {0, 0},           {999, 0},           {1'000, 0},          {1'999, 0},
      {2'000, 1},       {3'999, 1},         {4'000, 2},          {1'000'000, 9},   // 1000 µs: 2^9 <= 1000 < 2^10
      {1'024'000, 10},  {(1ull << 26) * 1000, 26},                {(1ull << 27) * 1000, 26},  // clamped
      {~0ull, 26},
  };
  for (const Row& r : rows) EXPECT_EQ(run({.op = MORPH_TEST_LOG2_BUCKET, .a = r.ns}).out, r.bucket) << r.ns << " ns";
}

TEST_F(KpiHelpers, OnCpuTimeCreditedToOutgoingSlot) {
  // Each row: a switch at `now` to a task of `next` slot; `credited` is the slot the previous slice went to.
  struct Row {
    uint64_t now;
    uint32_t next;
    uint32_t credited;
  } rows[] = {
      {1'000, 1, MORPH_NO_SLOT},   // first switch: nothing before it
      {4'000, MORPH_NO_SLOT, 1},   // slot 1 ran 3000 ns
      {9'000, 2, MORPH_NO_SLOT},   // a non-VM task ran: credited to nobody
      {10'000, 1, 2},              // slot 2: 1000 ns
      {10'500, 1, 1},              // slot 1: 500 ns (a switch between two tasks of one VM)
      {12'500, MORPH_NO_SLOT, 1},  // slot 1: 2000 ns
  };
  for (const Row& r : rows)
    EXPECT_EQ(run({.op = MORPH_TEST_SWITCH, .a = r.now, .b = r.next}).out, r.credited) << "switch at " << r.now;
  EXPECT_EQ(stats(1).cpu_run_ns, 3'000u + 500 + 2'000);
  EXPECT_EQ(stats(2).cpu_run_ns, 1'000u);
  EXPECT_EQ(stats(3).cpu_run_ns, 0u);
}

TEST_F(KpiHelpers, RunQueueWaitAndHistogram) {
  const uint32_t slot = 3;
  struct Row {
    uint64_t enqueue_ns;  // 0: no enqueue before this dequeue
    uint64_t dequeue_ns;
  } rows[] = {
      {1'000, 5'000},            // 4 µs -> bucket 2
      {10'000, 10'500},          // 0.5 µs -> bucket 0
      {0, 20'000},               // running again without being enqueued: no wait
      {100'000, 2'100'000},      // 2 ms -> bucket 10 (2000 µs)
  };
  uint64_t expected_wait = 0;
  std::vector<uint64_t> expected_hist(MORPH_HIST_BUCKETS);
  for (const Row& r : rows) {
    if (r.enqueue_ns) {
      run({.op = MORPH_TEST_ENQUEUE, .a = r.enqueue_ns, .b = 0});
      expected_wait += r.dequeue_ns - r.enqueue_ns;
      uint64_t us = (r.dequeue_ns - r.enqueue_ns) / 1000, b = 0;
      while (us >>= 1) b++;
      expected_hist[b]++;
    }
    run({.op = MORPH_TEST_DEQUEUE, .slot = slot, .a = r.dequeue_ns, .b = 0});
  }
  morph_vm_stats s = stats(slot);
  EXPECT_EQ(s.cpu_wait_ns, expected_wait);
  for (int b = 0; b < MORPH_HIST_BUCKETS; b++) EXPECT_EQ(s.runq_hist[b], expected_hist[b]) << "bucket " << b;
  EXPECT_EQ(s.runq_hist[2], 1u);
  EXPECT_EQ(s.runq_hist[0], 1u);
  EXPECT_EQ(s.runq_hist[10], 1u);
}

TEST_F(KpiHelpers, FaultsAreDeltasOfTaskCounters) {
  const uint32_t slot = 4;
  struct Row {
    uint64_t task, min_flt, maj_flt;
  } rows[] = {
      {1, 100, 5},   // baseline only
      {1, 130, 7},   // +30, +2
      {2, 50, 0},    // another task: baseline
      {1, 130, 7},   // no change
      {2, 60, 1},    // +10, +1
  };
  for (const Row& r : rows) run({.op = MORPH_TEST_FAULTS, .slot = slot, .a = r.min_flt, .b = r.maj_flt, .c = r.task});
  morph_vm_stats s = stats(slot);
  EXPECT_EQ(s.mem_minor_faults, 40u);
  EXPECT_EQ(s.mem_major_faults, 3u);
}

TEST_F(KpiHelpers, BlockRequestsAttributedAtSubmission) {
  struct Row {
    uint64_t rq;
    uint32_t slot;
    uint64_t op;
    uint64_t start_ns, done_ns, bytes;
  } rows[] = {
      {0x1000, 5, MORPH_REQ_OP_READ, 1'000, 3'001'000, 4096},     // 3000 µs -> bucket 11
      {0x2000, 5, MORPH_REQ_OP_WRITE, 2'000, 12'000, 65536},      // 10 µs -> bucket 3
      {0x3000, 6, MORPH_REQ_OP_WRITE, 2'000, 4'000, 512},         // other VM
      {0x4000, 5, 3 /* discard */, 2'000, 4'000, 1 << 20},        // not accounted
      {0x5000, MORPH_NO_SLOT, MORPH_REQ_OP_READ, 1, 2, 4096},     // not a VM's
  };
  for (const Row& r : rows) run({.op = MORPH_TEST_BLK_START, .slot = r.slot, .a = r.rq, .b = r.start_ns, .c = r.op});
  for (const Row& r : rows) run({.op = MORPH_TEST_BLK_DONE, .a = r.rq, .b = r.done_ns, .c = r.bytes});
  run({.op = MORPH_TEST_BLK_DONE, .a = 0x1000, .b = 9'999'999, .c = 4096});  // completed twice: ignored
  morph_vm_stats s5 = stats(5), s6 = stats(6);
  EXPECT_EQ(s5.blk_read_bytes, 4096u);
  EXPECT_EQ(s5.blk_read_ops, 1u);
  EXPECT_EQ(s5.blk_write_bytes, 65536u);
  EXPECT_EQ(s5.blk_write_ops, 1u);
  EXPECT_EQ(s5.blk_hist[11], 1u);
  EXPECT_EQ(s5.blk_hist[3], 1u);
  EXPECT_EQ(s6.blk_write_bytes, 512u);
  EXPECT_EQ(s6.blk_write_ops, 1u);
  EXPECT_EQ(s6.blk_hist[1], 1u);  // 2 µs
  // Nothing left in flight.
  uint64_t key = 0, next = 0;
  EXPECT_NE(bpf_map__get_next_key(skel_->maps.blk_inflight, nullptr, &next, sizeof(key)), 0);
}

TEST_F(KpiHelpers, CgroupAttributionLookup) {
  struct Row {
    uint64_t cgroup_id;
    uint32_t slot;
  } mapped[] = {{4242, 7}, {4243, 7}, {9000, 8}};
  for (const Row& r : mapped)
    ASSERT_EQ(bpf_map__update_elem(skel_->maps.cgroup_slots, &r.cgroup_id, sizeof(r.cgroup_id), &r.slot, sizeof(r.slot), 0), 0);
  for (const Row& r : mapped) EXPECT_EQ(run({.op = MORPH_TEST_CGROUP_SLOT, .a = r.cgroup_id}).out, r.slot);
  EXPECT_EQ(run({.op = MORPH_TEST_CGROUP_SLOT, .a = 1}).out, MORPH_NO_SLOT);
}

}  // namespace
