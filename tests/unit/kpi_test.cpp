// common/kpi: the log2 histogram's count and percentile, and every derived figure on its edges (zero
// interval, never runnable, counts that would overflow), each checked against its definition.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "common/kpi/derived.h"
#include "common/kpi/log2_hist.h"

namespace morph::kpi {
namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
constexpr uint64_t kSecond = 1'000'000'000;

TEST(KpiHistogram, CountSumsEveryBucketAndSaturates) {
  Log2Hist h{};
  EXPECT_EQ(hist_count(h), 0u);
  h[0] = 3;
  h[26] = 4;
  EXPECT_EQ(hist_count(h), 7u);
  h[5] = kMax - 1;
  EXPECT_EQ(hist_count(h), kMax);
}

TEST(KpiHistogram, PercentileIsTheUpperEdgeOfItsBucket) {
  Log2Hist h{};
  EXPECT_EQ(hist_percentile_us(h, 990), 0u);  // empty: no latency at all, not bucket 0's edge
  h[3] = 980;                                 // [8, 16) µs
  h[14] = 20;                                 // [16384, 32768) µs
  EXPECT_EQ(hist_percentile_us(h, 500), 16u);
  EXPECT_EQ(hist_percentile_us(h, 980), 16u);     // the 980th sample is the last in bucket 3
  EXPECT_EQ(hist_percentile_us(h, 981), 32768u);  // the 981st sample is in bucket 14
  EXPECT_EQ(hist_percentile_us(h, 990), 32768u);
  EXPECT_EQ(hist_percentile_us(h, 1000), 32768u);
  EXPECT_EQ(hist_percentile_us(h, 0), 2u);  // rank 0 is met by the first bucket
}

TEST(KpiHistogram, PercentileOfTheLastBucketAndBeyond) {
  Log2Hist h{};
  h[kHistBuckets - 1] = 1;
  EXPECT_EQ(hist_percentile_us(h, 990), uint64_t{1} << kHistBuckets);
  EXPECT_EQ(hist_percentile_us(h, 2000), uint64_t{1} << kHistBuckets);  // past every sample: the top edge
}

TEST(KpiHistogram, PercentileOfHugeCountsDoesNotOverflow) {
  Log2Hist h{};
  h[2] = kMax / 2;  // total * permille would wrap in 64 bits
  h[9] = kMax / 2;
  EXPECT_EQ(hist_percentile_us(h, 400), 8u);
  EXPECT_EQ(hist_percentile_us(h, 600), 1024u);
}

TEST(KpiDerived, RunQueueWaitShareIsWaitOverRunnableTime) {
  EXPECT_DOUBLE_EQ(runq_wait_share(800, 200), 0.2);
  EXPECT_EQ(runq_wait_permille(800, 200), 200u);
  EXPECT_DOUBLE_EQ(runq_wait_share(0, 0), 0.0);  // never runnable: nothing waited
  EXPECT_EQ(runq_wait_permille(0, 0), 0u);
  EXPECT_DOUBLE_EQ(runq_wait_share(0, 5), 1.0);  // runnable only waiting
  EXPECT_EQ(runq_wait_permille(0, 5), 1000u);
  EXPECT_DOUBLE_EQ(runq_wait_share(5, 0), 0.0);
  EXPECT_EQ(runq_wait_permille(2, 1), 333u);  // rounded down, as the SLA threshold compares
  EXPECT_EQ(runq_wait_permille(1, 2), 666u);
}

TEST(KpiDerived, RunQueueWaitShareOfSaturatedCounters) {
  // run + wait and wait x 1000 both overflow 64 bits.
  EXPECT_EQ(runq_wait_permille(kMax, kMax), 500u);
  EXPECT_DOUBLE_EQ(runq_wait_share(kMax, kMax), 0.5);
  EXPECT_EQ(runq_wait_permille(0, kMax), 1000u);
  EXPECT_EQ(runq_wait_permille(kMax / 4 * 3, kMax / 4), 250u);
}

TEST(KpiDerived, PermilleIsTheShareRoundedDown) {
  for (uint64_t run : {0ull, 1ull, 7ull, 999ull, 123'456'789ull, 4'000'000'000'000ull})
    for (uint64_t wait : {0ull, 1ull, 3ull, 1000ull, 987'654'321ull, 60'000'000'000ull}) {
      const double share = runq_wait_share(run, wait);
      const uint64_t pm = runq_wait_permille(run, wait);
      EXPECT_LE(double(pm), 1000 * share + 1e-9) << run << " " << wait;
      EXPECT_GT(double(pm) + 1, 1000 * share - 1e-9) << run << " " << wait;
    }
}

TEST(KpiDerived, WaitPerRunIsWaitOverRun) {
  EXPECT_DOUBLE_EQ(runq_wait_per_run(500, 1000), 2.0);
  EXPECT_DOUBLE_EQ(runq_wait_per_run(1000, 0), 0.0);
  EXPECT_DOUBLE_EQ(runq_wait_per_run(0, 1000), 0.0);  // never ran: no ratio, no division
  EXPECT_TRUE(std::isfinite(runq_wait_per_run(1, kMax)));
}

TEST(KpiDerived, CpuShareOfAnInterval) {
  EXPECT_DOUBLE_EQ(cpu_share(500'000'000, kSecond), 0.5);
  EXPECT_DOUBLE_EQ(cpu_share(3 * kSecond, kSecond), 3.0);  // three threads busy the whole interval
  EXPECT_DOUBLE_EQ(cpu_share(kSecond, 0), 0.0);            // zero interval: no share, no division
  EXPECT_DOUBLE_EQ(cpu_share(0, kSecond), 0.0);
  EXPECT_TRUE(std::isfinite(cpu_share(kMax, 1)));
}

TEST(KpiDerived, RatesPerSecond) {
  EXPECT_DOUBLE_EQ(per_second(1000, 250'000'000), 4000.0);
  EXPECT_DOUBLE_EQ(per_second(1000, 0), 0.0);
  EXPECT_EQ(per_second_floor(1000, 250'000'000), 4000u);
  EXPECT_EQ(per_second_floor(10, 3 * kSecond), 3u);  // 3.33/s rounded down
  EXPECT_EQ(per_second_floor(10, 0), 0u);
  EXPECT_EQ(per_second_floor(0, kSecond), 0u);
  // count x 10^9 overflows 64 bits: the true value, then saturation where it does not fit.
  EXPECT_EQ(per_second_floor(uint64_t{1} << 40, uint64_t{1} << 40), kSecond);
  EXPECT_EQ(per_second_floor(kMax, 1), kMax);
  EXPECT_EQ(per_second_floor(kMax, kSecond), kMax);
}

TEST(KpiDerived, DeliveredTransmitIsSentMinusPoliced) {
  EXPECT_EQ(delivered_tx_bytes(1000, 300), 700u);
  EXPECT_EQ(delivered_tx_bytes(1000, 0), 1000u);
  EXPECT_EQ(delivered_tx_bytes(1000, 1000), 0u);
  EXPECT_EQ(delivered_tx_bytes(300, 1000), 0u);  // policer read later than the send counter: never below 0
  EXPECT_EQ(delivered_tx_bytes(kMax, 1), kMax - 1);
}

TEST(KpiDerived, SumsSaturate) {
  EXPECT_EQ(net_drops(3, 4), 7u);
  EXPECT_EQ(net_drops(kMax, 1), kMax);
  VmKpis k;
  k.blk_read_ops = 5;
  k.blk_write_ops = 6;
  EXPECT_EQ(blk_ops(k), 11u);
  k.blk_write_ops = kMax;
  EXPECT_EQ(blk_ops(k), kMax);
}

TEST(KpiDerived, RecordShorthandsReadTheRecordsFields) {
  VmKpis k;
  k.interval_ns = kSecond;
  k.cpu_run_ns = 600'000'000;
  k.cpu_wait_ns = 400'000'000;
  k.net_tx_bytes = 5000;
  k.net_tx_policed_bytes = 1200;
  k.net_rx_drops = 2;
  k.net_tx_drops = 9;
  EXPECT_DOUBLE_EQ(runq_wait_share(k), 0.4);
  EXPECT_EQ(runq_wait_permille(k), 400u);
  EXPECT_EQ(delivered_tx_bytes(k), 3800u);
  EXPECT_EQ(net_drops(k), 11u);
}

}  // namespace
}  // namespace morph::kpi
