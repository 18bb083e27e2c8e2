#pragma once
// Synthetic demand series (millicores per step) for the forecasting unit tests.

#include <functional>

#include "controller/forecast/demand_model.h"

namespace morph::forecast {

using Series = std::function<double(int)>;

inline const Series kConstant = [](int) { return 400.0; };
inline const Series kStepUp = [](int t) { return t < 100 ? 200.0 : 600.0; };
inline const Series kRamp = [](int t) { return 100.0 + 5.0 * t; };
inline const Series kSpikes = [](int t) { return t % 10 == 9 ? 900.0 : 100.0; };

// Feeds steps [from, steps) of `s` to slot 0 of `m`.
inline void feed(DemandModel& m, const Series& s, int steps, int from = 0) {
  m.resize(1);
  for (int t = from; t < steps; ++t) m.observe(0, s(t));
}

}  // namespace morph::forecast
