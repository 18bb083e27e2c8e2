#include "controller/forecast/cli/backtest.h"

namespace morph::forecast {

Status check_backtest(const BacktestOptions& options, std::span<DemandModel* const> models) {
  if (options.horizon < 1 || static_cast<size_t>(options.horizon) > options.first_step) {
    return Error(Errc::invalid_argument, "horizon " + std::to_string(options.horizon) + " out of range 1.." +
                                             std::to_string(options.first_step));
  }
  for (const DemandModel* m : models) {
    if (options.horizon > m->max_horizon()) {
      return Error(Errc::invalid_argument, "horizon " + std::to_string(options.horizon) + " is beyond " + m->name() +
                                               "'s longest, " + std::to_string(m->max_horizon()) + " steps");
    }
  }
  return {};
}

namespace {
void feed_step(const Trace& trace, size_t t, DemandModel& model) {
  for (size_t v = 0; v < trace.vms.size(); ++v) {
    if (t < trace.cpu_pct[v].size()) model.observe(v, pct_to_millicores(trace.cpu_pct[v][t]));
  }
}
}  // namespace

void replay(const Trace& trace, DemandModel& model) {
  model.resize(trace.vms.size());
  for (size_t t = 0; t < trace.steps(); ++t) feed_step(trace, t, model);
}

BacktestResult run_backtest(const Trace& trace, std::span<DemandModel* const> models, const BacktestOptions& options) {
  BacktestResult result;
  const size_t vms = trace.vms.size();
  const size_t steps = trace.steps();
  const auto h = static_cast<size_t>(options.horizon);
  for (DemandModel* m : models) {
    m->resize(vms);
    result.scores.push_back({m->name(), {}});
  }
  for (size_t t = 0; t < steps; ++t) {
    for (DemandModel* m : models) feed_step(trace, t, *m);
    // Forecasts made now, with data through step t, are for step t + h.
    const size_t target = t + h;
    if (target < options.first_step) continue;
    for (size_t v = 0; v < vms; ++v) {
      if (target >= trace.cpu_pct[v].size()) continue;
      const double outcome = trace.cpu_pct[v][target];
      for (size_t i = 0; i < models.size(); ++i) {
        const QuantileForecast mc = models[i]->forecast(v, options.horizon);
        const QuantileForecast pct{millicores_to_pct(mc.p50), millicores_to_pct(mc.p90)};
        result.scores[i].score.add(pct, outcome);
        if (i == 0) result.rows.push_back({v, target, pct});
      }
    }
  }
  return result;
}

}  // namespace morph::forecast
