#pragma once
// MarketRequests: the market's answers to api requests — accounts, bids, prices, allocations, the ledger,
// quotes, VM policies and owners, the shift record — and its part of snapshots. It is the
// MarketApi::handle the runtime's MarketService plugs in.
//
// Each request kind is registered once (add(); the four register_* functions below, called from the
// constructor, are the only callers), with the rule of who may make it. The rule is checked here, before
// the handler runs, and what a caller may see of a list is decided here too (Access): no handler looks at
// the caller's role itself. Handlers run with MarketState's lock held and change the market only through
// its parts (Exchange, FleetFeed, RescueService). It never clears the market and never sends a shift.

#include <flatbuffers/flatbuffers.h>

#include <array>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "controller/api/market_api.h"
#include "controller/fleet/fleet_feed.h"
#include "controller/market_state/market_state.h"
#include "controller/market_state/market_views.h"
#include "controller/predict/predictive_service.h"
#include "controller/rescue/rescue_service.h"
#include "controller/shifts/shift_dispatch.h"

namespace morph::controller {

// The parts a handler may use.
struct MarketParts {
  MarketState& state;
  MarketViews& views;
  FleetFeed& fleet;
  RescueService& rescue;
  const ShiftDispatch& shifts;
  PredictiveService& predictive;
};

// What a caller may act on and see; decided from its role and account here only.
class Access {
 public:
  explicit Access(const Caller& caller) : caller_(caller) {}
  bool admin() const { return caller_.role == msg::Role::admin; }
  // Whether the caller may act on (and see the rows of) `account`: an admin any, a tenant its own.
  bool may_act_on(std::string_view account) const { return caller_.may_act_on(account); }
  // The one account a tenant's history queries are confined to (nullopt: an admin; "": a tenant with none).
  std::optional<std::string> confined_to() const;
  Error deny(const std::string& account) const;
  const std::string& name() const { return caller_.name; }

 private:
  const Caller& caller_;
};

class MarketRequests {
 public:
  // Who may make a request of a kind.
  struct Rule {
    enum class Who { admin, owner, anyone };
    Who who = Who::anyone;
    const char* what = "";  // admin: the act, as in "creating an account is for admins only"
    // owner: the account the request acts on (the caller must may_act_on it; "" is nobody's); an Error
    // when what it names is not there (an unknown bid or VM); nullopt when it names none (the handler then
    // shows only what the caller sees).
    std::function<Result<std::optional<std::string>>(const v1::ApiRequest&)> subject;
  };
  struct Request {
    const Access& access;
    const v1::ApiRequest& body;
    flatbuffers::FlatBufferBuilder& fbb;
  };
  using Handler = std::function<Result<ReplyBody>(const Request&)>;

  static Rule admin(const char* what) { return {Rule::Who::admin, what, {}}; }
  static Rule anyone() { return {}; }
  static Rule owner(std::function<Result<std::optional<std::string>>(const v1::ApiRequest&)> subject) {
    return {Rule::Who::owner, "", std::move(subject)};
  }

  explicit MarketRequests(MarketParts parts);

  // Checks the kind's rule, then runs its handler. A kind not registered is refused as not a market request.
  Result<ReplyBody> handle(const Caller& caller, const v1::ApiRequest& request, flatbuffers::FlatBufferBuilder& fbb);
  // The market's part of a Clone snapshot: the last price of every book, every allocation in force.
  void snapshot(const Caller& caller, flatbuffers::FlatBufferBuilder& fbb,
                std::vector<flatbuffers::Offset<v1::PriceInfo>>& prices,
                std::vector<flatbuffers::Offset<v1::AllocationInfo>>& allocations) const;

  // Registers the handler of a request kind; a kind registered twice is a programming error (aborts).
  void add(v1::ApiRequestBody kind, Rule rule, Handler handler);
  bool handles(v1::ApiRequestBody kind) const;

 private:
  struct Entry {
    Rule rule;
    Handler handler;
  };
  MarketParts parts_;
  std::array<std::optional<Entry>, static_cast<size_t>(v1::ApiRequestBody::MAX) + 1> entries_;
};

// The registration of each area's request kinds (one file each).
void register_account_requests(MarketRequests& r, MarketParts p);  // AccountCreate/Get/List/Deposit
void register_bid_requests(MarketRequests& r, MarketParts p);      // BidSubmit/Amend/Cancel/List
void register_market_queries(MarketRequests& r, MarketParts p);    // PricesQuery, AllocationsQuery, LedgerQuery,
                                                                   // QuoteQuery
void register_vm_requests(MarketRequests& r, MarketParts p);       // PolicyGet/Set, VmOwnerSet, ShiftsQuery

}  // namespace morph::controller
