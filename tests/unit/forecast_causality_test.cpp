// Causality of the backtest, as a property: over random traces, a forecast made with data through step k
// is the same whatever the trace holds after step k. Checked for every model (the learned forecaster shares
// its weights across VMs, so a later row of ANY VM must not leak either), at every horizon, by changing
// every row after a random step of a random trace and comparing forecasts bit for bit.
#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <vector>

#include "controller/forecast/baselines.h"
#include "controller/forecast/cli/backtest.h"
#include "controller/forecast/quantile_forecaster.h"

namespace morph::forecast {
namespace {

Trace random_trace(std::mt19937& rng, size_t vms, size_t steps) {
  Trace t;
  std::uniform_real_distribution<double> level(0, 80);
  std::normal_distribution<double> noise(0, 8);
  for (size_t v = 0; v < vms; ++v) {
    t.vms.push_back("vm" + std::to_string(v));
    std::vector<double> s(steps);
    double l = level(rng);
    for (auto& x : s) {
      if (rng() % 40 == 0) l = level(rng);  // a level change now and then
      x = std::clamp(std::round(l + noise(rng)), 0.0, 100.0);
    }
    t.cpu_pct.push_back(std::move(s));
  }
  return t;
}

std::vector<std::unique_ptr<DemandModel>> all_models() {
  std::vector<std::unique_ptr<DemandModel>> models;
  models.push_back(std::make_unique<QuantileForecaster>());
  for (auto& b : standard_baselines()) models.push_back(std::move(b));
  return models;
}

// Every model's forecasts for the trace, one backtest per model (each as the first, whose rows are kept).
std::vector<std::vector<BacktestRow>> forecasts(const Trace& trace, int horizon) {
  std::vector<std::vector<BacktestRow>> out;
  for (auto& m : all_models()) {
    DemandModel* p = m.get();
    BacktestOptions o;
    o.horizon = horizon;
    o.first_step = 6;
    out.push_back(run_backtest(trace, std::span<DemandModel* const>(&p, 1), o).rows);
  }
  return out;
}

TEST(ForecastCausality, LaterRowsDoNotChangeEarlierForecasts) {
  std::mt19937 rng(20110303);
  int changed_later = 0;
  for (int round = 0; round < 12; ++round) {
    const size_t vms = 3 + rng() % 20;
    const size_t steps = 40 + rng() % 60;
    const Trace a = random_trace(rng, vms, steps);
    const size_t k = 6 + rng() % (steps - 10);  // the last step whose rows stay
    Trace b = a;
    std::uniform_real_distribution<double> other(0, 100);
    for (auto& s : b.cpu_pct)
      for (size_t t = k + 1; t < s.size(); ++t) s[t] = std::round(other(rng));
    const int horizon = 1 + static_cast<int>(rng() % 6);
    const auto fa = forecasts(a, horizon);
    const auto fb = forecasts(b, horizon);
    ASSERT_EQ(fa.size(), fb.size());
    for (size_t m = 0; m < fa.size(); ++m) {
      ASSERT_EQ(fa[m].size(), fb[m].size());
      for (size_t i = 0; i < fa[m].size(); ++i) {
        const BacktestRow& ra = fa[m][i];
        const BacktestRow& rb = fb[m][i];
        ASSERT_EQ(ra.vm, rb.vm);
        ASSERT_EQ(ra.step, rb.step);
        // Made with data through ra.step - horizon.
        if (ra.step - static_cast<size_t>(horizon) <= k) {
          ASSERT_EQ(ra.forecast.p50, rb.forecast.p50) << "model " << m << " round " << round << " step " << ra.step;
          ASSERT_EQ(ra.forecast.p90, rb.forecast.p90) << "model " << m << " round " << round << " step " << ra.step;
        } else if (ra.forecast.p50 != rb.forecast.p50) {
          ++changed_later;
        }
      }
    }
  }
  // The property is not vacuous: the changed rows do move the forecasts made after them.
  EXPECT_GT(changed_later, 100);
}

// The backtest scores a forecast against the row `horizon` steps after its data: a model that forecasts
// the last value it saw scores exactly |y(t) - y(t-h)|.
TEST(ForecastCausality, ScoresEachForecastAgainstTheStepItIsFor) {
  Trace t;
  t.vms = {"a"};
  t.cpu_pct = {{0, 1, 3, 6, 10, 15, 21, 28, 36, 45}};
  LastValueModel m;
  DemandModel* p = &m;
  BacktestOptions o;
  o.horizon = 2;
  o.first_step = 4;
  const BacktestResult r = run_backtest(t, std::span<DemandModel* const>(&p, 1), o);
  ASSERT_EQ(r.rows.size(), 6u);  // steps 4..9
  double sum = 0;
  for (const BacktestRow& row : r.rows) {
    EXPECT_DOUBLE_EQ(row.forecast.p50, t.cpu_pct[0][row.step - 2]);
    sum += t.cpu_pct[0][row.step] - t.cpu_pct[0][row.step - 2];
  }
  EXPECT_DOUBLE_EQ(r.scores[0].score.mae_p50(), sum / 6);
}

}  // namespace
}  // namespace morph::forecast
