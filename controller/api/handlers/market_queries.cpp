// Market queries: prices and quotes (anyone), allocations and the ledger's journal (what the caller sees).
#include <algorithm>
#include <limits>
#include <map>

#include "common/msg/wire.h"
#include "controller/api/handlers/market_requests.h"
#include "controller/market/clearing.h"
#include "controller/market/money.h"
#include "controller/market_state/market_wire.h"

namespace morph::controller {

namespace {
using Request = MarketRequests::Request;

// The VM's likely CPU increment over the next hour (its demand forecast's p90 peak above its baseline) and
// what it would cost at the recent prices of the book predictive bids go to (cpu, improve): their mean over
// the ticks kept, the reserve when none cleared.
flatbuffers::Offset<v1::ForecastAdvice> forecast_advice(MarketParts p, const std::string& vm, const std::string& host,
                                                        const market::MarketConfig& mc,
                                                        flatbuffers::FlatBufferBuilder& fbb) {
  const PredictiveService::Advice a = p.predictive.advice(vm);
  market::Micros price = mc.reserve[static_cast<size_t>(Resource::cpu)][static_cast<size_t>(market::Tier::improve)];
  if (auto it = p.state.prices().find({host, Resource::cpu, market::Tier::improve});
      it != p.state.prices().end() && !it->second.empty()) {
    market::Wide sum = 0;
    for (auto& pt : it->second) sum += pt.price;
    price = static_cast<market::Micros>(sum / static_cast<market::Wide>(it->second.size()));
  }
  const auto hourly = static_cast<int64_t>(static_cast<market::Wide>(a.increment_mc) * price * 3600);
  return v1::CreateForecastAdviceDirect(fbb, a.ready, a.note.c_str(), a.baseline_mc, a.p50_peak_mc, a.p90_peak_mc,
                                        a.increment_mc, a.horizon_s, price, a.ready ? hourly : 0);
}

// What `quantity` would get and cost on a book now: the book as it stands plus a hypothetical bid for it at
// any price, cleared by the rule (market/clearing.h); with the book's recent prices.
Result<ReplyBody> quote(MarketParts p, const v1::QuoteQuery& q, flatbuffers::FlatBufferBuilder& fbb) {
  const market::Market& m = p.state.market();
  const market::MarketConfig& mc = p.state.config().market;
  std::string host(msg::sv(q.host())), vm;
  if (q.vm_uuid() && q.vm_uuid()->size()) {
    vm = std::string(msg::sv(q.vm_uuid()));
    const VmRecord* v = p.fleet.find_vm(std::string(msg::sv(q.vm_uuid())));
    if (!v) return Error(Errc::not_found, "unknown VM " + std::string(msg::sv(q.vm_uuid())));
    host = v->host;
  }
  if (host.empty()) return Error(Errc::invalid_argument, "quote needs a VM or a host");
  if (!p.fleet.has_host(host)) return Error(Errc::not_found, "unknown host " + host);
  auto r = traded_from_wire(q.resource());
  if (!r)
    return Error(Errc::invalid_argument,
                 "resource " + std::string(v1::EnumNameResource(q.resource())) + " is not traded");
  auto tier = market::parse_tier(tier_text(q.tier()));
  if (!tier) return Error(Errc::invalid_argument, "unknown tier");
  int64_t qty = q.quantity() > 0 ? q.quantity() : 1;
  if (qty > market::kMaxQuantity)
    return Error(Errc::invalid_argument,
                 "quantity " + std::to_string(qty) + " is outside 1.." + std::to_string(market::kMaxQuantity));
  market::BookParams params;
  params.supply = m.supply(host, *r);
  for (int t = 0; t < market::kTierCount; ++t) params.reserve[t] = mc.reserve[static_cast<size_t>(*r)][t];
  params.hysteresis_pct = mc.hysteresis_pct;
  params.give_notice = mc.notice_ticks > 0;
  std::vector<market::BookBid> book;
  uint64_t max_seq = 0;
  const market::Tick last = m.last_tick();
  for (auto& [id, b] : m.bids()) {
    if (b.host != host || b.resource != *r || b.state != market::BidState::active) continue;
    market::BookBid bb{b.id, b.tier, b.max_price, b.quantity, b.min_fill ? b.min_fill : b.quantity, b.seq};
    if (auto it = m.allocations().find(b.id); it != m.allocations().end()) {
      bb.held = it->second.quantity;
      bb.pinned = it->second.since + mc.hold_ticks > last + 1;
    }
    max_seq = std::max(max_seq, b.seq);
    book.push_back(bb);
  }
  // The probe offers the highest price a bid may carry: what it is charged is set by the others.
  market::BookBid probe{0, *tier, market::kMaxPrice, qty, 1, max_seq + 1};
  book.push_back(probe);
  auto res = market::clear_book(params, book);
  int64_t got = res.fills.back().quantity;
  market::Micros price = res.price[static_cast<size_t>(*tier)];
  std::vector<flatbuffers::Offset<v1::PriceInfo>> hist;
  if (auto it = p.state.prices().find({host, *r, *tier}); it != p.state.prices().end()) {
    size_t n = std::min<size_t>(it->second.size(), q.history());
    for (auto h = it->second.end() - static_cast<std::ptrdiff_t>(n); h != it->second.end(); ++h)
      hist.push_back(v1::CreatePriceInfoDirect(fbb, host.c_str(), wire(*r), wire(*tier), h->price, params.supply,
                                               h->sold, h->tick));
  }
  auto cost = market::charge_for(got, price, mc.tick_ms);
  if (!cost)
    return Error(Errc::invalid_argument, std::to_string(got) + " units at " + std::to_string(price) +
                                             " ucredits/unit-s cost more per tick than int64 holds");
  flatbuffers::Offset<v1::ForecastAdvice> advice;
  if (!vm.empty() && *r == Resource::cpu) advice = forecast_advice(p, vm, host, mc, fbb);
  auto body = v1::CreateQuoteReplyDirect(fbb, host.c_str(), wire(*r), wire(*tier), qty, price, got, *cost, mc.tick_ms,
                                         &hist, advice);
  return ReplyBody{v1::ApiReplyBody::QuoteReply, body.Union()};
}
}  // namespace

void register_market_queries(MarketRequests& r, MarketParts p) {
  r.add(v1::ApiRequestBody::PricesQuery, MarketRequests::anyone(), [p](const Request& q) -> Result<ReplyBody> {
    std::string host(msg::sv(q.body.body_as_PricesQuery()->host()));
    std::vector<flatbuffers::Offset<v1::PriceInfo>> v;
    for (auto& [k, h] : p.state.prices()) {
      if ((!host.empty() && std::get<0>(k) != host) || h.empty()) continue;
      v.push_back(p.views.price_info(q.fbb, k, h.back()));
    }
    return ReplyBody{v1::ApiReplyBody::PricesReply, v1::CreatePricesReplyDirect(q.fbb, &v).Union()};
  });

  r.add(v1::ApiRequestBody::AllocationsQuery, MarketRequests::anyone(), [p](const Request& q) -> Result<ReplyBody> {
    auto* b = q.body.body_as_AllocationsQuery();
    std::string host(msg::sv(b->host())), vm(msg::sv(b->vm_uuid())), account(msg::sv(b->account()));
    std::vector<flatbuffers::Offset<v1::AllocationInfo>> v;
    const auto& all = p.state.market().allocations();
    std::map<market::BidId, const market::Allocation*> sorted;
    for (auto& [id, a] : all) sorted.emplace(id, &a);
    for (auto& [id, a] : sorted) {
      if ((!host.empty() && a->host != host) || (!vm.empty() && a->vm != vm) ||
          (!account.empty() && a->account != account))
        continue;
      if (!q.access.may_act_on(a->account)) continue;
      v.push_back(p.views.alloc_info(q.fbb, *a));
    }
    return ReplyBody{v1::ApiReplyBody::AllocationsReply, v1::CreateAllocationsReplyDirect(q.fbb, &v).Union()};
  });

  // Served from the ledger's journal (SQLite): the durable history, across restarts.
  r.add(v1::ApiRequestBody::LedgerQuery, MarketRequests::owner([](const v1::ApiRequest& q) {
          std::string account(msg::sv(q.body_as_LedgerQuery()->account()));
          return Result<std::optional<std::string>>(account.empty() ? std::nullopt : std::optional(account));
        }),
        [p](const Request& q) -> Result<ReplyBody> {
          auto* b = q.body.body_as_LedgerQuery();
          ledger::JournalQuery jq;
          jq.account = std::string(msg::sv(b->account()));
          if (auto only = q.access.confined_to()) {  // a tenant sees only its own account, whatever it asked for
            if (only->empty()) return q.access.deny("(any)");
            jq.account = *only;
          }
          jq.since_tick = b->since_tick();
          jq.kind = std::string(msg::sv(b->kind()));
          jq.before_id = b->before_entry();
          jq.limit = b->limit() + 1;  // one more than asked: tells whether an older page exists
          MORPH_TRY_ASSIGN(auto rows, p.state.ledger().journal(jq));
          uint64_t next = 0;  // the cursor for the page before this one: its oldest entry's id
          if (rows.size() > b->limit()) {
            rows.erase(rows.begin());
            next = rows.front().id;
          }
          std::vector<flatbuffers::Offset<v1::LedgerEntry>> v;
          for (auto& e : rows)
            v.push_back(v1::CreateLedgerEntryDirect(q.fbb, e.id, e.tick, e.account.c_str(), e.kind.c_str(), e.amount,
                                                    e.bid, e.reason.c_str(), e.ts_ns));
          return ReplyBody{v1::ApiReplyBody::LedgerReply, v1::CreateLedgerReplyDirect(q.fbb, &v, next).Union()};
        });

  // A quote for a host is anyone's (prices are public); one for a VM is its owner's: it tells what the VM
  // could get on its host, which is the owner's business (issue #19).
  r.add(v1::ApiRequestBody::QuoteQuery,
        MarketRequests::owner([p](const v1::ApiRequest& q) -> Result<std::optional<std::string>> {
          auto* b = q.body_as_QuoteQuery();
          if (!b->vm_uuid() || b->vm_uuid()->size() == 0) return std::optional<std::string>{};
          const std::string vm(msg::sv(b->vm_uuid()));
          if (!p.fleet.find_vm(vm)) return Error(Errc::not_found, "unknown VM " + vm);
          return std::optional(p.fleet.owner_of(vm));
        }),
        [p](const Request& q) { return quote(p, *q.body.body_as_QuoteQuery(), q.fbb); });
}

}  // namespace morph::controller
