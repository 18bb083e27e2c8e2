#pragma once
// Fitting the forecaster's prior: the shared weights QuantileForecaster starts from, learned by replaying a
// trace through a forecaster that starts from the naive weights, and written out as the C++ source of
// prior_weights() (controller/forecast/prior_weights.cpp) so that the fit is reproducible and reviewable.

#include <string>

#include "controller/forecast/cli/trace.h"
#include "controller/forecast/quantile_forecaster.h"

namespace morph::forecast {

// Replays `trace` `epochs` times (each pass continuing from the weights the last one ended with).
LearnedWeights fit_prior(const Trace& trace, int epochs);
// The source of prior_weights.cpp; `provenance` says what it was fitted on, for its header comment.
std::string prior_source(const LearnedWeights& learned, const std::string& provenance);

}  // namespace morph::forecast
