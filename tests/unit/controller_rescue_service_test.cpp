// RescueService: KPIs in, rescue bids in the market out — raised on the owner's behalf after a breach
// (shrunk to the room under the VM's ceiling, or not raised without any), retired after recovery, refused
// when the budget cannot pay, each announced on bid.<account>; policies checked field by field, kept in
// the ledger and restored with the rescue bids in force after a restart.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "controller/fleet/fleet_feed.h"
#include "controller/market_state/market_views.h"
#include "controller/rescue/rescue_service.h"
#include "tests/unit/controller_test_support.h"

namespace morph::controller {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace fixtures;

class RescueServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    f_.open_account("alice");
    make_parts(2000);
  }
  void make_parts(int64_t ceiling) {
    rescue_.reset();
    fleet_.reset();
    views_.reset();
    views_ = std::make_unique<MarketViews>(*f_.state);
    fleet_ = std::make_unique<FleetFeed>(*f_.state);
    rescue_ = std::make_unique<RescueService>(*f_.state, *views_, *fleet_);
    fleet_->on_host_hello(*Hello("h1", 8000, {{"vm-a", "alice", 1000, ceiling}}));
  }
  rescue::SlaPolicy policy() {
    rescue::SlaPolicy p;
    p.vm = "vm-a";
    p.account = "alice";
    p.max_price = 10;
    return p;  // 200 permille, 3 intervals to breach, 5 to recover, cpu step 500
  }
  // One interval of vm-a: `wait_ms` of run-queue wait against 500 ms on CPU.
  void interval(uint64_t wait_ms) {
    f_.clock.advance(std::chrono::seconds(1));
    rescue_->on_kpi_report(*Report("h1", f_.clock.wall_ns(), {vm_kpis("vm-a", 500, wait_ms)}));
  }
  std::vector<std::string> outcomes() { return bid_outcomes(f_.link); }

  MarketStateFixture f_;
  std::unique_ptr<MarketViews> views_;
  std::unique_ptr<FleetFeed> fleet_;
  std::unique_ptr<RescueService> rescue_;
};

TEST_F(RescueServiceTest, ABreachRaisesATaggedSlaBidForTheOwnerAndRecoveryRetiresIt) {
  ASSERT_TRUE(rescue_->set_policy(policy()).ok());
  interval(400);
  interval(400);
  EXPECT_EQ(rescue_->rescue_bid("vm-a"), 0u);
  interval(400);  // third interval over 200 permille
  const market::BidId id = rescue_->rescue_bid("vm-a");
  ASSERT_NE(id, 0u);
  const auto* bid = f_.state->market().find_bid(id);
  ASSERT_NE(bid, nullptr);
  EXPECT_EQ(bid->account, "alice");
  EXPECT_EQ(bid->tier, market::Tier::sla);
  EXPECT_EQ(bid->resource, Resource::cpu);
  EXPECT_EQ(bid->quantity, 500);
  EXPECT_TRUE(f_.state->is_rescue(id));
  EXPECT_THAT(f_.link.topics(), ElementsAre("bid.alice"));
  EXPECT_THAT(outcomes(), ElementsAre("rescue_raised"));
  for (int i = 0; i < 4; ++i) interval(10);
  EXPECT_EQ(rescue_->rescue_bid("vm-a"), id);  // 4 healthy intervals: not yet
  interval(10);
  EXPECT_EQ(rescue_->rescue_bid("vm-a"), 0u);
  EXPECT_EQ(f_.state->market().find_bid(id), nullptr);
  EXPECT_FALSE(f_.state->is_rescue(id));
  EXPECT_THAT(outcomes(), ElementsAre("rescue_raised", "rescue_retired"));
}

TEST_F(RescueServiceTest, TheStepShrinksToTheRoomUnderTheCeilingAndWithoutRoomNothingIsRaised) {
  make_parts(1250);  // 250 mc left above the 1000 mc baseline
  ASSERT_TRUE(rescue_->set_policy(policy()).ok());
  for (int i = 0; i < 3; ++i) interval(400);
  const auto* bid = f_.state->market().find_bid(rescue_->rescue_bid("vm-a"));
  ASSERT_NE(bid, nullptr);
  EXPECT_EQ(bid->quantity, 250);

  MarketStateFixture g;
  g.open_account("alice");
  MarketViews views(*g.state);
  FleetFeed fleet(*g.state);
  RescueService rescue(*g.state, views, fleet);
  fleet.on_host_hello(*Hello("h1", 8000, {{"vm-a", "alice", 1000, 1000}}));  // no room at all
  ASSERT_TRUE(rescue.set_policy(policy()).ok());
  for (int i = 0; i < 6; ++i) {
    g.clock.advance(std::chrono::seconds(1));
    rescue.on_kpi_report(*Report("h1", g.clock.wall_ns(), {vm_kpis("vm-a", 500, 400)}));
  }
  EXPECT_EQ(rescue.rescue_bid("vm-a"), 0u);
  EXPECT_TRUE(g.state->market().bids().empty());
  EXPECT_TRUE(g.link.events.empty());
}

TEST_F(RescueServiceTest, ARescueTheBudgetCannotPayIsRefusedAndAnnounced) {
  auto p = policy();
  p.budget_per_hour = 1;  // not one unit at 10 ucredits/s for an hour
  ASSERT_TRUE(rescue_->set_policy(p).ok());
  for (int i = 0; i < 3; ++i) interval(400);
  EXPECT_EQ(rescue_->rescue_bid("vm-a"), 0u);
  EXPECT_TRUE(f_.state->market().bids().empty());
  ASSERT_THAT(outcomes(), ElementsAre("rescue_refused"));
  flatbuffers::FlatBufferBuilder fbb;
  auto* ev = f_.link.body<v1::BidOutcome>(0, fbb);
  EXPECT_THAT(ev->reason()->str(), HasSubstr("budget"));
  EXPECT_EQ(ev->bid()->state(), v1::BidState::cancelled);
  EXPECT_EQ(ev->bid()->vm_uuid()->str(), "vm-a");
}

TEST_F(RescueServiceTest, AVmWithoutAPolicyIsNeverRescued) {
  for (int i = 0; i < 6; ++i) interval(900);
  EXPECT_EQ(rescue_->rescue_bid("vm-a"), 0u);
  EXPECT_EQ(rescue_->find_policy("vm-a"), nullptr);
  EXPECT_TRUE(f_.link.events.empty());
}

TEST_F(RescueServiceTest, APolicyIsCheckedFieldByFieldWithItsRange) {
  auto p = policy();
  p.breach_intervals = 0;
  EXPECT_THAT(rescue_->set_policy(p).error().what(), HasSubstr("breach_intervals 0 out of range (1..100)"));
  p = policy();
  p.recover_intervals = 101;
  EXPECT_THAT(rescue_->set_policy(p).error().what(), HasSubstr("recover_intervals 101 out of range (1..100)"));
  p = policy();
  p.net_kbps_step = (1 << 20) + 1;
  EXPECT_THAT(rescue_->set_policy(p).error().what(), HasSubstr("net_kbps_step 1048577 out of range (1..1048576)"));
  p = policy();
  p.max_price = 0;
  EXPECT_THAT(rescue_->set_policy(p).error().what(), HasSubstr("rescue needs a max price"));
  p.rescue = false;  // no rescue: no price needed
  EXPECT_TRUE(rescue_->set_policy(p).ok());
  EXPECT_EQ(rescue_->policy_count(), 1u);
}

TEST_F(RescueServiceTest, PoliciesAndRescueBidsInForceSurviveARestart) {
  ASSERT_TRUE(rescue_->set_policy(policy()).ok());
  for (int i = 0; i < 3; ++i) interval(400);
  const market::BidId id = rescue_->rescue_bid("vm-a");
  ASSERT_NE(id, 0u);
  f_.reopen();
  make_parts(2000);
  rescue_->restore(f_.operator_state);
  ASSERT_NE(rescue_->find_policy("vm-a"), nullptr);
  EXPECT_EQ(rescue_->find_policy("vm-a")->max_price, 10);
  EXPECT_EQ(rescue_->rescue_bid("vm-a"), id);
  EXPECT_TRUE(f_.state->is_rescue(id));
  // Still in force: breaching again raises nothing new; recovering retires the restored one.
  f_.link.clear();
  for (int i = 0; i < 3; ++i) interval(400);
  EXPECT_TRUE(f_.link.events.empty());
  for (int i = 0; i < 5; ++i) interval(10);
  EXPECT_THAT(outcomes(), ElementsAre("rescue_retired"));
  EXPECT_EQ(f_.state->market().find_bid(id), nullptr);
}

}  // namespace
}  // namespace morph::controller
