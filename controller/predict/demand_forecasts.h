#pragma once
// DemandForecasts: the learned forecaster (controller/forecast/) run live, as a KPI consumer. For every VM
// that reports it feeds the QuantileForecaster one step of CPU demand at a time, read from the KpiHistory:
// the span-weighted mean of demand (on-CPU time + run-queue wait, millicores) over each `step` of wall
// clock, exactly what the backtest feeds from a trace's 5-minute `cpu_pct` (1 % of one CPU = 10 millicores,
// so a VM busy on one whole vCPU is 1000 millicores = cpu_pct 100). At each step it keeps the VM's p50 and
// p90 for 1..max_horizon steps ahead, which readers (the predictive bids, quotes) take under its lock.
//
// Registered once, in controller/runtime/kpi_consumers.h, after the history (so the step it closes is in
// the history) and before the market. A step closes on the first report of the VM past it; a VM silent
// for a step feeds nothing for it, and one silent for longer than max_horizon steps starts over (its old
// level says little). Memory per VM is the forecaster's (~1.1 KiB) plus this entry; at most max_vms VMs.
// It decides nothing, never talks to sockets and never reads a clock: time is the reports' timestamps.

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "controller/forecast/quantile_forecaster.h"
#include "controller/ingest/kpi_history.h"
#include "controller/ingest/kpi_observer.h"

namespace morph::controller {

struct DemandForecastsConfig {
  // One forecaster step. 5 minutes is the step of the PlanetLab traces the prior was fitted on.
  std::chrono::nanoseconds step = std::chrono::minutes(5);
  int max_horizon = 12;     // steps: an hour at the default step (cost advice looks an hour ahead)
  uint32_t min_steps = 12;  // a VM's forecast is trusted (bid on) after this many steps: 1 hour by default
  size_t max_vms = 100'000;
};

// One VM's forecasts as of the last step it closed.
struct VmDemandForecast {
  uint64_t steps = 0;                             // steps observed since it (re)started
  uint64_t as_of_ns = 0;                          // the end of the last step observed
  double last_mc = 0;                             // that step's mean demand
  std::vector<forecast::QuantileForecast> ahead;  // [h - 1]: the step h steps after as_of_ns, millicores
};

class DemandForecasts final : public KpiObserver {
 public:
  DemandForecasts(std::shared_ptr<const KpiHistory> history, DemandForecastsConfig config = {});

  void on_kpi_report(const v1::KpiReport& report, uint64_t received_ns) override;

  // The VM's forecasts; nullopt when it has closed no step yet.
  std::optional<VmDemandForecast> forecast(std::string_view vm) const;
  const DemandForecastsConfig& config() const { return cfg_; }
  size_t vm_count() const;

 private:
  struct Vm {
    size_t slot = 0;
    uint64_t open_step = 0;  // index of the step being filled (end_ns / step)
    VmDemandForecast latest;
  };
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  void close_step(const std::string& id, Vm& vm, uint64_t next_step);
  void forget_silent(uint64_t step);

  const DemandForecastsConfig cfg_;
  const uint64_t step_ns_;
  std::shared_ptr<const KpiHistory> history_;
  mutable std::mutex mu_;
  forecast::QuantileForecaster model_;
  std::unordered_map<std::string, Vm, Hash, std::equal_to<>> vms_;
  std::vector<size_t> free_slots_;
  uint64_t sweep_step_ = 0;
  bool full_logged_ = false;
};

}  // namespace morph::controller
