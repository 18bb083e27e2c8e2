#pragma once
// KpiObserver: a consumer of the KPIs the controller ingests (the rescue, the KPI history, later a
// forecaster or a planner). ControllerServer calls every registered observer, in the order of
// ControllerConfig::kpi_observers, on its messaging thread for each verified report, after it is applied to
// the HostTable (a report with bad VM entries arrives rebuilt without them). An observer must return
// quickly and keep no pointer into the report. The runtime registers them in one place,
// controller/runtime/kpi_consumers.h; it lives here, below the api, so a consumer needs nothing of the
// messaging layer.

#include <cstdint>

#include "kpi_report_generated.h"

namespace morph::controller {

class KpiObserver {
 public:
  virtual ~KpiObserver() = default;
  virtual void on_kpi_report(const v1::KpiReport& report, uint64_t received_ns) = 0;
};

}  // namespace morph::controller
