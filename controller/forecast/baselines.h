#pragma once
// The naive forecasters the learned one must beat (issue #14), each a DemandModel over bounded per-VM state:
//   LastValueModel          the last step's demand, for p50 and p90 alike (it has no notion of spread)
//   MovingAverageModel      p50: mean of the last N steps; p90: the 90th percentile of those N values
//   EwmaModel               p50: exponentially weighted mean with a half-life in steps; p90: that mean plus
//                           z(0.9) = 1.2816 exponentially weighted standard deviations (same half-life)
//   DecayingHistogramModel  Kubernetes' VPA recommender: each step's demand adds weight 2^(step/half-life)
//                           to an exponentially bucketed histogram (first bucket 10 millicores, each 5 %
//                           wider; half-life 24 h = 288 five-minute steps), and a percentile is the end of
//                           the bucket where the cumulative weight reaches it.
// None depends on the horizon: each forecasts the same value for every step ahead. No clock, no I/O.

#include <cstdint>
#include <memory>
#include <vector>

#include "controller/forecast/decaying_histogram.h"
#include "controller/forecast/demand_model.h"
#include "controller/forecast/recent_window.h"

namespace morph::forecast {

// The horizon baselines accept: any the learned model does (they ignore it).
inline constexpr int kBaselineMaxHorizon = 1 << 20;

// The slot bookkeeping every baseline shares: one State per VM, made by Derived::fresh(), fed by
// Derived::update(State&, demand) and read by Derived::predict(const State&).
template <class Derived, class State>
class PerVmBaseline : public DemandModel {
 public:
  int max_horizon() const override { return kBaselineMaxHorizon; }
  void resize(size_t vms) override {
    while (states_.size() < vms) states_.push_back(self().fresh());
    states_.erase(states_.begin() + static_cast<std::ptrdiff_t>(vms), states_.end());
  }
  void reset(size_t vm) override { states_[vm] = self().fresh(); }
  void observe(size_t vm, double demand) override { self().update(states_[vm], demand); }
  QuantileForecast forecast(size_t vm, int) const override { return self().predict(states_[vm]); }

 private:
  const Derived& self() const { return static_cast<const Derived&>(*this); }
  std::vector<State> states_;
};

class LastValueModel final : public PerVmBaseline<LastValueModel, double> {
 public:
  std::string name() const override { return "last"; }
  double fresh() const { return 0.0; }
  void update(double& last, double demand) const { last = demand; }
  QuantileForecast predict(const double& last) const { return {last, last}; }
};

struct MovingWindow {
  RecentWindow recent;
  double sum = 0;
};

class MovingAverageModel final : public PerVmBaseline<MovingAverageModel, MovingWindow> {
 public:
  explicit MovingAverageModel(size_t window = 12) : window_(window) {}
  std::string name() const override;
  MovingWindow fresh() const { return {RecentWindow(window_), 0.0}; }
  void update(MovingWindow& w, double demand) const;
  QuantileForecast predict(const MovingWindow& w) const;

 private:
  size_t window_;
};

struct EwmaState {
  double mean = 0;
  double var = 0;
  bool seen = false;
};

class EwmaModel final : public PerVmBaseline<EwmaModel, EwmaState> {
 public:
  explicit EwmaModel(double half_life_steps);
  std::string name() const override;
  EwmaState fresh() const { return {}; }
  void update(EwmaState& s, double demand) const;
  QuantileForecast predict(const EwmaState& s) const;

 private:
  double half_life_;
  double alpha_;
};

struct HistogramState {
  DecayingHistogram histogram;
  int64_t step = 0;  // steps fed so far
};

class DecayingHistogramModel final : public PerVmBaseline<DecayingHistogramModel, HistogramState> {
 public:
  explicit DecayingHistogramModel(double half_life_steps = 288, HistogramBuckets buckets = {});
  DecayingHistogramModel(const DecayingHistogramModel&) = delete;  // its histograms point at its layout
  DecayingHistogramModel& operator=(const DecayingHistogramModel&) = delete;
  std::string name() const override { return "vpa-histogram"; }
  HistogramState fresh() const { return {DecayingHistogram(layout_, half_life_), 0}; }
  void update(HistogramState& s, double demand) const { s.histogram.add(demand, s.step++); }
  QuantileForecast predict(const HistogramState& s) const;

 private:
  double half_life_;
  BucketLayout layout_;
};

// The baselines of issue #14, in report order: last value, moving average of 12, EWMA with half-lives of 6
// and 12 steps, VPA's decaying histogram.
std::vector<std::unique_ptr<DemandModel>> standard_baselines();

}  // namespace morph::forecast
