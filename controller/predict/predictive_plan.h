#pragma once
// The predictive bid's sizing: from a VM's demand forecast and its policy, the CPU increment to keep bid for
// and whether the bid in force should be placed, amended, cancelled or left alone. Pure logic, no I/O, no
// clock, no market: PredictiveService (predictive_service.h) carries the decision out.
//
// The bid covers the highest forecast quantile over the policy's horizon (every step the horizon reaches),
// above the VM's baseline, rounded up to kGrainMc, capped by the VM's room under its ceiling and by the
// hourly budget left after the VM's rescue bids (all at max_price). It is moved only when the target moves
// by more than a deadband, so a forecast that wobbles does not churn the book.

#include <cstdint>
#include <string>
#include <vector>

#include "controller/forecast/demand_model.h"
#include "controller/market/types.h"

namespace morph::predict {

using market::Micros;

inline constexpr int64_t kGrainMc = 50;  // bids are whole multiples of this; a target under it is none

// The forecast's q quantile (0.5..0.99), read off its p50 and p90 as a normal distribution would put it:
// p50 + (p90 - p50) × z(q) / z(0.9). Never below 0.
double quantile_of(const forecast::QuantileForecast& f, double q);

struct PlanInput {
  std::vector<forecast::QuantileForecast> ahead;  // [h - 1]: h steps ahead
  int horizon_steps = 1;                          // the policy's horizon in steps (clamped to ahead.size())
  double quantile = 0.9;
  int64_t baseline_mc = 0;
  int64_t room_mc = 0;  // what the VM may still gain under its ceiling, beside the predictive bid in force
  Micros max_price = 0;
  Micros budget_per_hour = 0;     // 0: no cap
  Micros committed_per_hour = 0;  // the VM's rescue bids in force at their max_price, per hour
  int64_t current = 0;            // the predictive bid in force (0: none)
};

struct PlanStep {
  enum class Kind { keep, place, amend, cancel };
  Kind kind = Kind::keep;
  int64_t quantity = 0;  // place/amend: the new quantity
  int64_t target = 0;    // what the forecast asks for, before the caps (for the reason)
  std::string why;
};

PlanStep plan_predictive(const PlanInput& in);

}  // namespace morph::predict
