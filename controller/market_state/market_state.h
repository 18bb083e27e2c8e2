#pragma once
// MarketState: what every part of the running market shares. The market bound to its ledger (Exchange),
// what the ledger keeps beside money that more than one part reads (account details, recent prices, which
// bids the rescue raised), the ControllerLink that events and shifts go out on, the Clock, and the one lock
// that serialises the parts.
//
// It decides nothing and sends nothing: the parts do (controller/fleet, controller/tick, controller/shifts,
// controller/rescue, controller/api/handlers), each with lock() held while it reads or changes the state.
// Api requests, KPI reports, hellos and shift results arrive on the controller's messaging thread and ticks
// on the tick loop's; the runtime's MarketService takes the lock at each entry. An event builder that runs
// later on the messaging thread takes it again itself (MarketViews).

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <tuple>

#include "common/clock.h"
#include "controller/api/market_api.h"
#include "controller/ledger/exchange.h"
#include "controller/ledger/ledger.h"
#include "controller/market/market.h"

namespace morph::controller {

struct MarketServiceConfig {
  std::chrono::nanoseconds tick = std::chrono::seconds(1);
  // Ticks fall this long after each wall-clock multiple of the tick, where agents end their KPI intervals
  // (common/cadence.h): time for the reports of the interval just ended to arrive. Shorter than the tick.
  std::chrono::nanoseconds tick_offset = std::chrono::milliseconds(50);
  std::chrono::nanoseconds lease = std::chrono::seconds(5);
  std::string ledger_path;  // SQLite file
  market::MarketConfig market;
  size_t price_history = 300;         // cleared prices kept per (host, resource, tier)
  ledger::RetentionPolicy retention;  // applied a batch at a time after each tick (docs/operations.md)
};

class MarketState {
 public:
  struct AccountMeta {
    std::string display_name;
    uint64_t created_ns = 0;
  };
  struct PricePoint {
    market::Tick tick;
    market::Micros price;
    int64_t sold;
  };
  using PriceKey = std::tuple<std::string, Resource, market::Tier>;

  // Recovers the market from `ledger` (accounts, live bids, the last tick and its allocations) with the
  // accounts' details and the last price_history ticks of prices. `operator_state` receives what the ledger
  // keeps for the other parts to restore (policies, owner overrides, rescue bids).
  static Result<std::unique_ptr<MarketState>> recover(MarketServiceConfig cfg, std::unique_ptr<ledger::Ledger> ledger,
                                                      Clock& clock, ledger::OperatorState& operator_state);

  std::mutex& mutex() const { return mu_; }
  Clock& clock() const { return clock_; }
  const MarketServiceConfig& config() const { return cfg_; }
  uint64_t tick_ns() const { return static_cast<uint64_t>(cfg_.tick.count()); }

  ledger::Ledger& ledger() { return *ledger_; }
  market::Market& market() { return market_; }
  const market::Market& market() const { return market_; }
  ledger::Exchange& exchange() { return exchange_; }

  // Where events and shift commands go; null until attached (nothing is published then).
  void attach(ControllerLink* link) { link_ = link; }
  ControllerLink* link() const { return link_; }

  // Accounts known to the market, with their details.
  const std::map<std::string, AccountMeta>& accounts() const { return accounts_; }
  bool has_account(const std::string& id) const { return accounts_.contains(id); }
  void add_account(const std::string& id, AccountMeta meta) { accounts_[id] = std::move(meta); }

  // Cleared prices per (host, resource, tier), the last config().price_history ticks of each.
  void record_price(const PriceKey& key, PricePoint p);
  const std::map<PriceKey, std::deque<PricePoint>>& prices() const { return prices_; }

  // Live bids the rescue raised (listed with rescue = true); the rescue service tags, a cancel untags.
  bool is_rescue(market::BidId id) const { return rescue_ids_.contains(id); }
  void tag_rescue(market::BidId id) { rescue_ids_.insert(id); }
  void untag_rescue(market::BidId id) { rescue_ids_.erase(id); }
  // Live bids placed ahead of a forecast rise (listed with predictive = true); controller/predict/ tags.
  bool is_predictive(market::BidId id) const { return predictive_ids_.contains(id); }
  void tag_predictive(market::BidId id) { predictive_ids_.insert(id); }
  void untag_predictive(market::BidId id) { predictive_ids_.erase(id); }

 private:
  MarketState(MarketServiceConfig cfg, std::unique_ptr<ledger::Ledger> ledger, Clock& clock);

  MarketServiceConfig cfg_;
  Clock& clock_;
  std::unique_ptr<ledger::Ledger> ledger_;
  market::Market market_;
  ledger::Exchange exchange_;
  ControllerLink* link_ = nullptr;
  mutable std::mutex mu_;
  std::map<std::string, AccountMeta> accounts_;
  std::map<PriceKey, std::deque<PricePoint>> prices_;
  std::set<market::BidId> rescue_ids_;
  std::set<market::BidId> predictive_ids_;
};

}  // namespace morph::controller
