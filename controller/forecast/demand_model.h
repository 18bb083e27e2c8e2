#pragma once
// DemandModel: what every CPU-demand forecaster of a fleet looks like — the learned forecaster and the naive
// baselines it is measured against alike. A model holds bounded state per VM, addressed by a dense slot
// index the caller assigns; the caller feeds each VM's demand once per step, in step order, and asks for
// the p50 and p90 of the demand `horizon` steps after the last one fed.
//
// Demand is CPU demand in millicores: on-CPU time plus run-queue wait over the step. A model never reads a
// clock and never does I/O: time is the order of observe() calls. Work per observe() and per forecast() is
// bounded by the model's configuration, never by how long a VM has been observed.

#include <cstddef>
#include <string>

namespace morph::forecast {

struct QuantileForecast {
  double p50 = 0;  // millicores
  double p90 = 0;  // millicores; never below p50
};

class DemandModel {
 public:
  virtual ~DemandModel() = default;
  // A short name for reports ("last", "ewma-6", ...).
  virtual std::string name() const = 0;
  // The longest horizon, in steps, this model forecasts.
  virtual int max_horizon() const = 0;
  // Makes room for slots [0, vms); existing slots keep their state.
  virtual void resize(size_t vms) = 0;
  // Forgets one slot's history, so that the slot can carry another VM.
  virtual void reset(size_t vm) = 0;
  // Feeds the demand of `vm` over the step that just ended (millicores, >= 0).
  virtual void observe(size_t vm, double demand) = 0;
  // The forecast for the step `horizon` (1..max_horizon()) steps after the last one fed. A VM fed
  // nothing yet forecasts 0.
  virtual QuantileForecast forecast(size_t vm, int horizon) const = 0;
};

}  // namespace morph::forecast
