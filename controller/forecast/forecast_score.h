#pragma once
// ForecastScore: the accuracy of quantile forecasts against what happened — mean absolute error of the p50,
// pinball (quantile) loss of the p90, and how often the outcome was at or under the p90. Used by the
// backtest and by anything that wants to know how well the forecasts it acts on are doing. Pure arithmetic.

#include <cstddef>

#include "controller/forecast/demand_model.h"

namespace morph::forecast {

// Pinball loss of quantile q (0..1) forecast `f` for outcome `y`: q*(y-f) when under, (1-q)*(f-y) when over.
inline double pinball_loss(double q, double forecast, double outcome) {
  return outcome >= forecast ? q * (outcome - forecast) : (1.0 - q) * (forecast - outcome);
}

class ForecastScore {
 public:
  void add(const QuantileForecast& f, double outcome) {
    abs_error_ += outcome >= f.p50 ? outcome - f.p50 : f.p50 - outcome;
    pinball90_ += pinball_loss(0.9, f.p90, outcome);
    if (outcome <= f.p90) ++covered_;
    ++count_;
  }
  size_t count() const { return count_; }
  double mae_p50() const { return count_ ? abs_error_ / static_cast<double>(count_) : 0.0; }
  double pinball_p90() const { return count_ ? pinball90_ / static_cast<double>(count_) : 0.0; }
  double coverage_p90() const { return count_ ? static_cast<double>(covered_) / static_cast<double>(count_) : 0.0; }

 private:
  double abs_error_ = 0;
  double pinball90_ = 0;
  size_t covered_ = 0;
  size_t count_ = 0;
};

}  // namespace morph::forecast
