#pragma once
// MarketViews: the market as clients see it. Builds the wire views of bids, accounts, allocations and
// prices (api replies, snapshots, events) and publishes the market's events: bid.<account> (each bid's
// story, also logged with bid= and vm= for log search), alloc.<host> and price.<host>.
//
// Called with MarketState's lock held. Event bodies are built later on the messaging thread, which takes
// the lock again to read the market. It never changes the market.

#include <flatbuffers/flatbuffers.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "api_reply_generated.h"
#include "controller/market_state/market_state.h"
#include "market_event_generated.h"

namespace morph::controller {

class MarketViews {
 public:
  explicit MarketViews(MarketState& state) : state_(state) {}

  // `state`: the one to show (a cancelled bid's copy is shown cancelled). expires_ns and the allocation's
  // times are wall-clock estimates from tick numbers.
  flatbuffers::Offset<v1::BidInfo> bid_info(flatbuffers::FlatBufferBuilder& fbb, const market::Bid& b,
                                            market::BidState state) const;
  flatbuffers::Offset<v1::AccountInfo> account_info(flatbuffers::FlatBufferBuilder& fbb, const std::string& a) const;
  flatbuffers::Offset<v1::AllocationInfo> alloc_info(flatbuffers::FlatBufferBuilder& fbb,
                                                     const market::Allocation& a) const;
  // The last cleared price of (host, resource, tier) with its supply now.
  flatbuffers::Offset<v1::PriceInfo> price_info(flatbuffers::FlatBufferBuilder& fbb, const MarketState::PriceKey& key,
                                                const MarketState::PricePoint& p) const;

  // A step of a bid's story: logged (each outcome once at info, the same failure repeated at debug) and
  // published on bid.<account>.
  void publish_bid(const market::Bid& b, market::BidState state, std::string outcome, std::string reason);
  // Published only (the caller logs): e.g. a rescue refused, shown as the bid it would have been.
  void publish_bid_event(const market::Bid& b, market::BidState state, std::string outcome, std::string reason);
  // alloc.<host>: granted or changed (granted = true), or ended (false, quantity 0).
  void publish_allocation(const market::Allocation& a, bool granted, std::string reason);
  // price.<host>: one tick's quotes for a host, with each book's supply now.
  void publish_prices(const std::string& host, market::Tick tick, const std::vector<market::PriceQuote>& quotes);

 private:
  MarketState& state_;
  std::map<market::BidId, std::string> failure_logged_;  // the last failure logged at info per bid
};

}  // namespace morph::controller
