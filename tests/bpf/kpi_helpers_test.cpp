// Table-driven BPF_PROG_TEST_RUN tests of the KPI helpers (bpf/lib/kpi.bpf.h, bits.bpf.h) through the
// SEC("syscall") entry point of kpi_helpers_test.bpf.c.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <sched.h>

#include <algorithm>
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
      {0, 0},
      {999, 0},
      {1'000, 0},
      {1'999, 0},
      {2'000, 1},
      {3'999, 1},
      {4'000, 2},
      {1'000'000, 9},  // 1000 µs: 2^9 <= 1000 < 2^10
      {1'024'000, 10},
      {(1ull << 26) * 1000, 26},
      {(1ull << 27) * 1000, 26},  // clamped
      {~0ull, 26},
  };
  for (const Row& r : rows) EXPECT_EQ(run({.op = MORPH_TEST_LOG2_BUCKET, .a = r.ns}).out, r.bucket) << r.ns << " ns";
}

TEST_F(KpiHelpers, OnCpuTimeAndFaultsCreditedToOutgoingSlot) {
  // A timeline of switches on one CPU, as bpf/cpu.bpf.c's sched_switch sees them: the outgoing thread with
  // its se.sum_exec_runtime and fault counters now, the incoming one with its slot and the same counters at
  // switch-in. Each slice is the growth of the outgoing thread's own counters since its switch-in.
  const uint32_t kNo = MORPH_NO_SLOT;
  struct Row {
    uint32_t prev_tid;
    uint64_t prev_runtime, prev_min, prev_maj;
    uint32_t next_tid, next_slot;
    uint64_t next_runtime, next_min, next_maj;
    uint32_t prev_slot;  // expected: the slot credited (kNo: nobody)
  } rows[] = {
      {0, 0, 0, 0, /*->*/ 100, 1, 1'000, 10, 1, kNo},              // idle -> VM 1's thread 100
      {100, 4'000, 15, 1, /*->*/ 200, kNo, 7, 7, 7, 1},            // 100 ran 3000 ns, 5 minor faults
      {200, 99, 99, 99, /*->*/ 300, 2, 50'000, 100, 0, kNo},       // a non-VM thread ran: nobody
      {300, 51'000, 100, 2, /*->*/ 100, 1, 4'000, 15, 1, 2},       // VM 2: 1000 ns, 2 major faults
      {100, 4'500, 20, 1, /*->*/ 101, 1, 7'000, 0, 0, 1},          // VM 1: 500 ns, 5 minor (same VM next)
      {101, 9'000, 3, 0, /*->*/ 0, kNo, 0, 0, 0, 1},               // VM 1: 2000 ns, 3 minor; then idle
      {0, 0, 0, 0, /*->*/ 102, 1, 500, 40, 0, kNo},                // idle -> 102
      {102, 400, 30, 0, /*->*/ 0, kNo, 0, 0, 0, 1},                // counters behind the baselines: no credit
      {555, 1, 1, 1, /*->*/ 0, kNo, 0, 0, 0, MORPH_SLOT_UNKNOWN},  // not the thread switched in: unknown
  };
  for (const Row& r : rows) {
    morph_test_ctx ctx{.op = MORPH_TEST_SWITCH,
                       .slot = r.next_slot,
                       .a = r.prev_tid,
                       .b = r.prev_runtime,
                       .c = r.next_tid,
                       .d = r.next_runtime,
                       .e = r.prev_min,
                       .f = r.prev_maj,
                       .g = r.next_min,
                       .h = r.next_maj};
    EXPECT_EQ(run(ctx).out, r.prev_slot) << "switch " << r.prev_tid << " -> " << r.next_tid;
  }
  morph_vm_stats s1 = stats(1), s2 = stats(2);
  EXPECT_EQ(s1.cpu_run_ns, 3'000u + 500 + 2'000);
  EXPECT_EQ(s2.cpu_run_ns, 1'000u);
  EXPECT_EQ(s1.mem_minor_faults, 5u + 5 + 3);
  EXPECT_EQ(s1.mem_major_faults, 0u);
  EXPECT_EQ(s2.mem_minor_faults, 0u);
  EXPECT_EQ(s2.mem_major_faults, 2u);
  EXPECT_EQ(stats(3).cpu_run_ns, 0u);
}

namespace {
uint64_t bucket_of(uint64_t ns) {
  uint64_t us = ns / 1000, b = 0;
  while (us >>= 1) b++;
  return std::min<uint64_t>(b, MORPH_HIST_BUCKETS - 1);
}
}  // namespace

TEST_F(KpiHelpers, RunQueueWaitFromSchedInfo) {
  // Switch-ins of VM threads: each wait is the growth of the thread's sched_info.run_delay since its previous
  // switch-in, counting the wait in progress (rq clock - last_queued, which sched_info_arrive adds next).
  const uint32_t slot = 3;
  struct Row {
    uint64_t task, start_time;  // test task slot and the task it holds
    uint64_t clock, last_queued, run_delay;
    uint64_t wait;  // expected
  } rows[] = {
      {1, 77, 5'000, 1'000, 50'000, 4'000},            // first seen: the wait in progress only (4 µs)
      {1, 77, 10'500, 10'000, 54'000, 500},            // 0.5 µs
      {1, 77, 20'000, 0, 54'500, 0},                   // not waiting (woke on an idle CPU): none
      {1, 77, 2'100'000, 100'000, 54'500, 2'000'000},  // 2 ms
      // Moved while waiting: the kernel folded 3 µs into run_delay and restarted last_queued on the new
      // CPU (clocks of different CPUs): 3 µs + 6 µs.
      {1, 77, 900'000, 894'000, 2'054'500 + 3'000, 9'000},
      {2, 88, 1'000, 2'000, 0, 0},       // stamp ahead of this clock: nothing
      {1, 99, 5'000, 1'000, 10, 4'000},  // a new task in that pid's state: first seen again
  };
  uint64_t expected_wait = 0;
  std::vector<uint64_t> expected_hist(MORPH_HIST_BUCKETS);
  for (const Row& r : rows) {
    run({.op = MORPH_TEST_RUNQ_WAIT,
         .slot = slot,
         .a = r.clock,
         .b = r.last_queued,
         .c = r.run_delay,
         .d = r.start_time,
         .e = r.task});
    expected_wait += r.wait;
    if (r.wait) expected_hist[bucket_of(r.wait)]++;
  }
  morph_vm_stats s = stats(slot);
  EXPECT_EQ(s.cpu_wait_ns, expected_wait);
  for (int b = 0; b < MORPH_HIST_BUCKETS; b++) EXPECT_EQ(s.runq_hist[b], expected_hist[b]) << "bucket " << b;
  EXPECT_EQ(s.runq_hist[2], 2u);  // 4 µs twice
  EXPECT_EQ(s.runq_hist[0], 1u);
  EXPECT_EQ(s.runq_hist[3], 1u);  // 9 µs: one sample for the whole wait across the move
  EXPECT_EQ(s.runq_hist[10], 1u);
  // Not a VM's: nothing anywhere.
  run({.op = MORPH_TEST_RUNQ_WAIT, .slot = MORPH_NO_SLOT, .a = 9'000, .b = 1'000, .c = 0, .d = 5, .e = 3});
}

TEST_F(KpiHelpers, RunQueueWaitWakeupFallback) {
  // Kernels without sched_info: per-task stamps from the wakeup programs, consumed at switch-in.
  const uint32_t slot = 4;
  struct Row {
    uint64_t enqueue_ns;  // 0: no enqueue before this dequeue
    uint64_t dequeue_ns;
  } rows[] = {
      {1'000, 5'000},        // 4 µs -> bucket 2
      {10'000, 10'500},      // 0.5 µs -> bucket 0
      {0, 20'000},           // running again without being enqueued: no wait
      {100'000, 2'100'000},  // 2 ms -> bucket 10 (2000 µs)
  };
  uint64_t expected_wait = 0;
  std::vector<uint64_t> expected_hist(MORPH_HIST_BUCKETS);
  for (const Row& r : rows) {
    if (r.enqueue_ns) {
      run({.op = MORPH_TEST_ENQUEUE, .a = r.enqueue_ns, .b = 0});
      expected_wait += r.dequeue_ns - r.enqueue_ns;
      expected_hist[bucket_of(r.dequeue_ns - r.enqueue_ns)]++;
    }
    run({.op = MORPH_TEST_DEQUEUE, .slot = slot, .a = r.dequeue_ns, .b = 0});
  }
  morph_vm_stats s = stats(slot);
  EXPECT_EQ(s.cpu_wait_ns, expected_wait);
  for (int b = 0; b < MORPH_HIST_BUCKETS; b++) EXPECT_EQ(s.runq_hist[b], expected_hist[b]) << "bucket " << b;
}

TEST_F(KpiHelpers, BlockRequestsAttributedAtSubmission) {
  struct Row {
    uint64_t rq;
    uint32_t slot;
    uint64_t op;
    uint64_t start_ns, done_ns, bytes;
  } rows[] = {
      {0x1000, 5, MORPH_REQ_OP_READ, 1'000, 3'001'000, 4096},  // 3000 µs -> bucket 11
      {0x2000, 5, MORPH_REQ_OP_WRITE, 2'000, 12'000, 65536},   // 10 µs -> bucket 3
      {0x3000, 6, MORPH_REQ_OP_WRITE, 2'000, 4'000, 512},      // other VM
      {0x4000, 5, 3 /* discard */, 2'000, 4'000, 1 << 20},     // not accounted
      {0x5000, MORPH_NO_SLOT, MORPH_REQ_OP_READ, 1, 2, 4096},  // not a VM's
  };
  for (const Row& r : rows) run({.op = MORPH_TEST_BLK_START, .slot = r.slot, .a = r.rq, .b = r.start_ns, .c = r.op});
  for (const Row& r : rows) run({.op = MORPH_TEST_BLK_DONE, .a = r.rq, .b = r.done_ns, .c = r.bytes, .d = r.bytes});
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

// A driver may complete a request in pieces (blk_update_request with part of its bytes): all the bytes
// count, the op and its latency once, at the last piece. Seen on virtio-blk under disk load, where a 1 MiB
// write completed as 124 KiB and then 900 KiB, and the 900 KiB were lost while the first piece ended it.
TEST_F(KpiHelpers, BlockRequestCompletedInPiecesCountsEveryByteAndOneOp) {
  const uint32_t slot = 5;
  run({.op = MORPH_TEST_BLK_START, .slot = slot, .a = 0x7000, .b = 1'000, .c = MORPH_REQ_OP_WRITE});
  // remaining before each piece: 1 MiB, then 900 KiB.
  run({.op = MORPH_TEST_BLK_DONE, .a = 0x7000, .b = 2'000, .c = 126'976, .d = 1u << 20});
  morph_vm_stats mid = stats(slot);
  EXPECT_EQ(mid.blk_write_bytes, 126'976u);
  EXPECT_EQ(mid.blk_write_ops, 0u) << "the op is not done after its first piece";
  run({.op = MORPH_TEST_BLK_DONE, .a = 0x7000, .b = 3'001'000, .c = 921'600, .d = 921'600});
  morph_vm_stats s = stats(slot);
  EXPECT_EQ(s.blk_write_bytes, 1u << 20);
  EXPECT_EQ(s.blk_write_ops, 1u);
  EXPECT_EQ(s.blk_hist[11], 1u);  // 3000 µs, submission to the last piece
  uint64_t histogram_ops = 0;
  for (int b = 0; b < MORPH_HIST_BUCKETS; b++) histogram_ops += s.blk_hist[b];
  EXPECT_EQ(histogram_ops, 1u);
  uint64_t key = 0, next = 0;
  EXPECT_NE(bpf_map__get_next_key(skel_->maps.blk_inflight, nullptr, &next, sizeof(key)), 0) << "request forgotten";
}

TEST_F(KpiHelpers, CgroupAttributionLookup) {
  struct Row {
    uint64_t cgroup_id;
    uint32_t slot;
  } mapped[] = {{4242, 7}, {4243, 7}, {9000, 8}};
  for (const Row& r : mapped)
    ASSERT_EQ(
        bpf_map__update_elem(skel_->maps.cgroup_slots, &r.cgroup_id, sizeof(r.cgroup_id), &r.slot, sizeof(r.slot), 0),
        0);
  for (const Row& r : mapped) EXPECT_EQ(run({.op = MORPH_TEST_CGROUP_SLOT, .a = r.cgroup_id}).out, r.slot);
  EXPECT_EQ(run({.op = MORPH_TEST_CGROUP_SLOT, .a = 1}).out, MORPH_NO_SLOT);
}

}  // namespace
