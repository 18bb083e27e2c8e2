#include "controller/forecast/quantile_forecaster.h"

#include <algorithm>
#include <cmath>

namespace morph::forecast {

namespace {

constexpr double kTau[kQuantileCount] = {0.5, 0.9};
constexpr double kShortHalfLife = 6;   // steps
constexpr double kLongHalfLife = 24;   // steps; also the mean absolute deviation's
constexpr double kScaleHalfLife = 24;  // steps
constexpr size_t kMedianWindow = 12;   // steps

// The features' histogram: VPA's layout with 10 % wider buckets, up to 256 cores (84 buckets).
constexpr HistogramBuckets kFeatureBuckets{10, 1.10, 256'000, 1e-4};
constexpr double kHistogramQuantiles[3] = {0.5, 0.75, 0.9};
// AdaGrad sums start here, not at 0, so that the first steps (before the first refresh) are at most the learning
// rate per unit of gradient.
constexpr double kInitialGradSq = 1.0;

enum Feature : size_t { kUnit, kLast, kEwmaShort, kEwmaLong, kAbsDev, kMedian, kHist50, kHist75, kHist90 };

double alpha_for(double half_life) {
  return 1.0 - std::exp2(-1.0 / half_life);
}

}  // namespace

LearnedWeights naive_weights(int max_horizon) {
  HorizonWeights h;
  for (auto& w : h.weights) w.fill(0.0);
  for (auto& g : h.grad_sq) g.fill(kInitialGradSq);
  h.weights[0][kLast] = 1.0;
  h.weights[1][kLast] = 1.0;
  h.weights[1][kAbsDev] = 1.2816;
  return LearnedWeights(static_cast<size_t>(max_horizon), h);
}

QuantileForecaster::QuantileForecaster(QuantileForecasterConfig config)
    : config_(config),
      alpha_short_(alpha_for(kShortHalfLife)),
      alpha_long_(alpha_for(kLongHalfLife)),
      alpha_scale_(alpha_for(kScaleHalfLife)),
      layout_(kFeatureBuckets),
      refresh_decay_(std::pow(config.grad_sq_decay, kStepRefresh)) {
  set_learned(config_.prior ? prior_weights() : naive_weights(config_.max_horizon));
}

void QuantileForecaster::set_learned(const LearnedWeights& learned) {
  const auto horizons = static_cast<size_t>(config_.max_horizon);
  learned_.resize(horizons);
  for (size_t h = 0; h < horizons; ++h) learned_[h] = learned[std::min(h, learned.size() - 1)];
  steps_.resize(horizons);
  for (size_t h = 0; h < horizons; ++h)
    for (size_t q = 0; q < kQuantileCount; ++q) refresh_step(h, q);
}

void QuantileForecaster::refresh_step(size_t h, size_t q) {
  for (size_t i = 0; i < kFeatureCount; ++i) {
    steps_[h].step[q][i] = config_.learning_rate / std::sqrt(learned_[h].grad_sq[q][i]);
  }
  steps_[h].updates[q] = 0;
}

void QuantileForecaster::resize(size_t vms) {
  const size_t before = vms_.size();
  while (vms_.size() < vms) {
    vms_.push_back({RecentWindow(kMedianWindow), DecayingHistogram(layout_, config_.histogram_half_life)});
  }
  vms_.erase(vms_.begin() + static_cast<std::ptrdiff_t>(vms), vms_.end());
  for (size_t i = before; i < vms; ++i) reset(i);
}

void QuantileForecaster::reset(size_t vm) {
  VmState& s = vms_[vm];
  s.recent.clear();
  s.histogram.clear();
  s.ewma_short = s.ewma_long = s.ewma_scale = s.abs_dev = 0;
  s.seen = 0;
  const auto horizons = static_cast<size_t>(config_.max_horizon);
  s.origin_features.assign(horizons, FeatureVector{});
  s.origin_scale.assign(horizons, 1.0f);
  s.p90_offset.assign(horizons, 0.0);
}

void QuantileForecaster::features(const VmState& s, double scale, FeatureVector& out) const {
  double f[kFeatureCount];
  f[kUnit] = config_.unit;
  f[kLast] = s.recent.back(0);
  f[kEwmaShort] = s.ewma_short;
  f[kEwmaLong] = s.ewma_long;
  f[kAbsDev] = s.abs_dev;
  std::array<double, kMedianWindow> window;
  const std::span<const double> held = s.recent.values();
  std::copy(held.begin(), held.end(), window.begin());
  const auto mid = window.begin() + static_cast<std::ptrdiff_t>(held.size() / 2);
  std::nth_element(window.begin(), mid, window.begin() + static_cast<std::ptrdiff_t>(held.size()));
  f[kMedian] = *mid;
  s.histogram.interpolated_percentiles(kHistogramQuantiles, std::span<double>(&f[kHist50], 3));
  for (size_t i = 0; i < kFeatureCount; ++i) out[i] = static_cast<float>(f[i] / scale);
}

double QuantileForecaster::predict(int horizon, int quantile, const FeatureVector& f) const {
  const WeightVector& w = learned_[static_cast<size_t>(horizon - 1)].weights[static_cast<size_t>(quantile)];
  double sum = 0;
  for (size_t i = 0; i < kFeatureCount; ++i) sum += w[i] * f[i];
  return sum;
}

// The outcome `demand` settles the forecast made h steps ago for every horizon h: one pinball-loss step
// for each shared weight vector, and one for the VM's own p90 offset.
void QuantileForecaster::learn(VmState& s, double demand) {
  const auto horizons = static_cast<uint64_t>(config_.max_horizon);
  for (uint64_t h = 1; h <= horizons && h <= s.seen; ++h) {
    const size_t slot = (s.seen - h) % horizons;
    const FeatureVector& f = s.origin_features[slot];
    const double y = demand / s.origin_scale[slot];
    for (size_t q = 0; q < kQuantileCount; ++q) {
      const double pred = predict(static_cast<int>(h), static_cast<int>(q), f);
      if (q == 1) {
        double& offset = s.p90_offset[h - 1];
        offset -= config_.offset_rate * ((y < pred + offset ? 1.0 : 0.0) - kTau[q]);
      }
      const double slope = (y < pred ? 1.0 : 0.0) - kTau[q];  // d pinball / d prediction
      WeightVector& w = learned_[h - 1].weights[q];
      WeightVector& g2 = learned_[h - 1].grad_sq[q];
      const WeightVector& step = steps_[h - 1].step[q];
      for (size_t i = 0; i < kFeatureCount; ++i) {
        const double g = slope * f[i];
        g2[i] += g * g;
        w[i] -= step[i] * g;
      }
      if (++steps_[h - 1].updates[q] == kStepRefresh) {
        for (double& x : g2) x *= refresh_decay_;
        refresh_step(h - 1, q);
      }
    }
  }
}

void QuantileForecaster::observe(size_t vm, double demand) {
  VmState& s = vms_[vm];
  demand = std::max(demand, 0.0);
  if (s.seen == 0) {
    s.ewma_short = s.ewma_long = s.ewma_scale = demand;
  } else {
    learn(s, demand);
    s.ewma_short += alpha_short_ * (demand - s.ewma_short);
    s.ewma_long += alpha_long_ * (demand - s.ewma_long);
    s.ewma_scale += alpha_scale_ * (demand - s.ewma_scale);
    s.abs_dev += alpha_long_ * (std::abs(demand - s.ewma_short) - s.abs_dev);
  }
  s.recent.push(demand);
  s.histogram.add(demand, static_cast<int64_t>(s.seen));
  const double scale = config_.unit + s.ewma_scale;
  const size_t slot = s.seen % static_cast<uint64_t>(config_.max_horizon);
  features(s, scale, s.origin_features[slot]);
  s.origin_scale[slot] = static_cast<float>(scale);
  ++s.seen;
}

QuantileForecast QuantileForecaster::forecast(size_t vm, int horizon) const {
  const VmState& s = vms_[vm];
  if (s.seen == 0 || horizon < 1 || horizon > config_.max_horizon) return {};
  const size_t slot = (s.seen - 1) % static_cast<uint64_t>(config_.max_horizon);
  const FeatureVector& f = s.origin_features[slot];
  const double scale = s.origin_scale[slot];
  const double p50 = std::max(0.0, predict(horizon, 0, f) * scale);
  const double p90 = (predict(horizon, 1, f) + s.p90_offset[static_cast<size_t>(horizon - 1)]) * scale;
  return {p50, std::max(p50, p90)};
}

}  // namespace morph::forecast
