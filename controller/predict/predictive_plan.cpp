#include "controller/predict/predictive_plan.h"

#include <algorithm>
#include <cmath>

namespace morph::predict {

namespace {
// z such that Φ(z) = q, by bisection on erf (a few dozen steps; called once per decision).
double probit(double q) {
  double lo = -6, hi = 6;
  for (int i = 0; i < 60; ++i) {
    const double mid = (lo + hi) / 2;
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < q ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}
int64_t round_up(double mc) {
  if (!(mc > 0)) return 0;
  return static_cast<int64_t>(std::ceil(mc / kGrainMc)) * kGrainMc;
}
}  // namespace

double quantile_of(const forecast::QuantileForecast& f, double q) {
  static const double z90 = probit(0.9);
  return std::max(0.0, f.p50 + (f.p90 - f.p50) * probit(std::clamp(q, 0.5, 0.999)) / z90);
}

PlanStep plan_predictive(const PlanInput& in) {
  PlanStep out;
  const size_t steps = std::min(in.ahead.size(), static_cast<size_t>(std::max(1, in.horizon_steps)));
  double peak = 0;
  for (size_t h = 0; h < steps; ++h) peak = std::max(peak, quantile_of(in.ahead[h], in.quantile));
  out.target = round_up(peak - static_cast<double>(in.baseline_mc));
  int64_t want = out.target;
  std::string capped;
  if (want > in.room_mc) {
    want = std::max<int64_t>(in.room_mc, 0) / kGrainMc * kGrainMc;
    capped = "; capped at the " + std::to_string(in.room_mc) + " mc left under the VM's ceiling";
  }
  if (in.budget_per_hour > 0 && in.max_price > 0) {
    const Micros left = std::max<Micros>(in.budget_per_hour - in.committed_per_hour, 0);
    const int64_t afford = left / (in.max_price * 3600) / kGrainMc * kGrainMc;
    if (want > afford) {
      want = afford;
      capped = "; capped at " + std::to_string(afford) + " mc by the hourly budget (" + std::to_string(left) +
               " left after rescue bids)";
    }
  }
  out.why = "forecast peak " + std::to_string(std::lround(peak)) + " mc over the next " + std::to_string(steps) +
            " step(s) against a baseline of " + std::to_string(in.baseline_mc) + " mc" + capped;
  if (want < kGrainMc) {
    out.kind = in.current > 0 ? PlanStep::Kind::cancel : PlanStep::Kind::keep;
    return out;
  }
  out.quantity = want;
  if (in.current <= 0) {
    out.kind = PlanStep::Kind::place;
    return out;
  }
  // Deadband: a move smaller than a grain or a tenth of the bid is left alone.
  const int64_t band = std::max<int64_t>(kGrainMc, in.current / 10);
  out.kind = std::llabs(want - in.current) >= band ? PlanStep::Kind::amend : PlanStep::Kind::keep;
  if (out.kind == PlanStep::Kind::keep) out.quantity = in.current;
  return out;
}

}  // namespace morph::predict
