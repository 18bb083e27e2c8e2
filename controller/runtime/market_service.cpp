#include "controller/runtime/market_service.h"

#include <spdlog/spdlog.h>

#include "controller/ledger/sqlite_ledger.h"
#include "controller/market/market.h"
#include "controller/market/money.h"

namespace morph::controller {

Result<std::shared_ptr<MarketService>> MarketService::open(MarketServiceConfig cfg, metrics::Registry* metrics,
                                                           Clock& clock) {
  if (cfg.tick < std::chrono::milliseconds(100))
    return Error(Errc::invalid_argument, "controller.tick must be >= 100ms");
  if (cfg.tick_offset < std::chrono::nanoseconds(0) || cfg.tick_offset >= cfg.tick)
    return Error(Errc::invalid_argument, "controller.tick_offset must be at least 0 and shorter than controller.tick");
  if (cfg.tick > std::chrono::milliseconds(market::kMaxTickMs))
    return Error(Errc::invalid_argument, "controller.tick must be <= 1h");
  market::MarketConfig checked = cfg.market;  // as MarketState::recover will set it
  checked.tick_ms = static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::milliseconds>(cfg.tick).count());
  MORPH_TRY(market::check_config(checked));
  MORPH_TRY_ASSIGN(auto ledger, ledger::SqliteLedger::open(cfg.ledger_path));
  ledger::OperatorState op;
  MORPH_TRY_ASSIGN(auto state, MarketState::recover(std::move(cfg), std::move(ledger), clock, op));
  std::shared_ptr<MarketService> s(new MarketService(std::move(state), metrics));
  s->tick_.recovered();
  s->fleet_.restore_owners(op.owners);
  s->rescue_.restore(op);
  s->predictive_.restore(op);
  const MarketState& st = *s->state_;
  size_t price_points = 0;
  for (auto& [k, h] : st.prices()) price_points += h.size();
  spdlog::info("market: restored {} policies, {} owner overrides, {} rescue bids, {} price points",
               s->rescue_.policy_count(), s->fleet_.owner_overrides(), op.rescues.size(), price_points);
  spdlog::info("market: ledger {} recovered at tick {}, {} accounts, {} live bids", st.config().ledger_path,
               st.market().last_tick(), st.accounts().size(), st.market().bids().size());
  return s;
}

MarketService::MarketService(std::unique_ptr<MarketState> state, metrics::Registry* metrics)
    : state_(std::move(state)),
      views_(*state_),
      fleet_(*state_),
      shifts_(*state_, fleet_, metrics),
      tick_(*state_, views_, shifts_, metrics),
      rescue_(*state_, views_, fleet_),
      predictive_(*state_, views_, fleet_, rescue_),
      requests_({*state_, views_, fleet_, rescue_, shifts_, predictive_}),
      loop_(state_->clock(), {state_->config().tick, state_->config().tick_offset}, [this] {
        if (auto st = tick_once(); !st) spdlog::error("market tick failed: {}", st.error().what());
      }) {}

MarketService::~MarketService() {
  stop();
}

void MarketService::attach(ControllerLink* link) {
  std::lock_guard lk(state_->mutex());
  state_->attach(link);
}

void MarketService::use_forecasts(std::shared_ptr<const DemandForecasts> forecasts) {
  std::lock_guard lk(state_->mutex());
  predictive_.use_forecasts(std::move(forecasts));
}

void MarketService::start() {
  loop_.start();
}

void MarketService::stop() {
  loop_.stop();
}

Status MarketService::tick_once() {
  std::lock_guard lk(state_->mutex());
  // Every other inventory change (a HostHello, an account, an owner override) feeds the market at once; a
  // host going down or coming back is fed here.
  fleet_.feed_if_hosts_changed();
  return tick_.run();
}

Result<ReplyBody> MarketService::handle(const Caller& caller, const v1::ApiRequest& request,
                                        flatbuffers::FlatBufferBuilder& fbb) {
  std::lock_guard lk(state_->mutex());
  return requests_.handle(caller, request, fbb);
}

void MarketService::snapshot(const Caller& caller, flatbuffers::FlatBufferBuilder& fbb,
                             std::vector<flatbuffers::Offset<v1::PriceInfo>>& prices,
                             std::vector<flatbuffers::Offset<v1::AllocationInfo>>& allocations) {
  std::lock_guard lk(state_->mutex());
  requests_.snapshot(caller, fbb, prices, allocations);
}

std::string MarketService::owner_of(const std::string& vm, const std::string& reported) {
  std::lock_guard lk(state_->mutex());
  std::string owner = fleet_.owner_of(vm);
  return owner.empty() ? reported : owner;
}

void MarketService::on_shift_result(const std::string& host, const msg::ShiftOutcome& result) {
  std::lock_guard lk(state_->mutex());
  shifts_.on_result(host, result);
}

void MarketService::on_host_change(const std::string& host, bool up) {
  std::lock_guard lk(state_->mutex());
  fleet_.on_host_change(host, up);
}

void MarketService::on_host_hello(const v1::HostHello& hello) {
  std::lock_guard lk(state_->mutex());
  fleet_.on_host_hello(hello);
}

void MarketService::on_kpi_report(const v1::KpiReport& report, uint64_t /*received_ns*/) {
  if (!report.vms()) return;
  std::lock_guard lk(state_->mutex());
  rescue_.on_kpi_report(report);
  predictive_.on_kpi_report(report);
}

}  // namespace morph::controller
