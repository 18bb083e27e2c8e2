#include "controller/market_state/market_views.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "controller/market/money.h"
#include "controller/market_state/market_wire.h"

namespace morph::controller {

flatbuffers::Offset<v1::BidInfo> MarketViews::bid_info(flatbuffers::FlatBufferBuilder& fbb, const market::Bid& b,
                                                       market::BidState state) const {
  const market::Market& m = state_.market();
  int64_t filled = 0;
  if (auto it = m.allocations().find(b.id); it != m.allocations().end()) filled = it->second.quantity;
  uint64_t expires = 0;
  if (b.expiry > m.last_tick()) expires = state_.clock().wall_ns() + (b.expiry - m.last_tick()) * state_.tick_ns();
  return v1::CreateBidInfoDirect(fbb, b.id, b.account.c_str(), b.vm.c_str(), wire(b.resource), b.quantity, b.min_fill,
                                 b.max_price, wire(b.tier), wire(state), expires, 0, filled, state_.is_rescue(b.id),
                                 b.host.c_str(), state_.is_predictive(b.id));
}

flatbuffers::Offset<v1::AccountInfo> MarketViews::account_info(flatbuffers::FlatBufferBuilder& fbb,
                                                               const std::string& a) const {
  const market::Market& m = state_.market();
  auto bal = m.balance(a);
  const uint32_t tick_ms = state_.config().market.tick_ms;
  int64_t reserved = 0;  // what the allocations in force cost per tick (each was paid, so the sum fits)
  for (auto& [id, al] : m.allocations())
    if (al.account == a)
      reserved = market::saturating_add(
          reserved, market::charge_for(al.quantity, al.price, tick_ms).value_or(std::numeric_limits<int64_t>::max()));
  auto it = state_.accounts().find(a);
  const bool known = it != state_.accounts().end();
  return v1::CreateAccountInfoDirect(fbb, a.c_str(), known ? it->second.display_name.c_str() : nullptr, bal ? *bal : 0,
                                     reserved, known ? it->second.created_ns : 0);
}

flatbuffers::Offset<v1::AllocationInfo> MarketViews::alloc_info(flatbuffers::FlatBufferBuilder& fbb,
                                                                const market::Allocation& a) const {
  const uint64_t now = state_.clock().wall_ns();
  const uint64_t tick = state_.tick_ns();
  const market::Tick last = state_.market().last_tick();
  auto at_tick = [&](market::Tick t) -> uint64_t {
    if (t == 0) return 0;
    return t >= last ? now + (t - last) * tick : now - std::min<uint64_t>(now, (last - t) * tick);
  };
  return v1::CreateAllocationInfoDirect(fbb, a.host.c_str(), a.vm.c_str(), a.account.c_str(), a.bid_id,
                                        wire(a.resource), a.quantity, a.price, at_tick(a.since),
                                        at_tick(a.since + state_.config().market.hold_ticks), at_tick(a.notice_until));
}

flatbuffers::Offset<v1::PriceInfo> MarketViews::price_info(flatbuffers::FlatBufferBuilder& fbb,
                                                           const MarketState::PriceKey& key,
                                                           const MarketState::PricePoint& p) const {
  auto& [host, r, t] = key;
  return v1::CreatePriceInfoDirect(fbb, host.c_str(), wire(r), wire(t), p.price, state_.market().supply(host, r),
                                   p.sold, p.tick);
}

void MarketViews::publish_bid(const market::Bid& b, market::BidState state, std::string outcome, std::string reason) {
  // Each outcome once at info; the same failure repeated tick after tick at debug.
  bool repeated = false;
  if (outcome == "failed") {
    auto& last = failure_logged_[b.id];
    repeated = last == reason;
    last = reason;
    if (failure_logged_.size() > 100000) failure_logged_.clear();
  } else {
    failure_logged_.erase(b.id);
  }
  const std::string why = reason.empty() ? "" : ": " + reason;
  if (repeated || outcome == "submitted")
    spdlog::debug("bid={} vm={} account={} {}{}", b.id, b.vm, b.account, outcome, why);
  else
    spdlog::info("bid={} vm={} account={} {}{}", b.id, b.vm, b.account, outcome, why);
  publish_bid_event(b, state, std::move(outcome), std::move(reason));
}

void MarketViews::publish_bid_event(const market::Bid& b, market::BidState state, std::string outcome,
                                    std::string reason) {
  ControllerLink* link = state_.link();
  if (!link) return;
  link->publish_event("bid." + b.account, v1::MarketEventBody::BidOutcome,
                      [this, b, state, outcome, reason](flatbuffers::FlatBufferBuilder& fbb) {
                        std::lock_guard lk(state_.mutex());  // bid_info reads the market (messaging thread)
                        auto info = bid_info(fbb, b, state);
                        return v1::CreateBidOutcomeDirect(fbb, info, outcome.c_str(), reason.c_str()).Union();
                      });
}

void MarketViews::publish_allocation(const market::Allocation& a, bool granted, std::string reason) {
  ControllerLink* link = state_.link();
  if (!link) return;
  link->publish_event("alloc." + a.host, v1::MarketEventBody::AllocationChange,
                      [this, a, granted, reason](flatbuffers::FlatBufferBuilder& fbb) {
                        std::lock_guard lk(state_.mutex());  // alloc_info reads the market (messaging thread)
                        auto info = alloc_info(fbb, a);
                        return v1::CreateAllocationChangeDirect(fbb, info, granted, reason.c_str()).Union();
                      });
}

void MarketViews::publish_prices(const std::string& host, market::Tick tick,
                                 const std::vector<market::PriceQuote>& quotes) {
  ControllerLink* link = state_.link();
  if (!link) return;
  std::vector<std::pair<market::PriceQuote, int64_t>> rows;  // with each book's supply as of this tick
  rows.reserve(quotes.size());
  for (auto& p : quotes) rows.push_back({p, state_.market().supply(host, p.resource)});
  link->publish_event("price." + host, v1::MarketEventBody::PriceUpdate,
                      [rows = std::move(rows), tick](flatbuffers::FlatBufferBuilder& b) {
                        std::vector<flatbuffers::Offset<v1::PriceInfo>> v;
                        for (auto& [p, supply] : rows)
                          v.push_back(v1::CreatePriceInfoDirect(b, p.host.c_str(), wire(p.resource), wire(p.tier),
                                                                p.price, supply, p.sold, tick));
                        return v1::CreatePriceUpdateDirect(b, &v).Union();
                      });
}

}  // namespace morph::controller
