#pragma once
// RescueService: SLA rescue carried out in the market. Every KpiReport feeds the RescueEvaluator
// (rescue_policy.h) for the VMs that have a policy. A raise becomes an SLA-tier bid submitted on the
// owner's behalf (its rescue record written with it; listed with rescue = true), shrunk to the room left
// under the VM's ceiling (none left: not raised, re-armed); a retire cancels it; a refusal (budget, funds)
// is announced on bid.<account>. It keeps the VMs' policies (checked, written to the ledger, then put in
// force) and the rescue bids in force, and restores both from the ledger at start.
//
// It never clears the market, never sends a shift and never reads a clock. Every call is made with
// MarketState's lock held.

#include <map>
#include <string>
#include <utility>

#include "controller/ledger/ledger.h"
#include "controller/market_state/market_state.h"
#include "controller/market_state/market_views.h"
#include "controller/market_state/vm_directory.h"
#include "controller/rescue/rescue_policy.h"
#include "kpi_report_generated.h"

namespace morph::controller {

class RescueService {
 public:
  // The detection counts (breach_intervals, recover_intervals) and step sizes a policy may set: the
  // evaluator's step bound, and a count bound that keeps a breach or recovery within minutes at any sane
  // interval.
  static constexpr uint32_t kMinIntervals = 1, kMaxIntervals = 100;
  static constexpr int64_t kMaxStep = rescue::kMaxStep;
  // The quantiles a predictive bid may be sized at: the forecaster gives p50 and p90, and a quantile between
  // or a little beyond is read off them (controller/predict/predictive_plan.h).
  static constexpr uint32_t kMinQuantilePermille = 500, kMaxQuantilePermille = 990;

  RescueService(MarketState& state, MarketViews& views, const VmDirectory& vms)
      : state_(state), views_(views), vms_(vms) {}

  // The policies and rescue bids the ledger keeps (once, at start).
  void restore(const ledger::OperatorState& st);
  // One verified KpiReport: raises, retires or refuses rescues for the VMs in it that have a policy.
  void on_kpi_report(const v1::KpiReport& report);

  // The VM's policy; null when none was set (it is not rescued).
  const rescue::SlaPolicy* find_policy(const std::string& vm) const;
  // Checks `p` (each count and step against its range, naming the field; rescue needs a max price; the
  // evaluator's own checks), writes it to the ledger, then puts it in force.
  Status set_policy(const rescue::SlaPolicy& p);
  // The newest rescue bid in force for the VM, whichever signal raised it; 0: none.
  market::BidId rescue_bid(const std::string& vm) const;
  size_t policy_count() const { return policies_.size(); }
  const std::map<std::string, rescue::SlaPolicy>& policies() const { return policies_; }

 private:
  void raise(const std::string& vm, const std::string& owner, rescue::RescueAction& a);
  void retire(const std::string& vm, const rescue::RescueAction& a);
  void refused(const std::string& vm, const std::string& owner, const rescue::RescueAction& a);

  MarketState& state_;
  MarketViews& views_;
  const VmDirectory& vms_;
  rescue::RescueEvaluator evaluator_;
  std::map<std::string, rescue::SlaPolicy> policies_;
  std::map<std::pair<std::string, int>, market::BidId> rescue_bid_;  // (vm, rescue::Signal) → bid in force
};

}  // namespace morph::controller
