// MarketTick: one clearing round of the running market and what it sends — price history and price.<host>,
// alloc.<host> for allocations granted, changed and ended (told apart against the last tick's, across a
// restart too), bid.<account> for fills and failures, shifts through ShiftDispatch, and its metrics.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <tuple>

#include "controller/fleet/fleet_feed.h"
#include "controller/market_state/market_views.h"
#include "controller/shifts/shift_dispatch.h"
#include "controller/tick/market_tick.h"
#include "tests/unit/controller_test_support.h"

namespace morph::controller {
namespace {

using ::testing::Contains;
using namespace fixtures;

class MarketTickTest : public ::testing::Test {
 protected:
  void SetUp() override {
    f_.open_account("alice");
    f_.open_account("poor", 1);  // cannot pay a tick
    make_parts();
  }
  // The parts over the fixture's (re)opened state, as the runtime assembles them.
  void make_parts() {
    tick_.reset();
    shifts_.reset();
    fleet_.reset();
    views_.reset();
    views_ = std::make_unique<MarketViews>(*f_.state);
    fleet_ = std::make_unique<FleetFeed>(*f_.state);
    shifts_ = std::make_unique<ShiftDispatch>(*f_.state, *fleet_);
    tick_ = std::make_unique<MarketTick>(*f_.state, *views_, *shifts_, &metrics_);
    tick_->recovered();
    fleet_->on_host_hello(*Hello("h1", 4000, {{"vm-a", "alice", 1000, 4000}, {"vm-p", "poor", 1000, 4000}}));
  }
  market::BidId submit(const std::string& account, const std::string& vm, int64_t q, market::Micros price) {
    auto b = f_.state->exchange().submit({account, vm, Resource::cpu, "improve", q, 0, price, 0});
    EXPECT_TRUE(b) << b.error().what();
    return b ? b->id : 0;
  }
  // The outcome of bid event i ("filled", "failed", ...).
  std::string outcome(size_t i) {
    flatbuffers::FlatBufferBuilder fbb;
    return f_.link.body<v1::BidOutcome>(i, fbb)->outcome()->str();
  }
  // The one alloc.h1 event of the last tick: (granted, reason, bid, quantity).
  std::tuple<bool, std::string, market::BidId, int64_t> allocation_event() {
    auto allocs = events_on("alloc.h1");
    EXPECT_EQ(allocs.size(), 1u);
    if (allocs.size() != 1) return {};
    flatbuffers::FlatBufferBuilder fbb;
    auto* a = f_.link.body<v1::AllocationChange>(allocs[0], fbb);
    return {a->granted(), a->reason()->str(), a->allocation()->bid_id(), a->allocation()->quantity()};
  }
  std::vector<size_t> events_on(const std::string& topic) {
    std::vector<size_t> out;
    for (size_t i = 0; i < f_.link.events.size(); ++i)
      if (f_.link.events[i].topic == topic) out.push_back(i);
    return out;
  }

  MarketStateFixture f_;
  metrics::Registry metrics_;
  std::unique_ptr<MarketViews> views_;
  std::unique_ptr<FleetFeed> fleet_;
  std::unique_ptr<ShiftDispatch> shifts_;
  std::unique_ptr<MarketTick> tick_;
};

TEST_F(MarketTickTest, AFillIsPublishedShiftedAndItsPriceKept) {
  const auto bid = submit("alice", "vm-a", 500, 10);
  ASSERT_TRUE(tick_->run().ok());
  EXPECT_THAT(f_.link.topics(), Contains("price.h1"));
  EXPECT_EQ(allocation_event(), std::make_tuple(true, std::string("granted"), bid, int64_t{500}));
  auto bids = events_on("bid.alice");
  ASSERT_EQ(bids.size(), 1u);
  EXPECT_EQ(outcome(bids[0]), "filled");
  ASSERT_EQ(f_.link.shifts.size(), 1u);
  EXPECT_EQ(f_.link.shifts[0].second.adjustments.at(0).value, 1500);
  ASSERT_EQ(f_.state->prices().size(), 3u);  // one book, three tiers
  EXPECT_EQ(f_.state->prices().begin()->second.back().tick, 1u);
}

TEST_F(MarketTickTest, AnUnchangedAllocationIsNotPublishedAgainAndACancelEndsItAtTheNextTick) {
  const auto bid = submit("alice", "vm-a", 500, 10);
  ASSERT_TRUE(tick_->run().ok());
  f_.link.clear();
  ASSERT_TRUE(tick_->run().ok());
  EXPECT_TRUE(events_on("alloc.h1").empty());
  EXPECT_TRUE(f_.link.shifts.empty());
  EXPECT_EQ(f_.link.renewals.size(), 1u);
  ASSERT_TRUE(f_.state->exchange().cancel("alice", bid).ok());
  f_.link.clear();
  ASSERT_TRUE(tick_->run().ok());
  EXPECT_EQ(allocation_event(), std::make_tuple(false, std::string("ended"), bid, int64_t{0}));
  ASSERT_EQ(f_.link.shifts.size(), 1u);
  EXPECT_EQ(f_.link.shifts[0].second.adjustments.at(0).value, 1000);  // back to the baseline
}

TEST_F(MarketTickTest, AFailureIsPublishedWithItsReason) {
  submit("poor", "vm-p", 500, 10);
  ASSERT_TRUE(tick_->run().ok());
  std::vector<std::string> outcomes;
  for (size_t i : events_on("bid.poor")) outcomes.push_back(outcome(i));
  EXPECT_THAT(outcomes, Contains("suspended"));
  EXPECT_TRUE(events_on("alloc.h1").empty());
}

TEST_F(MarketTickTest, AfterARestartTheRecoveredAllocationsAreNotGrantedAgain) {
  submit("alice", "vm-a", 500, 10);
  ASSERT_TRUE(tick_->run().ok());
  f_.reopen();
  make_parts();
  f_.link.clear();
  ASSERT_TRUE(tick_->run().ok());
  EXPECT_TRUE(events_on("alloc.h1").empty());
  EXPECT_EQ(f_.link.shifts.size(), 1u);  // the restarted controller re-sends the target it lost
}

TEST_F(MarketTickTest, MetricsCountTicksAndRevenue) {
  submit("alice", "vm-a", 500, 10);
  ASSERT_TRUE(tick_->run().ok());
  ASSERT_TRUE(tick_->run().ok());
  const std::string text = metrics_.render();
  EXPECT_NE(text.find("morph_market_ticks_total 2"), std::string::npos) << text;
  EXPECT_NE(text.find("morph_market_bids{tier=\"improve\"} 1"), std::string::npos) << text;
  // 500 units at the clearing price for 2 ticks of 1 s.
  EXPECT_NE(text.find("morph_market_revenue_ucredits_total"), std::string::npos);
}

TEST_F(MarketTickTest, WithoutALinkTheTickStillKeepsPrices) {
  f_.state->attach(nullptr);
  submit("alice", "vm-a", 500, 10);
  ASSERT_TRUE(tick_->run().ok());
  EXPECT_TRUE(f_.link.events.empty());
  EXPECT_FALSE(f_.state->prices().empty());
}

}  // namespace
}  // namespace morph::controller
