// Bid validation: every refusal names what was wrong, and nothing refused reaches the book.
#include <gtest/gtest.h>

#include <functional>

#include "controller/market/market.h"

namespace morph::market {
namespace {

class BidValidation : public ::testing::Test {
 protected:
  void SetUp() override {
    MarketConfig c;
    c.set_reserve(Resource::cpu, 10);
    c.reserve[static_cast<size_t>(Resource::cpu)][static_cast<size_t>(Tier::sla)] = 20;
    market_ = std::make_unique<Market>(c);
    ASSERT_TRUE(market_->upsert_host({"h1", {8000, 16384, 1000, 1000000, 1000, 1000, 2}}).ok());
    ASSERT_TRUE(market_->add_account({"alice", 1'000'000}).ok());
    ASSERT_TRUE(market_->add_account({"bob", 1'000'000}).ok());
    VmSpec vm{"vm1", "alice", "h1", {1000, 1024, 100, 1000, 100, 100, 0}, {3000, 4096, 500, 5000, 500, 500, 1}};
    ASSERT_TRUE(market_->upsert_vm(vm).ok());
  }

  BidRequest good() const { return {"alice", "vm1", Resource::cpu, "improve", 500, 0, 40, 0}; }

  void expect_refused(const BidRequest& r, Errc code, const std::string& words) {
    auto b = market_->check_submit(r, 5);
    ASSERT_FALSE(b.ok());
    EXPECT_EQ(b.error().code(), code) << b.error().what();
    EXPECT_NE(b.error().what().find(words), std::string::npos) << b.error().what();
  }

  std::unique_ptr<Market> market_;
};

TEST_F(BidValidation, AcceptsAGoodBidAndDefaultsToAllOrNothing) {
  auto b = market_->check_submit(good(), 5);
  ASSERT_TRUE(b.ok()) << b.error().what();
  EXPECT_EQ(b->min_fill, 500);
  EXPECT_EQ(b->host, "h1");
  EXPECT_EQ(b->tier, Tier::improve);
  EXPECT_EQ(b->submitted, 5u);
}

// room(): what a rescue step may still ask for under the VM's ceiling, after its live bids.
TEST_F(BidValidation, RoomIsCeilingLessBaselineLessLiveBids) {
  EXPECT_EQ(market_->room("vm1", Resource::cpu), 2000);
  EXPECT_EQ(market_->room("nope", Resource::cpu), 0);
  auto b = market_->check_submit(good(), 5);
  ASSERT_TRUE(b.ok()) << b.error().what();
  market_->put_bid(*b);
  EXPECT_EQ(market_->room("vm1", Resource::cpu), 1500);
  EXPECT_EQ(market_->room("vm1", Resource::memory), 3072);
}

TEST_F(BidValidation, RefusesWithReasons) {
  // Each case: the good bid with one thing wrong, and the refusal that must name it (a quantity of 2001 is over
  // the room: ceiling 3000 - baseline 1000).
  const struct {
    std::function<void(BidRequest&)> spoil;
    Errc code;
    const char* words;
  } cases[] = {
      {[](BidRequest& r) { r.vm = "nope"; }, Errc::not_found, "unknown VM nope"},
      {[](BidRequest& r) { r.account = "bob"; }, Errc::permission_denied, "not owned by account bob"},
      {[](BidRequest& r) { r.account = "carol"; }, Errc::not_found, "unknown account carol"},
      {[](BidRequest& r) { r.tier = "gold"; }, Errc::invalid_argument, "unknown tier 'gold'"},
      {[](BidRequest& r) { r.quantity = 2001; }, Errc::invalid_argument, "exceeds its ceiling"},
      {[](BidRequest& r) { r.quantity = 0; }, Errc::invalid_argument, "quantity 0"},
      {[](BidRequest& r) { r.min_fill = 501; }, Errc::invalid_argument, "min_fill 501"},
      {[](BidRequest& r) { r.max_price = 9; }, Errc::invalid_argument, "below the reserve 10"},
      {[](BidRequest& r) { r.tier = "sla", r.max_price = 15; }, Errc::invalid_argument,
       "below the reserve 20 for cpu tier sla"},
      {[](BidRequest& r) { r.expiry = 5; }, Errc::invalid_argument, "expiry tick 5"},
  };
  for (const auto& c : cases) {
    auto r = good();
    c.spoil(r);
    expect_refused(r, c.code, c.words);
  }
  for (Resource unsold : {Resource::vcpu_pin, Resource::cpu_shares}) {
    auto r = good();
    r.resource = unsold;
    expect_refused(r, Errc::invalid_argument, std::string("resource ") + resource_name(unsold) + " is not traded");
  }
}

// The ledger reads resources back by name: only the market's own, by their canonical names.
TEST(MarketResources, ParsesOnlyWhatTheMarketSellsByItsName) {
  for (Resource r : kMarketResources) EXPECT_EQ(parse_traded_resource(resource_name(r)), r);
  for (const char* other : {"vcpu_pin", "cpu_shares", "migrate", "cpu_millicores", "mem", ""})
    EXPECT_EQ(parse_traded_resource(other), std::nullopt) << other;
}

TEST_F(BidValidation, CeilingCountsTheVmsOtherBids) {
  auto b = market_->check_submit(good(), 5);
  ASSERT_TRUE(b.ok());
  market_->put_bid(*b);
  auto r = good();
  r.quantity = 1600;  // 500 + 1600 > 2000
  expect_refused(r, Errc::invalid_argument, "500 already bid");
  r.quantity = 1500;
  EXPECT_TRUE(market_->check_submit(r, 5).ok());
}

TEST_F(BidValidation, AmendAndCancelOnlyByOwnerAndAmendUpLosesPriority) {
  auto b = market_->check_submit(good(), 5);
  ASSERT_TRUE(b.ok());
  market_->put_bid(*b);
  BidAmendment up;
  up.max_price = 50;
  auto bad = market_->check_amend("bob", b->id, up);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), Errc::permission_denied);
  auto a = market_->check_amend("alice", b->id, up);
  ASSERT_TRUE(a.ok());
  EXPECT_GT(a->seq, b->seq);
  market_->put_bid(*a);
  BidAmendment down;
  down.quantity = 100;
  auto d = market_->check_amend("alice", b->id, down);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->seq, a->seq);
  EXPECT_EQ(d->min_fill, 100);  // stays all or nothing
  BidAmendment broken;
  broken.min_fill = 900;
  EXPECT_FALSE(market_->check_amend("alice", b->id, broken).ok());

  EXPECT_EQ(market_->check_cancel("bob", b->id).error().code(), Errc::permission_denied);
  auto c = market_->check_cancel("alice", b->id);
  ASSERT_TRUE(c.ok());
  market_->put_bid(*c);
  EXPECT_TRUE(market_->list_bids("alice").empty());
  EXPECT_EQ(market_->check_cancel("alice", b->id).error().code(), Errc::not_found);
}

// A VM its host stops reporting: its baseline gives its supply back and its bids sit out of clearing
// (no allocation, no charge) until it is reported again.
TEST_F(BidValidation, AbsentVmFreesItsBaselineAndItsBidsSitOut) {
  EXPECT_EQ(market_->supply("h1", Resource::cpu), 7000);
  auto b = market_->check_submit(good(), 0);
  ASSERT_TRUE(b.ok()) << b.error().what();
  market_->put_bid(*b);
  auto tick = [&](Tick t) {
    TickOutcome o = market_->clear(t);
    market_->apply(o);
    return o;
  };
  TickOutcome o = tick(1);
  ASSERT_EQ(o.allocations.size(), 1u);
  EXPECT_EQ(o.charges.size(), 1u);

  ASSERT_TRUE(market_->set_vm_absent("vm1").ok());
  ASSERT_TRUE(market_->set_vm_absent("vm1").ok());  // repeated: nothing more
  EXPECT_EQ(market_->supply("h1", Resource::cpu), 8000);
  o = tick(2);
  EXPECT_TRUE(o.allocations.empty());
  EXPECT_TRUE(o.charges.empty());
  ASSERT_EQ(o.failures.size(), 1u);
  EXPECT_EQ(o.failures[0].reason, FailureReason::no_capacity);
  EXPECT_NE(o.failures[0].detail.find("not running on host h1"), std::string::npos) << o.failures[0].detail;
  EXPECT_TRUE(market_->allocations().empty());
  ASSERT_NE(market_->find_bid(b->id), nullptr);  // the bid stays
  EXPECT_EQ(market_->set_vm_absent("nope").error().code(), Errc::not_found);

  VmSpec back{"vm1", "alice", "h1", {1000, 1024, 100, 1000, 100, 100, 0}, {3000, 4096, 500, 5000, 500, 500, 1}};
  ASSERT_TRUE(market_->upsert_vm(back).ok());
  EXPECT_EQ(market_->supply("h1", Resource::cpu), 7000);  // its baseline counted once again
  o = tick(3);
  EXPECT_EQ(o.allocations.size(), 1u);
}

TEST_F(BidValidation, ExpiredBidsLeaveTheBook) {
  auto r = good();
  r.expiry = 7;
  auto b = market_->check_submit(r, 5);
  ASSERT_TRUE(b.ok());
  market_->put_bid(*b);
  for (Tick t = 1; t <= 7; ++t) market_->apply(market_->clear(t));
  EXPECT_EQ(market_->list_bids("alice").size(), 1u);
  TickOutcome o = market_->clear(8);
  ASSERT_EQ(o.bid_changes.size(), 1u);
  EXPECT_EQ(o.bid_changes[0].state, BidState::expired);
  market_->apply(o);
  EXPECT_TRUE(market_->list_bids("alice").empty());
}

// Issue #19: for a moment after a restart (bids back from the ledger, hosts not reported yet) a submit or
// amend for a VM a restored bid names said "unknown VM"; it now says the VM is known and to retry.
TEST(RestoredMarket, AVmOfARestoredBidIsRetryableUntilItsHostReports) {
  Market m{MarketConfig{}};
  MarketSnapshot snap;
  snap.accounts = {{"alice", 1'000'000}};
  Bid b;
  b.id = 1;
  b.account = "alice";
  b.vm = "vm1";
  b.host = "h1";
  b.resource = Resource::cpu;
  b.quantity = b.min_fill = 100;
  b.max_price = 5;
  b.seq = 1;
  snap.bids.push_back(b);
  snap.next_bid_id = snap.next_seq = 2;
  m.restore(snap);
  const BidRequest req{"alice", "vm1", Resource::cpu, "improve", 100, 0, 5, 0};
  auto early = m.check_submit(req, 0);
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.error().code(), Errc::unavailable) << early.error().what();
  EXPECT_NE(early.error().what().find("host h1 has not reported"), std::string::npos) << early.error().what();
  BidAmendment more;
  more.max_price = 6;
  auto amend = m.check_amend("alice", 1, more);
  ASSERT_FALSE(amend.ok());
  EXPECT_EQ(amend.error().code(), Errc::unavailable) << amend.error().what();
  // A VM no bid names is still unknown.
  auto other = m.check_submit({"alice", "vm-nowhere", Resource::cpu, "improve", 100, 0, 5, 0}, 0);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().code(), Errc::not_found);
  // Once the host has reported its VMs, both go through.
  ASSERT_TRUE(m.upsert_host({"h1", {8000, 16384, 1000, 1000000, 1000, 1000, 2}}).ok());
  ASSERT_TRUE(m.upsert_vm({"vm1", "alice", "h1", {}, {3000, 4096, 500, 5000, 500, 500, 1}}).ok());
  EXPECT_TRUE(m.check_submit(req, 0).ok());
  EXPECT_TRUE(m.check_amend("alice", 1, more).ok());
}

}  // namespace
}  // namespace morph::market
