#pragma once
// Backtest: replays a trace through demand models step by step, as the controller would feed them live, and
// scores each one's forecasts for `horizon` steps ahead against what the trace then shows. At every step
// every VM's demand is fed first, then forecasts are made; the forecast scored for step t was made after
// step t - horizon was fed and before anything later was, so a model cannot see the future. Scores count
// the steps from `first_step` on. Values in and out are in the trace's unit, cpu_pct. No I/O.

#include <span>
#include <string>
#include <vector>

#include "controller/forecast/cli/trace.h"
#include "controller/forecast/demand_model.h"
#include "controller/forecast/forecast_score.h"

namespace morph::forecast {

struct BacktestOptions {
  int horizon = 1;
  size_t first_step = 36;  // the first step scored: three hours of history before it
};

struct BacktestRow {
  size_t vm;    // index into Trace::vms
  size_t step;  // the step forecast
  QuantileForecast forecast;
};

struct ModelScore {
  std::string model;
  ForecastScore score;
};

struct BacktestResult {
  std::vector<ModelScore> scores;  // one per model, in the order given
  std::vector<BacktestRow> rows;   // the first model's forecasts, by step then VM
};

// Checks the horizon against the options and every model (1..max_horizon(), and at most first_step).
Status check_backtest(const BacktestOptions& options, std::span<DemandModel* const> models);
// Feeds every step of the trace to one model, VM by VM within a step (demand in millicores).
void replay(const Trace& trace, DemandModel& model);
BacktestResult run_backtest(const Trace& trace, std::span<DemandModel* const> models, const BacktestOptions& options);

}  // namespace morph::forecast
