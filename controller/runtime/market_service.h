#pragma once
// MarketService: the market plugged into the controller, assembled from its parts (docs/architecture.md,
// "Controller"): MarketState (the Exchange over the SQLite ledger, shared by all), the fleet feed, shift
// dispatch, the clearing round (MarketTick) on its TickLoop, the rescue service and the api handlers
// (MarketRequests). It is the controller's MarketApi and a KpiObserver (the rescue's input): each call takes
// MarketState's one lock and goes to the part whose job it is. It decides nothing itself.
//
// Threads: api requests, KPI reports, hellos and shift results arrive on the messaging thread; ticks on the
// TickLoop's. A tick holds the lock for one ledger commit.

#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/metrics.h"
#include "controller/api/controller_server.h"
#include "controller/api/handlers/market_requests.h"
#include "controller/fleet/fleet_feed.h"
#include "controller/market_state/market_state.h"
#include "controller/market_state/market_views.h"
#include "controller/predict/predictive_service.h"
#include "controller/rescue/rescue_service.h"
#include "controller/shifts/shift_dispatch.h"
#include "controller/tick/market_tick.h"
#include "controller/tick/tick_loop.h"

namespace morph::controller {

class MarketService final : public MarketApi, public KpiObserver {
 public:
  // Checks the cadence, opens the ledger at cfg.ledger_path and recovers the market and every part from it.
  static Result<std::shared_ptr<MarketService>> open(MarketServiceConfig cfg, metrics::Registry* metrics = nullptr,
                                                     Clock& clock = real_clock());
  ~MarketService() override;

  // Where events and shift commands go. Set before start(); must outlive the tick loop.
  void attach(ControllerLink* link);
  // The demand forecasts predictive bids follow (the runtime's KPI consumer). Set before start().
  void use_forecasts(std::shared_ptr<const DemandForecasts> forecasts);
  void start();  // the tick loop
  void stop();
  // One tick now: the fleet feed's pending changes, then a clearing round (the loop calls this; tests may).
  Status tick_once();

  // MarketApi
  Result<ReplyBody> handle(const Caller& caller, const v1::ApiRequest& request,
                           flatbuffers::FlatBufferBuilder& fbb) override;
  void snapshot(const Caller& caller, flatbuffers::FlatBufferBuilder& fbb,
                std::vector<flatbuffers::Offset<v1::PriceInfo>>& prices,
                std::vector<flatbuffers::Offset<v1::AllocationInfo>>& allocations) override;
  std::string owner_of(const std::string& vm, const std::string& reported) override;
  void on_shift_result(const std::string& host, const msg::ShiftOutcome& result) override;
  void on_host_change(const std::string& host, bool up) override;
  void on_host_hello(const v1::HostHello& hello) override;
  // KpiObserver: the rescue's and the predictive bids' input.
  void on_kpi_report(const v1::KpiReport& report, uint64_t received_ns) override;

 private:
  MarketService(std::unique_ptr<MarketState> state, metrics::Registry* metrics);

  std::unique_ptr<MarketState> state_;
  MarketViews views_;
  FleetFeed fleet_;
  ShiftDispatch shifts_;
  MarketTick tick_;
  RescueService rescue_;
  PredictiveService predictive_;
  MarketRequests requests_;
  TickLoop loop_;
};

}  // namespace morph::controller
