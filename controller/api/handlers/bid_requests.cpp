// Bids: submit, amend and cancel (the account's own caller), list (what the caller sees).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <tuple>

#include "common/msg/wire.h"
#include "controller/api/handlers/bid_expiry.h"
#include "controller/api/handlers/market_requests.h"
#include "controller/market_state/market_wire.h"

namespace morph::controller {

namespace {
ReplyBody bid_reply(MarketParts p, flatbuffers::FlatBufferBuilder& fbb, const market::Bid& b, market::BidState state) {
  return ReplyBody{v1::ApiReplyBody::BidReply, v1::CreateBidReply(fbb, p.views.bid_info(fbb, b, state)).Union()};
}

// The account a request on an existing bid acts on: its bid's.
MarketRequests::Rule bid_owner(MarketParts p, uint64_t (*bid_of)(const v1::ApiRequest&)) {
  return MarketRequests::owner([p, bid_of](const v1::ApiRequest& q) -> Result<std::optional<std::string>> {
    const uint64_t id = bid_of(q);
    const auto* b = p.state.market().find_bid(id);
    if (!b) return Error(Errc::not_found, "unknown or closed bid " + std::to_string(id));
    return std::optional<std::string>(b->account);
  });
}
}  // namespace

void register_bid_requests(MarketRequests& r, MarketParts p) {
  using Request = MarketRequests::Request;

  r.add(v1::ApiRequestBody::BidSubmit, MarketRequests::owner([](const v1::ApiRequest& q) {
          return Result<std::optional<std::string>>(std::string(msg::sv(q.body_as_BidSubmit()->account())));
        }),
        [p](const Request& q) -> Result<ReplyBody> {
          auto* b = q.body.body_as_BidSubmit();
          auto res = traded_from_wire(b->resource());
          if (!res)
            return Error(Errc::invalid_argument, std::string("resource ") + v1::EnumNameResource(b->resource()) +
                                                     " is not traded on the market");
          market::BidRequest req{std::string(msg::sv(b->account())),
                                 std::string(msg::sv(b->vm_uuid())),
                                 *res,
                                 tier_text(b->tier()),
                                 b->quantity(),
                                 b->min_quantity(),
                                 b->max_price_ucredits(),
                                 0};
          if (b->tier() > v1::BidTier::MAX) req.tier = std::to_string(static_cast<int>(b->tier()));
          MORPH_TRY_ASSIGN(req.expiry, expiry_tick(b->expires_ns(), p.state.clock().wall_ns(),
                                                   p.state.market().last_tick(), p.state.tick_ns()));
          MORPH_TRY_ASSIGN(auto bid, p.state.exchange().submit(req));
          spdlog::info("bid={} vm={} account={} submitted: {} {} x{} at <= {}", bid.id, bid.vm, bid.account,
                       market::tier_name(bid.tier), resource_name(bid.resource), bid.quantity, bid.max_price);
          p.views.publish_bid(bid, bid.state, "submitted", std::string(msg::sv(b->client_ref())));
          return bid_reply(p, q.fbb, bid, bid.state);
        });

  r.add(v1::ApiRequestBody::BidAmend,
        bid_owner(p, [](const v1::ApiRequest& q) { return q.body_as_BidAmend()->bid_id(); }),
        [p](const Request& q) -> Result<ReplyBody> {
          auto* b = q.body.body_as_BidAmend();
          const std::string account = p.state.market().find_bid(b->bid_id())->account;  // the rule found it
          market::BidAmendment ch;
          if (b->quantity()) ch.quantity = *b->quantity();
          if (b->min_quantity()) ch.min_fill = *b->min_quantity();
          if (b->max_price_ucredits()) ch.max_price = *b->max_price_ucredits();
          if (b->expires_ns()) {
            MORPH_TRY_ASSIGN(ch.expiry, expiry_tick(*b->expires_ns(), p.state.clock().wall_ns(),
                                                    p.state.market().last_tick(), p.state.tick_ns()));
          }
          MORPH_TRY_ASSIGN(auto bid, p.state.exchange().amend(account, b->bid_id(), ch));
          p.views.publish_bid(bid, bid.state, "amended", "");
          return bid_reply(p, q.fbb, bid, bid.state);
        });

  r.add(v1::ApiRequestBody::BidCancel,
        bid_owner(p, [](const v1::ApiRequest& q) { return q.body_as_BidCancel()->bid_id(); }),
        [p](const Request& q) -> Result<ReplyBody> {
          const uint64_t id = q.body.body_as_BidCancel()->bid_id();
          market::Bid copy = *p.state.market().find_bid(id);  // the rule found it
          MORPH_TRY(p.state.exchange().cancel(copy.account, id));
          p.state.untag_rescue(id);
          p.state.untag_predictive(id);
          p.views.publish_bid(copy, market::BidState::cancelled, "cancelled", "");
          return bid_reply(p, q.fbb, copy, market::BidState::cancelled);
        });

  r.add(v1::ApiRequestBody::BidList, MarketRequests::owner([](const v1::ApiRequest& q) {
          std::string account(msg::sv(q.body_as_BidList()->account()));
          return Result<std::optional<std::string>>(account.empty() ? std::nullopt : std::optional(account));
        }),
        [p](const Request& q) -> Result<ReplyBody> {
          auto* b = q.body.body_as_BidList();
          std::string account(msg::sv(b->account())), vm(msg::sv(b->vm_uuid()));
          // By account, then id: one pass over the book (list_bids per account was a pass per account).
          std::vector<const market::Bid*> out;
          for (auto& [id, bid] : p.state.market().bids())
            if (p.state.has_account(bid.account) && (account.empty() || bid.account == account) &&
                (vm.empty() || bid.vm == vm) && q.access.may_act_on(bid.account))
              out.push_back(&bid);
          std::sort(out.begin(), out.end(), [](const market::Bid* x, const market::Bid* y) {
            return std::tie(x->account, x->id) < std::tie(y->account, y->id);
          });
          std::vector<flatbuffers::Offset<v1::BidInfo>> v;
          v.reserve(out.size());
          for (const auto* bid : out) v.push_back(p.views.bid_info(q.fbb, *bid, bid->state));
          return ReplyBody{v1::ApiReplyBody::BidListReply, v1::CreateBidListReplyDirect(q.fbb, &v).Union()};
        });
}

}  // namespace morph::controller
