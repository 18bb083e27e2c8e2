#pragma once
// The operator dashboard: a FleetView (the events consumer shared with `morphctl top`) plus an HTTP server
// (cpp-httplib, its own threads) on dashboard.listen serving
//   GET /            one self-contained page (inline JS and CSS, charts drawn on <canvas>; no CDN)
//   GET /api/state   the FleetView as JSON (hosts, VMs with KPI history, allocations, prices, shifts, bids);
//                    ?points=N keeps only the last N samples of each series. The page polls it every second.
//   GET /healthz     200 once the first snapshot or event has arrived, else 503 with the reason
// It is read-only: it never submits, amends or cancels anything.

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "common/error.h"
#include "controller/dashboard/fleet_view.h"

namespace morph::dashboard {

struct DashboardOptions {
  fleet::FleetViewOptions fleet;
  std::string listen = "127.0.0.1:9472";  // "HOST:PORT"; port 0 picks a free one
};

class Dashboard {
 public:
  ~Dashboard();
  Dashboard(const Dashboard&) = delete;
  Dashboard& operator=(const Dashboard&) = delete;
  std::string url() const;  // http://HOST:PORT
  const fleet::FleetView& fleet() const { return *fleet_; }

 private:
  Dashboard() = default;
  struct Impl;
  std::unique_ptr<fleet::FleetView> fleet_;
  std::unique_ptr<Impl> impl_;
  std::string host_;
  int port_ = 0;
  friend Result<std::unique_ptr<Dashboard>> start_dashboard(const DashboardOptions&);
};

Result<std::unique_ptr<Dashboard>> start_dashboard(const DashboardOptions& opts);

// The JSON the page polls; `points` caps each series (0: everything kept).
nlohmann::json state_json(const fleet::FleetState& s, size_t points = 0);
// The page itself (self-contained HTML).
const std::string& page_html();

}  // namespace morph::dashboard
