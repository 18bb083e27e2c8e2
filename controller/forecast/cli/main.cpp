// morph-forecast: the demand forecaster over recorded traces, without a controller.
//   backtest: replays a PlanetLab-format trace, writes every VM's forecasts for a horizon and prints each
//             model's accuracy beside the baselines'
//   fit:      fits the forecaster's prior weights on a trace and writes them as prior_weights.cpp
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>

#include "controller/forecast/baselines.h"
#include "controller/forecast/cli/backtest.h"
#include "controller/forecast/cli/fit.h"
#include "controller/forecast/quantile_forecaster.h"

namespace {

using namespace morph;
using namespace morph::forecast;

int fail(const Error& e) {
  std::cerr << "morph-forecast: " << e.what() << "\n";
  return 1;
}

Status write_rows(const std::string& path, const Trace& trace, const BacktestResult& result) {
  std::ofstream out(path, std::ios::trunc);
  if (!out) return Error(Errc::io, "cannot write " + path, errno);
  out << "vm,step,p50,p90\n";
  char buf[64];
  for (const BacktestRow& r : result.rows) {
    std::snprintf(buf, sizeof buf, ",%zu,%.3f,%.3f\n", r.step, r.forecast.p50, r.forecast.p90);
    out << trace.vms[r.vm] << buf;
  }
  out.close();
  if (!out) return Error(Errc::io, "cannot write " + path, errno);
  return {};
}

void print_scores(const BacktestResult& result, int horizon) {
  std::printf("horizon %d step(s); %zu forecasts per model; cpu_pct of one CPU\n", horizon,
              result.scores.empty() ? size_t{0} : result.scores[0].score.count());
  std::printf("%-16s %10s %12s %12s\n", "model", "MAE p50", "pinball p90", "p90 cover");
  for (const ModelScore& s : result.scores) {
    std::printf("%-16s %10.4f %12.4f %12.3f\n", s.model.c_str(), s.score.mae_p50(), s.score.pinball_p90(),
                s.score.coverage_p90());
  }
}

int backtest(const std::string& trace_path, int horizon, const std::string& out_path, bool cold) {
  QuantileForecasterConfig config;
  config.prior = !cold;
  std::vector<std::unique_ptr<DemandModel>> models;
  models.push_back(std::make_unique<QuantileForecaster>(config));
  for (auto& b : standard_baselines()) models.push_back(std::move(b));
  std::vector<DemandModel*> ptrs;
  for (auto& m : models) ptrs.push_back(m.get());
  BacktestOptions options;
  options.horizon = horizon;
  if (auto st = check_backtest(options, ptrs); !st) return fail(st.error());
  auto trace = read_trace(trace_path);
  if (!trace) return fail(trace.error());
  const BacktestResult result = run_backtest(*trace, ptrs, options);
  if (auto st = write_rows(out_path, *trace, result); !st) return fail(st.error());
  print_scores(result, horizon);
  return 0;
}

int fit(const std::string& trace_path, int epochs, const std::string& out_path) {
  auto trace = read_trace(trace_path);
  if (!trace) return fail(trace.error());
  const LearnedWeights learned = fit_prior(*trace, epochs);
  const std::string name = trace_path.substr(trace_path.find_last_of('/') + 1);
  std::ofstream out(out_path, std::ios::trunc);
  out << prior_source(learned, name + ", " + std::to_string(epochs) + " pass(es)");
  out.close();
  if (!out) return fail(Error(Errc::io, "cannot write " + out_path, errno));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"morph-forecast: CPU demand forecasts over recorded traces"};
  app.require_subcommand(1);

  auto* bt = app.add_subcommand("backtest", "replay a trace; write each VM's forecasts; print accuracy");
  std::string trace_path, out_path;
  int horizon = 1;
  bool cold = false;
  bt->add_option("--trace", trace_path, "trace: vm,step,cpu_pct (.csv.gz or .csv)")->required();
  bt->add_option("--horizon", horizon, "steps ahead (5-minute steps in PlanetLab traces)")->required();
  bt->add_option("--out", out_path, "CSV to write: vm,step,p50,p90 (cpu_pct)")->required();
  bt->add_flag("--cold", cold, "start the forecaster from naive weights instead of its fitted prior");

  auto* ft = app.add_subcommand("fit", "fit the forecaster's prior on a trace; write prior_weights.cpp");
  std::string fit_trace, fit_out;
  int epochs = 1;
  ft->add_option("--trace", fit_trace, "trace: vm,step,cpu_pct (.csv.gz or .csv)")->required();
  ft->add_option("--epochs", epochs, "passes over the trace")->check(CLI::Range(1, 100));
  ft->add_option("--out", fit_out, "C++ source to write")->required();

  CLI11_PARSE(app, argc, argv);
  try {
    if (bt->parsed()) return backtest(trace_path, horizon, out_path, cold);
    return fit(fit_trace, epochs, fit_out);
  } catch (const std::exception& e) {
    std::cerr << "morph-forecast: " << e.what() << "\n";
    return 1;
  }
}
