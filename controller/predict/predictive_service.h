#pragma once
// PredictiveService: predictive bids carried out in the running market (issue #14). For a VM whose policy
// has predictive on, it keeps an `improve`-tier CPU bid for the forecast demand above the VM's baseline in
// place ahead of need (DemandForecasts, sized by predictive_plan.h), amends it as the forecast moves and
// cancels it when the forecast falls, the policy is turned off or the budget no longer covers it. The bid is
// the owner's, at the policy's max_price, tagged predictive (MarketState) and recorded in the ledger like a
// rescue (signal "predictive"), so a restarted controller still knows it. Rescue stays the safety net: its
// SLA-tier bids outrank this one and are counted against the same hourly budget first.
//
// A VM with fewer than min_steps forecaster steps gets no bid, and status() says how many it has. It never
// clears the market, never sends a shift and never reads a clock. Every call is made with MarketState's
// lock held.

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "controller/ledger/ledger.h"
#include "controller/market_state/market_state.h"
#include "controller/market_state/market_views.h"
#include "controller/market_state/vm_directory.h"
#include "controller/predict/demand_forecasts.h"
#include "controller/rescue/rescue_service.h"
#include "kpi_report_generated.h"

namespace morph::controller {

class PredictiveService {
 public:
  PredictiveService(MarketState& state, MarketViews& views, const VmDirectory& vms, const RescueService& rescue)
      : state_(state), views_(views), vms_(vms), rescue_(rescue) {}

  // The forecasts the bids follow (the runtime's KPI consumer); none: predictive policies are refused.
  void use_forecasts(std::shared_ptr<const DemandForecasts> forecasts) { forecasts_ = std::move(forecasts); }
  // The predictive bids the ledger keeps (once, at start).
  void restore(const ledger::OperatorState& st);
  // One verified KpiReport: places, amends or cancels the predictive bid of each VM in it that has a policy.
  void on_kpi_report(const v1::KpiReport& report);
  // Whether the policy's predictive settings can be carried out (a forecaster runs; the horizon within its
  // reach), naming the field that cannot.
  Status check(const rescue::SlaPolicy& p) const;
  // After a policy was set: turned off, its bid is cancelled.
  void policy_changed(const std::string& vm);

  market::BidId bid(const std::string& vm) const;
  // What `policy get` says about the VM's predictive bid: why there is one, or none.
  std::string status(const std::string& vm) const;

  // Cost advice for `quote`: the VM's likely CPU increment over the next hour (or the forecaster's reach).
  struct Advice {
    bool ready = false;
    std::string note;
    int64_t baseline_mc = 0, p50_peak_mc = 0, p90_peak_mc = 0, increment_mc = 0;
    uint32_t horizon_s = 0;
  };
  Advice advice(const std::string& vm) const;

 private:
  void evaluate(const std::string& vm, const rescue::SlaPolicy& p);
  void cancel(const std::string& vm, const std::string& why);
  // The forecast when the VM has enough steps for a bid; else nullopt and `why` says what is missing.
  std::optional<VmDemandForecast> usable(const std::string& vm, std::string& why) const;
  int horizon_steps(uint32_t horizon_s) const;

  MarketState& state_;
  MarketViews& views_;
  const VmDirectory& vms_;
  const RescueService& rescue_;
  std::shared_ptr<const DemandForecasts> forecasts_;
  std::map<std::string, market::BidId> bids_;  // vm → predictive bid in force
  std::map<std::string, std::string> status_;  // vm → the last decision, for policy get
};

}  // namespace morph::controller
