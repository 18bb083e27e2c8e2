// The naive demand models on synthetic series (constant, step, ramp, spikes): each baseline does exactly what
// its definition in baselines.h says, and the decaying histogram buckets, weighs and reads as VPA's does.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "controller/forecast/baselines.h"
#include "controller/forecast/decaying_histogram.h"
#include "controller/forecast/forecast_score.h"
#include "tests/unit/forecast_series.h"

namespace morph::forecast {
namespace {

TEST(LastValueModel, ForecastsTheLastStepForEveryHorizon) {
  LastValueModel m;
  feed(m, kRamp, 50);
  for (int h : {1, 6}) {
    EXPECT_DOUBLE_EQ(m.forecast(0, h).p50, kRamp(49));
    EXPECT_DOUBLE_EQ(m.forecast(0, h).p90, kRamp(49));
  }
  feed(m, kStepUp, 101, 99);  // the step change shows one step later
  EXPECT_DOUBLE_EQ(m.forecast(0, 1).p50, 600.0);
}

TEST(MovingAverageModel, MeanAndNinetiethPercentileOfTheWindow) {
  MovingAverageModel m(12);
  feed(m, kConstant, 30);
  EXPECT_DOUBLE_EQ(m.forecast(0, 1).p50, 400.0);
  EXPECT_DOUBLE_EQ(m.forecast(0, 1).p90, 400.0);
  // Three steps after the step change, 3 of the 12 values are 600.
  m.reset(0);
  feed(m, kStepUp, 103, 88);
  EXPECT_DOUBLE_EQ(m.forecast(0, 1).p50, (9 * 200.0 + 3 * 600.0) / 12);
  EXPECT_DOUBLE_EQ(m.forecast(0, 1).p90, 600.0);  // the 0.9 order statistic lies among the 600s
  // Spikes: one in ten steps. The window (steps 28..39) holds two, at 29 and 39; sorted, the 0.9 quantile
  // sits at position 0.9 * 11 = 9.9, between the last 100 (index 9) and the first 900 (index 10).
  m.reset(0);
  feed(m, kSpikes, 40);
  EXPECT_NEAR(m.forecast(0, 1).p50, (10 * 100.0 + 2 * 900.0) / 12, 1e-9);
  EXPECT_NEAR(m.forecast(0, 1).p90, 100.0 + (900.0 - 100.0) * 0.9, 1e-9);
}

TEST(EwmaModel, HalfLifeMeansHalfWayAfterThatManySteps) {
  EwmaModel m(6);
  EXPECT_EQ(m.name(), "ewma-6");
  feed(m, kConstant, 20);
  EXPECT_DOUBLE_EQ(m.forecast(0, 1).p50, 400.0);
  EXPECT_DOUBLE_EQ(m.forecast(0, 1).p90, 400.0);  // no spread on a constant
  m.reset(0);
  feed(m, kStepUp, 106, 90);  // 6 steps at 600 after 10 at 200
  EXPECT_NEAR(m.forecast(0, 1).p50, 400.0, 1e-9);
  EXPECT_GT(m.forecast(0, 1).p90, 400.0);
  // A ramp: the mean lags behind the last value.
  m.reset(0);
  feed(m, kRamp, 100);
  EXPECT_LT(m.forecast(0, 1).p50, kRamp(99));
  EXPECT_GT(m.forecast(0, 1).p50, kRamp(99) - 5.0 * 12);
}

TEST(DecayingHistogram, PercentileIsTheEndOfTheBucketAsInVpa) {
  const BucketLayout b;  // VPA's CPU layout in millicores: 10 m first, 5 % growth, up to 1000 cores
  EXPECT_EQ(b.count(), 176);
  EXPECT_EQ(b.find(5), 0);
  EXPECT_EQ(b.find(-1), 0);
  EXPECT_EQ(b.find(10), 1);
  EXPECT_EQ(b.find(1e9), b.count() - 1);
  EXPECT_DOUBLE_EQ(b.start(1), 10.0);
  EXPECT_NEAR(b.start(2), 10 + 10 * 1.05, 1e-9);
  for (int i = 1; i < b.count(); ++i) {  // every boundary belongs to the bucket it starts
    EXPECT_EQ(b.find(b.start(i)), i);
    EXPECT_EQ(b.find(std::nextafter(b.start(i), 0.0)), i - 1);
  }
  DecayingHistogram h(b, 288);
  EXPECT_TRUE(h.empty());
  EXPECT_EQ(h.percentile(0.5), 0.0);
  for (int t = 0; t < 10; ++t) h.add(400, t);
  const int bucket = b.find(400);
  EXPECT_DOUBLE_EQ(h.percentile(0.5), b.start(bucket + 1));
  EXPECT_DOUBLE_EQ(h.percentile(0.9), b.start(bucket + 1));
  const double mid = h.interpolated_percentile(0.5);
  EXPECT_GT(mid, b.start(bucket));
  EXPECT_LT(mid, b.start(bucket + 1));
}

TEST(DecayingHistogram, NewerSamplesOutweighOlderOnesByTheHalfLife) {
  const BucketLayout b;
  // One sample of 100 at step 0 and one of 1000 at step 10 with half-life 10: weights 1 and 2, so the
  // 0.4 quantile lies in 100's bucket and the 0.5 quantile in 1000's.
  DecayingHistogram h(b, 10);
  h.add(100, 0);
  h.add(1000, 10);
  EXPECT_DOUBLE_EQ(h.percentile(0.3), b.start(b.find(100) + 1));
  EXPECT_DOUBLE_EQ(h.percentile(0.5), b.start(b.find(1000) + 1));
}

TEST(DecayingHistogram, RescalingPastTheMaximumExponentKeepsPercentiles) {
  const BucketLayout b;
  // Half-life 1 step: past step 100 the weights would overflow the exponent VPA allows, so the histogram
  // moves its reference; a steady mix of 100 and 1000 (3:1) must keep its quantiles throughout.
  DecayingHistogram h(b, 1);
  double p50_before = 0;
  for (int t = 0; t < 1000; ++t) {
    h.add(t % 4 == 3 ? 1000 : 100, t);
    EXPECT_TRUE(std::isfinite(h.interpolated_percentile(0.5)));
    if (t == 99) p50_before = h.percentile(0.5);
  }
  EXPECT_DOUBLE_EQ(h.percentile(0.5), p50_before);
  EXPECT_DOUBLE_EQ(h.percentile(0.99), b.start(b.find(1000) + 1));
}

TEST(DecayingHistogramModel, ForecastsVpasMedianAndNinetiethPercentile) {
  DecayingHistogramModel m;
  const BucketLayout b;
  feed(m, kSpikes, 100);  // 90 % at 100, 10 % at 900
  EXPECT_DOUBLE_EQ(m.forecast(0, 1).p50, b.start(b.find(100) + 1));
  // The spikes came last in each ten, so they weigh a little more than 10 %: the p90 reaches their bucket.
  EXPECT_DOUBLE_EQ(m.forecast(0, 1).p90, b.start(b.find(900) + 1));
  m.reset(0);
  EXPECT_EQ(m.forecast(0, 1).p50, 0.0);
}

TEST(StandardBaselines, AreTheFiveOfTheIssue) {
  std::vector<std::string> names;
  for (const auto& m : standard_baselines()) names.push_back(m->name());
  EXPECT_EQ(names, (std::vector<std::string>{"last", "ma-12", "ewma-6", "ewma-12", "vpa-histogram"}));
}

TEST(ForecastScore, MaeAndPinballByTheirDefinitions) {
  ForecastScore s;
  s.add({10, 20}, 30);  // under both: |30-10| = 20; pinball 0.9 * 10 = 9
  s.add({10, 20}, 0);   // over both: 10; pinball 0.1 * 20 = 2
  EXPECT_DOUBLE_EQ(s.mae_p50(), 15.0);
  EXPECT_DOUBLE_EQ(s.pinball_p90(), 5.5);
  EXPECT_DOUBLE_EQ(s.coverage_p90(), 0.5);
}

}  // namespace
}  // namespace morph::forecast
