#pragma once
// MarketTick: one clearing round of the running market. Exchange::run_tick clears the next tick and
// commits it (one ledger transaction); then what the tick changed goes out: the price history and
// price.<host>, alloc.<host> for allocations new, changed or ended (told apart against the last tick's
// allocations, not Market::allocations(), which loses a cancelled bid's allocation at once), bid.<account>
// for fills, failures and state changes, the shifts (ShiftDispatch), the log-search lines (bid= vm=) and
// the tick's metrics.
//
// It does not decide when a tick falls (TickLoop does) nor feed the inventory (FleetFeed, which the runtime
// calls first). run() is called with MarketState's lock held.

#include <array>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/metrics.h"
#include "controller/market_state/market_state.h"
#include "controller/market_state/market_views.h"
#include "controller/shifts/shift_dispatch.h"

namespace morph::controller {

class MarketTick {
 public:
  MarketTick(MarketState& state, MarketViews& views, ShiftDispatch& shifts, metrics::Registry* metrics = nullptr);

  // The allocations in force after the last committed tick (after recovery: the first tick tells its
  // changes apart against them).
  void recovered();
  // Clears, commits and publishes one tick.
  Status run();
  // One retention batch of the ledger (config().retention), after a tick.
  void retain();

 private:
  // prev[i]: out.allocations[i]'s holding at the last tick (null: new); ended: indexes into last_allocs_.
  void log_bid_steps(const market::TickOutcome& out, const std::vector<const market::Allocation*>& prev,
                     const std::vector<std::string>& sent, const std::vector<size_t>& ended);
  void publish(const market::TickOutcome& out, const std::vector<const market::Allocation*>& prev,
               const std::vector<size_t>& ended);
  void keep_allocations(std::vector<market::Allocation> allocations);

  MarketState& state_;
  MarketViews& views_;
  ShiftDispatch& shifts_;
  // The allocations of the last tick (as committed, or as recovered), and bid → index into them.
  std::vector<market::Allocation> last_allocs_;
  std::unordered_map<market::BidId, size_t> last_ix_;

  // metrics (null without a registry)
  std::shared_ptr<metrics::Counter> m_ticks_, m_revenue_, m_tick_errors_;
  std::shared_ptr<metrics::Histogram> m_clear_s_, m_clear_only_s_, m_commit_s_;
  std::array<std::shared_ptr<metrics::Gauge>, market::kTierCount> m_bids_{};
};

}  // namespace morph::controller
