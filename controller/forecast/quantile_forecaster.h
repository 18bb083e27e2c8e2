#pragma once
// QuantileForecaster: the learned CPU-demand forecaster (issue #14). For every VM it forecasts the p50 and
// p90 of demand 1..max_horizon steps ahead, online: after each step it learns from the forecasts that step
// settles and makes new ones. The method was chosen by measurement on PlanetLab traces against the
// naive baselines (docs/benchmarks.md, "Demand forecasting"):
//
//   - Per VM, a few features of its recent demand, all in millicores: the last step, exponentially weighted
//     means with half-lives of 6 and 24 steps, the mean absolute deviation around the first, the median of
//     the last 12 steps, the 50th, 75th and 90th percentiles of a decaying histogram (half-life 24 steps),
//     and a constant (`unit`).
//   - Linear quantile regression over those features, one weight vector per horizon and quantile, shared by
//     the fleet and learned by stochastic gradient descent on the pinball loss (AdaGrad steps with a slowly
//     forgotten gradient sum, so it keeps adapting). Features and outcomes are divided by the VM's own scale
//     (an EWMA of its demand plus `unit`) so that big and small VMs teach the model alike.
//   - Per VM and horizon, a p90 offset learned from that VM's own residuals (online quantile tracking, in
//     the manner of conformal calibration), for VMs whose spread the shared model misjudges.
//   - Weights start from a prior fitted on one PlanetLab day (prior_weights.cpp; `morph-forecast fit`).
//
// Memory per VM is fixed by the configuration (about 1.1 KiB with the defaults); one observe() costs
// O(features x horizons + histogram buckets), whatever the history's length. No clock, no I/O.

#include <array>
#include <cstdint>
#include <vector>

#include "controller/forecast/decaying_histogram.h"
#include "controller/forecast/demand_model.h"
#include "controller/forecast/recent_window.h"

namespace morph::forecast {

inline constexpr int kFeatureCount = 9;
inline constexpr int kQuantileCount = 2;  // p50, p90
using FeatureVector = std::array<float, kFeatureCount>;
using WeightVector = std::array<double, kFeatureCount>;

// What the fleet shares for one horizon, per quantile (0: p50, 1: p90): the weights and their AdaGrad sums.
struct HorizonWeights {
  std::array<WeightVector, kQuantileCount> weights;
  std::array<WeightVector, kQuantileCount> grad_sq;
  bool operator==(const HorizonWeights&) const = default;
};
// Per horizon, from 1.
using LearnedWeights = std::vector<HorizonWeights>;

// AdaGrad's step per weight, learning_rate / sqrt(sum of squared gradients), recomputed every
// kStepRefresh updates rather than at each (a square root per weight per update was half the cost of
// observe()); the sums forget by grad_sq_decay per update, applied at each refresh.
inline constexpr int kStepRefresh = 32;

struct QuantileForecasterConfig {
  int max_horizon = 6;              // steps
  double unit = 10;                 // millicores: demand below this is as good as idle
  double learning_rate = 0.03;      // AdaGrad step
  double grad_sq_decay = 0.99999;   // per update: AdaGrad's sums forget, so learning never stops
  double offset_rate = 0.01;        // per-VM p90 offset step, in units of the VM's scale
  double histogram_half_life = 24;  // steps
  bool prior = true;                // start from the fitted prior, not from naive_weights()
};

class QuantileForecaster final : public DemandModel {
 public:
  explicit QuantileForecaster(QuantileForecasterConfig config = {});
  QuantileForecaster(const QuantileForecaster&) = delete;  // its histograms point at its layout
  QuantileForecaster& operator=(const QuantileForecaster&) = delete;

  std::string name() const override { return "forecaster"; }
  int max_horizon() const override { return config_.max_horizon; }
  void resize(size_t vms) override;
  void reset(size_t vm) override;
  void observe(size_t vm, double demand) override;
  QuantileForecast forecast(size_t vm, int horizon) const override;

  // Steps fed to one VM since its last reset.
  uint64_t observed(size_t vm) const { return vms_[vm].seen; }
  const LearnedWeights& learned() const { return learned_; }
  // Replaces the shared weights (horizons beyond those given take the longest one's).
  void set_learned(const LearnedWeights& learned);

 private:
  struct VmState {
    RecentWindow recent;
    DecayingHistogram histogram;
    double ewma_short = 0, ewma_long = 0, ewma_scale = 0, abs_dev = 0;
    uint64_t seen = 0;
    // Per origin step modulo max_horizon: the features it forecast from (divided by its scale) and the
    // scale, kept until the outcome of its longest horizon is in.
    std::vector<FeatureVector> origin_features;
    std::vector<float> origin_scale;
    std::vector<double> p90_offset;  // per horizon, in units of the VM's scale
  };
  void features(const VmState& s, double scale, FeatureVector& out) const;
  void refresh_step(size_t h, size_t q);
  void learn(VmState& s, double demand);
  double predict(int horizon, int quantile, const FeatureVector& f) const;

  QuantileForecasterConfig config_;
  double alpha_short_, alpha_long_, alpha_scale_;
  BucketLayout layout_;
  std::vector<VmState> vms_;
  LearnedWeights learned_;
  struct Steps {
    std::array<WeightVector, kQuantileCount> step;  // learning_rate / sqrt(grad_sq)
    std::array<int, kQuantileCount> updates;        // since the last refresh of step
  };
  std::vector<Steps> steps_;  // per horizon
  double refresh_decay_;      // grad_sq_decay ^ kStepRefresh
};

// The prior: weights fitted on PlanetLab 2011-03-03 (prior_weights.cpp).
LearnedWeights prior_weights();
// The weights without a prior: p50 = the last step, p90 = the last step + 1.28 mean absolute deviations.
LearnedWeights naive_weights(int max_horizon);

}  // namespace morph::forecast
