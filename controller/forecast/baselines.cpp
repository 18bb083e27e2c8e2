#include "controller/forecast/baselines.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace morph::forecast {

namespace {
// z such that a normal distribution has 90 % of its mass below mean + z * sd.
constexpr double kZ90 = 1.2815515655446004;

std::string trim_number(double v) {
  std::string s = std::to_string(v);
  s.erase(s.find_last_not_of('0') + 1);
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

// The q-quantile (0..1) of `values` by linear interpolation between order statistics (values is reordered).
double sample_quantile(std::vector<double>& values, double q) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const double pos = q * static_cast<double>(values.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, values.size() - 1);
  const double frac = pos - static_cast<double>(lo);
  return values[lo] + (values[hi] - values[lo]) * frac;
}

}  // namespace

// --- moving average ---

std::string MovingAverageModel::name() const {
  return "ma-" + std::to_string(window_);
}

void MovingAverageModel::update(MovingWindow& w, double demand) const {
  if (w.recent.size() == w.recent.capacity()) w.sum -= w.recent.back(w.recent.size() - 1);
  w.recent.push(demand);
  w.sum += demand;
}

QuantileForecast MovingAverageModel::predict(const MovingWindow& w) const {
  if (w.recent.size() == 0) return {};
  thread_local std::vector<double> values;  // a forecast allocates nothing once warm
  values.assign(w.recent.values().begin(), w.recent.values().end());
  const double mean = w.sum / static_cast<double>(values.size());
  return {mean, std::max(mean, sample_quantile(values, 0.9))};
}

// --- EWMA ---

EwmaModel::EwmaModel(double half_life_steps)
    : half_life_(half_life_steps), alpha_(1.0 - std::exp2(-1.0 / half_life_steps)) {}

std::string EwmaModel::name() const {
  return "ewma-" + trim_number(half_life_);
}

void EwmaModel::update(EwmaState& s, double demand) const {
  if (!s.seen) {
    s = {demand, 0.0, true};
    return;
  }
  // West's incremental exponentially weighted variance.
  const double diff = demand - s.mean;
  const double incr = alpha_ * diff;
  s.mean += incr;
  s.var = (1.0 - alpha_) * (s.var + diff * incr);
}

QuantileForecast EwmaModel::predict(const EwmaState& s) const {
  return {s.mean, s.mean + kZ90 * std::sqrt(std::max(s.var, 0.0))};
}

// --- VPA's decaying histogram ---

DecayingHistogramModel::DecayingHistogramModel(double half_life_steps, HistogramBuckets buckets)
    : half_life_(half_life_steps), layout_(buckets) {}

QuantileForecast DecayingHistogramModel::predict(const HistogramState& s) const {
  return {s.histogram.percentile(0.5), s.histogram.percentile(0.9)};
}

std::vector<std::unique_ptr<DemandModel>> standard_baselines() {
  std::vector<std::unique_ptr<DemandModel>> models;
  models.push_back(std::make_unique<LastValueModel>());
  models.push_back(std::make_unique<MovingAverageModel>(12));
  models.push_back(std::make_unique<EwmaModel>(6));
  models.push_back(std::make_unique<EwmaModel>(12));
  models.push_back(std::make_unique<DecayingHistogramModel>());
  return models;
}

}  // namespace morph::forecast
