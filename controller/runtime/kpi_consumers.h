#pragma once
// The controller's consumers of ingested KPIs, and the one place they are registered. Each verified
// KpiReport reaches them in the order of observers(): the history first, so a consumer that reads it sees
// the report just received, then the market's rescue. A new consumer (a demand forecaster, a placement
// planner) implements KpiObserver (controller/ingest/kpi_observer.h), gets a member here and a place in
// observers(), and reads past intervals from `history`, not from the HostTable (which keeps only the last).

#include <memory>
#include <vector>

#include "controller/ingest/kpi_history.h"
#include "controller/ingest/kpi_observer.h"
#include "controller/predict/demand_forecasts.h"

namespace morph::controller {

struct KpiConsumers {
  explicit KpiConsumers(DemandForecastsConfig forecast = {})
      : forecasts(std::make_shared<DemandForecasts>(history, forecast)) {}

  std::shared_ptr<KpiHistory> history = std::make_shared<KpiHistory>();
  // CPU demand forecasts from the history: after it, before the market that bids on them.
  std::shared_ptr<DemandForecasts> forecasts;
  std::shared_ptr<KpiObserver> rescue;  // the market service (rescue, predictive bids); null when no market runs

  std::vector<std::shared_ptr<KpiObserver>> observers() const {
    std::vector<std::shared_ptr<KpiObserver>> out{history, forecasts};
    if (rescue) out.push_back(rescue);
    return out;
  }
};

}  // namespace morph::controller
