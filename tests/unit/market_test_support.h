#pragma once
// A one-host market for the clearing tests: every bidder has its own account and VM (so ceilings and
// funds never interfere unless a test says so), bids are named, ticks are run clear-then-apply.

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "controller/market/market.h"

namespace morph::market::testing {

class OneHostMarket {
 public:
  explicit OneHostMarket(int64_t supply, MarketConfig cfg = default_config(), Resource r = Resource::cpu)
      : market_(cfg), resource_(r) {
    HostSpec h{"h1", {}};
    at(h.capacity, r) = supply;
    EXPECT_TRUE(market_.upsert_host(h).ok());
  }

  static MarketConfig default_config() {
    MarketConfig c;
    for (Resource r : kMarketResources) c.set_reserve(r, 1);
    c.tick_ms = 1000;
    c.hold_ticks = 1;  // no hold unless a test asks
    c.notice_ticks = 0;
    c.hysteresis_pct = 0;
    return c;
  }

  void fund(const std::string& name, Micros balance) { balances_[name] = balance; }

  // Submits bid `name` (its own account and VM). min_fill 0 = all or nothing.
  BidId bid(const std::string& name, const char* tier, int64_t qty, int64_t min_fill, Micros price) {
    if (!vms_.contains(name)) {
      Micros bal = balances_.contains(name) ? balances_[name] : Micros{1'000'000'000'000};
      EXPECT_TRUE(market_.add_account({name, bal}).ok());
      VmSpec vm{"vm-" + name, name, "h1", {}, {}};
      at(vm.ceiling, resource_) = int64_t{1} << 30;
      EXPECT_TRUE(market_.upsert_vm(vm).ok());
      vms_[name] = vm.id;
    }
    auto b = market_.check_submit({name, "vm-" + name, resource_, tier, qty, min_fill, price, 0}, market_.last_tick());
    EXPECT_TRUE(b.ok()) << (b.ok() ? "" : b.error().what());
    if (!b.ok()) return 0;
    market_.put_bid(*b);
    ids_[name] = b->id;
    return b->id;
  }

  void amend(const std::string& name, Micros price) {
    BidAmendment a;
    a.max_price = price;
    auto b = market_.check_amend(name, ids_.at(name), a);
    ASSERT_TRUE(b.ok()) << b.error().what();
    market_.put_bid(*b);
  }

  const TickOutcome& tick() {
    last_ = market_.clear(market_.last_tick() + 1);
    market_.apply(last_);
    return last_;
  }

  int64_t fill(const std::string& name) const {
    for (const auto& a : last_.allocations)
      if (a.bid_id == ids_.at(name)) return a.quantity;
    return 0;
  }
  Micros price(Tier t) const {
    for (const auto& p : last_.prices)
      if (p.tier == t) return p.price;
    return -1;
  }
  Micros charge(const std::string& name) const {
    for (const auto& c : last_.charges)
      if (c.bid_id == ids_.at(name)) return c.amount;
    return 0;
  }
  FailureReason reason(const std::string& name) const {
    for (const auto& f : last_.failures)
      if (f.bid_id == ids_.at(name)) return f.reason;
    return FailureReason::none;
  }
  Tick notice_until(const std::string& name) const {
    for (const auto& a : last_.allocations)
      if (a.bid_id == ids_.at(name)) return a.notice_until;
    return 0;
  }

  Market& market() { return market_; }
  BidId id(const std::string& name) const { return ids_.at(name); }

 private:
  Market market_;
  Resource resource_;
  std::map<std::string, Micros> balances_;
  std::map<std::string, std::string> vms_;
  std::map<std::string, BidId> ids_;
  TickOutcome last_;
};

}  // namespace morph::market::testing
