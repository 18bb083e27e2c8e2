// KpiHistory: recent intervals at full resolution, older time in closed wall-clock windows (means, and the
// peak demand of one interval), both bounded per VM whatever the run length; silent VMs forgotten; a bound
// on the number of VMs.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "controller/ingest/kpi_history.h"
#include "tests/unit/controller_test_support.h"

namespace morph::controller {
namespace {

using namespace fixtures;

constexpr uint64_t kSec = 1'000'000'000ULL;
constexpr uint64_t kStart = 1'800'000'000 * kSec;  // a minute boundary (divisible by 60 s)

KpiHistory::Options small() {
  KpiHistory::Options o;
  o.fine_samples = 5;
  o.coarse_window = std::chrono::seconds(10);
  o.coarse_windows = 3;
  return o;
}

// One report per second from kStart: vm-a runs `run_ms` and waits `wait_ms` in each.
void feed(KpiHistory& h, uint64_t from_s, uint64_t to_s, uint64_t run_ms, uint64_t wait_ms,
          const std::string& vm = "vm-a") {
  for (uint64_t s = from_s; s < to_s; ++s)
    h.on_kpi_report(*Report("h1", kStart + (s + 1) * kSec, {vm_kpis(vm, run_ms, wait_ms)}), 0);
}

TEST(KpiHistory, AnIntervalIsKeptAsReportedInMillicoresAndRates) {
  KpiHistory h(small());
  auto k = vm_kpis("vm-a", 250, 50, 500);  // a 500 ms interval
  k.blk_read_bytes = 512 * 1024;
  k.blk_write_bytes = 1024 * 1024;
  k.blk_read_ops = 30;
  k.blk_write_ops = 20;
  k.net_rx_bytes = 2048;
  k.net_tx_bytes = 4096;
  k.mem_rss_bytes = 300ULL << 20;
  h.on_kpi_report(*Report("h1", kStart + kSec / 2, {k}, 500'000'000), 0);
  auto s = h.recent("vm-a", 10);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].end_ns, kStart + kSec / 2);
  EXPECT_EQ(s[0].span_ms, 500u);
  EXPECT_EQ(s[0].cpu_run_mc, 500u);  // 250 ms of 500 ms
  EXPECT_EQ(s[0].cpu_wait_mc, 100u);
  EXPECT_EQ(s[0].cpu_demand_mc(), 600u);
  EXPECT_EQ(s[0].cpu_peak_demand_mc, 600u);
  EXPECT_EQ(s[0].disk_read_kibps, 1024u);
  EXPECT_EQ(s[0].disk_write_kibps, 2048u);
  EXPECT_EQ(s[0].disk_iops, 100u);
  EXPECT_EQ(s[0].net_rx_kibps, 4u);
  EXPECT_EQ(s[0].net_tx_kibps, 8u);
  EXPECT_EQ(s[0].mem_rss_mib, 300u);
}

TEST(KpiHistory, FullResolutionKeepsTheLastFineSamplesOldestFirst) {
  KpiHistory h(small());
  for (uint64_t s = 0; s < 8; ++s)
    h.on_kpi_report(*Report("h1", kStart + (s + 1) * kSec, {vm_kpis("vm-a", 100 * s, 0)}), 0);
  auto series = h.series("vm-a");
  ASSERT_TRUE(series);
  ASSERT_EQ(series->fine.size(), 5u);  // bounded
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(series->fine[i].cpu_run_mc, 100 * (i + 3)) << i;
  auto last2 = h.recent("vm-a", 2);
  ASSERT_EQ(last2.size(), 2u);
  EXPECT_EQ(last2[0].cpu_run_mc, 600u);
  EXPECT_EQ(last2[1].cpu_run_mc, 700u);
  EXPECT_FALSE(h.series("vm-zz"));
  EXPECT_TRUE(h.recent("vm-zz", 3).empty());
}

TEST(KpiHistory, OlderTimeIsDownsampledIntoClosedWindowsOfMeansAndPeak) {
  KpiHistory h(small());
  // Window [0, 10 s): 9 reports at 100 mc + 100 mc wait and one at 1000 + 500; window [10, 20): 9 at 400.
  feed(h, 0, 9, 100, 100);
  h.on_kpi_report(*Report("h1", kStart + 10 * kSec - 1, {vm_kpis("vm-a", 1000, 500)}), 0);
  feed(h, 10, 19, 400, 0);
  auto s = h.series("vm-a");
  ASSERT_TRUE(s);
  ASSERT_EQ(s->coarse.size(), 1u);  // the second window is still open
  const KpiSample& w = s->coarse[0];
  EXPECT_EQ(w.end_ns, kStart + 10 * kSec);
  EXPECT_EQ(w.span_ms, 10'000u);
  EXPECT_EQ(w.cpu_run_mc, 190u);   // (9 × 100 + 1000) / 10
  EXPECT_EQ(w.cpu_wait_mc, 140u);  // (9 × 100 + 500) / 10
  EXPECT_EQ(w.cpu_peak_demand_mc, 1500u);
  feed(h, 20, 21, 0, 0);  // the first report of the third window closes the second
  s = h.series("vm-a");
  ASSERT_EQ(s->coarse.size(), 2u);
  EXPECT_EQ(s->coarse[1].end_ns, kStart + 20 * kSec);
  EXPECT_EQ(s->coarse[1].cpu_run_mc, 400u);
}

TEST(KpiHistory, ClosedWindowsAreBoundedToo) {
  KpiHistory h(small());
  feed(h, 0, 200, 100, 0);  // 20 windows of 10 s closed, the 21st open
  auto s = h.series("vm-a");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->fine.size(), 5u);
  ASSERT_EQ(s->coarse.size(), 3u);
  EXPECT_EQ(s->coarse[0].end_ns, kStart + 180 * kSec);
  EXPECT_EQ(s->coarse[2].end_ns, kStart + 200 * kSec);
}

TEST(KpiHistory, AGapLeavesNoEmptyWindowsAndAReportFromBeforeJoinsTheOpenOne) {
  KpiHistory h(small());
  feed(h, 0, 5, 100, 0);
  feed(h, 25, 26, 300, 0);  // 20 s later
  // A report stamped before the open window (a clock stepped back) does not reopen a closed one.
  h.on_kpi_report(*Report("h1", kStart + 3 * kSec, {vm_kpis("vm-a", 500, 0)}), 0);
  feed(h, 30, 31, 100, 0);
  auto s = h.series("vm-a");
  ASSERT_TRUE(s);
  ASSERT_EQ(s->coarse.size(), 2u);
  EXPECT_EQ(s->coarse[0].end_ns, kStart + 10 * kSec);
  EXPECT_EQ(s->coarse[0].span_ms, 5'000u);
  EXPECT_EQ(s->coarse[1].end_ns, kStart + 30 * kSec);
  EXPECT_EQ(s->coarse[1].cpu_run_mc, 400u);  // (300 + 500) / 2
}

TEST(KpiHistory, AVmSilentForTheWholeCoarseSpanIsForgotten) {
  KpiHistory h(small());  // coarse span: 3 × 10 s
  feed(h, 0, 1, 100, 0, "vm-old");
  feed(h, 0, 60, 100, 0, "vm-a");
  EXPECT_EQ(h.vm_count(), 1u);
  EXPECT_FALSE(h.series("vm-old"));
  EXPECT_TRUE(h.series("vm-a"));
}

TEST(KpiHistory, AtMostMaxVmsAreKept) {
  auto o = small();
  o.max_vms = 2;
  KpiHistory h(o);
  h.on_kpi_report(*Report("h1", kStart + kSec, {vm_kpis("vm-1", 1, 0), vm_kpis("vm-2", 1, 0), vm_kpis("vm-3", 1, 0)}),
                  0);
  EXPECT_EQ(h.vm_count(), 2u);
  EXPECT_FALSE(h.series("vm-3"));
  feed(h, 1, 2, 5, 0, "vm-1");  // the kept ones go on
  EXPECT_EQ(h.recent("vm-1", 5).size(), 2u);
}

TEST(KpiHistory, AReportWithoutATimestampIsFiledAtItsArrival) {
  KpiHistory h(small());
  h.on_kpi_report(*Report("h1", 0, {vm_kpis("vm-a", 100, 0)}), kStart + 7 * kSec);
  auto s = h.recent("vm-a", 1);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].end_ns, kStart + 7 * kSec);
}

TEST(KpiHistory, MeanDemandOverASpanIsFromTheFineSamplesWhileTheyReachBackElseFromClosedWindows) {
  KpiHistory h(small());
  // Intervals ending at kStart + 1..4 s: demand 200, 200, 600, 600 mc (run + wait).
  feed(h, 0, 2, 150, 50);
  feed(h, 2, 4, 500, 100);
  auto m = h.mean_demand("vm-a", kStart + 1 * kSec, kStart + 4 * kSec);  // ends in [1 s, 4 s): 200, 200, 600
  ASSERT_TRUE(m);
  EXPECT_NEAR(*m, 1000.0 / 3, 1e-9);
  EXPECT_FALSE(h.mean_demand("vm-a", kStart + 10 * kSec, kStart + 20 * kSec));  // nothing ended then
  EXPECT_FALSE(h.mean_demand("vm-zz", kStart, kStart + 4 * kSec));
  // 30 s of 100 mc then 300 mc: the 5 fine samples no longer reach back to 10 s, so [10 s, 30 s) is read
  // from its two closed windows (the intervals that ended in [10, 20) and [20, 30)).
  feed(h, 4, 19, 100, 0);
  feed(h, 19, 35, 300, 0);
  m = h.mean_demand("vm-a", kStart + 10 * kSec, kStart + 30 * kSec);
  ASSERT_TRUE(m);
  EXPECT_NEAR(*m, (10 * 100 + 10 * 300) / 20.0, 1e-9);
}

TEST(KpiHistory, TheDefaultsKeepTenMinutesAtFullResolutionAndADayOfMinutes) {
  KpiHistory h;
  EXPECT_EQ(h.options().fine_samples, 600u);
  EXPECT_EQ(h.options().coarse_window, std::chrono::minutes(1));
  EXPECT_EQ(h.options().coarse_windows, 1440u);
  EXPECT_EQ(sizeof(KpiSample), 48u);  // the memory bound in kpi_history.h counts on it
}

}  // namespace
}  // namespace morph::controller
