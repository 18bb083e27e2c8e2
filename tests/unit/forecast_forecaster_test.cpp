// The learned forecaster on synthetic series (constant, step, ramp, spikes, noise of known quantiles): it
// follows level changes, keeps p90 above p50, covers about 90 % of a noisy series, and a reset slot keeps
// nothing of its old VM.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "controller/forecast/forecast_score.h"
#include "controller/forecast/quantile_forecaster.h"
#include "tests/unit/forecast_series.h"

namespace morph::forecast {
namespace {

TEST(QuantileForecaster, ConstantDemandForecastsThatConstant) {
  for (bool prior : {true, false}) {
    QuantileForecasterConfig c;
    c.prior = prior;
    QuantileForecaster m(c);
    feed(m, kConstant, 300);
    for (int h = 1; h <= m.max_horizon(); ++h) {
      const QuantileForecast f = m.forecast(0, h);
      EXPECT_NEAR(f.p50, 400.0, 400.0 * 0.05) << "prior " << prior << " h " << h;
      EXPECT_GE(f.p90, f.p50);
      EXPECT_LT(f.p90, 400.0 * 1.15) << "prior " << prior << " h " << h;
    }
  }
}

TEST(QuantileForecaster, FollowsAStepChangeWithinAFewHalfLives) {
  QuantileForecaster m;
  feed(m, kStepUp, 100);
  EXPECT_NEAR(m.forecast(0, 1).p50, 200.0, 20.0);
  feed(m, kStepUp, 160, 100);  // 60 steps at the new level
  EXPECT_NEAR(m.forecast(0, 1).p50, 600.0, 60.0);
  EXPECT_GE(m.forecast(0, 1).p90, 600.0 * 0.95);
}

TEST(QuantileForecaster, ARampRaisesTheForecast) {
  QuantileForecaster m;
  feed(m, kRamp, 40);
  const double early = m.forecast(0, 1).p50;
  feed(m, kRamp, 80, 40);
  EXPECT_GT(m.forecast(0, 1).p50, early + 5.0 * 20);
}

TEST(QuantileForecaster, SpikesRaiseTheP90AboveTheP50) {
  QuantileForecaster m;
  feed(m, kSpikes, 200);
  const QuantileForecast f = m.forecast(0, 1);
  EXPECT_NEAR(f.p50, 100.0, 60.0);
  EXPECT_GT(f.p90, f.p50 + 50.0);
  EXPECT_LT(f.p90, 900.0);
}

// Noise of known quantiles: demand uniform in [200, 600] for 200 VMs; the p50 should sit near 400 and the
// p90 near 560, and about 90 % of outcomes should fall at or under the p90.
TEST(QuantileForecaster, CalibratedOnNoiseOfKnownQuantiles) {
  QuantileForecaster m;
  constexpr size_t kVms = 200;
  m.resize(kVms);
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> demand(200, 600);
  ForecastScore score;
  std::vector<QuantileForecast> pending(kVms);
  for (int t = 0; t < 400; ++t) {
    for (size_t v = 0; v < kVms; ++v) {
      const double y = demand(rng);
      if (t >= 200) score.add(pending[v], y);
      m.observe(v, y);
      pending[v] = m.forecast(v, 1);
    }
  }
  EXPECT_NEAR(score.coverage_p90(), 0.9, 0.03);
  double p50 = 0, p90 = 0;
  for (size_t v = 0; v < kVms; ++v) {
    p50 += pending[v].p50 / kVms;
    p90 += pending[v].p90 / kVms;
  }
  EXPECT_NEAR(p50, 400.0, 30.0);
  EXPECT_NEAR(p90, 560.0, 40.0);
}

// A reset slot carries nothing of its old VM: fed the same steps as a never-used slot of the same model,
// it forecasts the same (the p50 exactly; the p90 offsets may differ by a step, as each slot learns its
// own after the other's update of the shared weights).
TEST(QuantileForecaster, AResetSlotForecastsLikeAFreshOne) {
  QuantileForecaster m;
  m.resize(3);
  for (int t = 0; t < 50; ++t) m.observe(1, kSpikes(t));
  m.reset(1);
  EXPECT_EQ(m.observed(1), 0u);
  EXPECT_EQ(m.forecast(1, 1).p50, 0.0);
  for (int t = 0; t < 20; ++t) {
    m.observe(1, kRamp(t));
    m.observe(2, kRamp(t));
  }
  EXPECT_EQ(m.observed(1), 20u);
  for (int h = 1; h <= m.max_horizon(); ++h) {
    EXPECT_DOUBLE_EQ(m.forecast(1, h).p50, m.forecast(2, h).p50);
    EXPECT_NEAR(m.forecast(1, h).p90, m.forecast(2, h).p90, 0.05 * m.forecast(2, h).p90);
  }
}

TEST(QuantileForecaster, HorizonsBeyondThePriorTakeItsLongest) {
  QuantileForecasterConfig c;
  c.max_horizon = 12;
  QuantileForecaster m(c);
  EXPECT_EQ(m.learned().size(), 12u);
  EXPECT_EQ(m.learned()[11], m.learned()[5]);
  feed(m, kConstant, 50);
  EXPECT_NEAR(m.forecast(0, 12).p50, 400.0, 40.0);
  EXPECT_EQ(m.forecast(0, 13).p50, 0.0);  // outside the configured horizons: no forecast
}

}  // namespace
}  // namespace morph::forecast
