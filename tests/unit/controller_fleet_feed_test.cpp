// FleetFeed: HostHellos, host liveness and owner overrides into the market's inventory, seen through the
// market itself (supply, room under the ceiling) and the VmDirectory the other parts read.
#include <gtest/gtest.h>

#include "controller/fleet/fleet_feed.h"
#include "tests/unit/controller_test_support.h"

namespace morph::controller {
namespace {

using namespace fixtures;

class FleetFeedTest : public ::testing::Test {
 protected:
  void SetUp() override { f_.open_account("alice"); }
  market::Market& market() { return f_.state->market(); }

  MarketStateFixture f_;
  FleetFeed feed_{*f_.state};
};

TEST_F(FleetFeedTest, AHelloFeedsItsHostAndTheVmsWhoseOwnerHasAnAccount) {
  feed_.on_host_hello(*Hello("h1", 8000, {{"vm-a", "alice", 1000, 2000}, {"vm-b", "nobody", 500}}));
  // Supply: capacity less the baselines of the VMs in the market (vm-b's owner has no account: not in it).
  EXPECT_EQ(market().supply("h1", Resource::cpu), 7000);
  EXPECT_EQ(market().room("vm-a", Resource::cpu), 1000);  // its own ceiling (2000) less its baseline
  EXPECT_EQ(market().room("vm-b", Resource::cpu), 0);     // unknown to the market
  ASSERT_NE(feed_.find_vm("vm-b"), nullptr);              // but known to the directory
  EXPECT_EQ(feed_.find_vm("vm-b")->host, "h1");
  EXPECT_EQ(feed_.owner_of("vm-b"), "nobody");
  EXPECT_TRUE(feed_.has_host("h1"));
  EXPECT_FALSE(feed_.has_host("h2"));
}

TEST_F(FleetFeedTest, ACeilingNotSaidIsTheHostsCapacity) {
  feed_.on_host_hello(*Hello("h1", 4000, {{"vm-a", "alice", 1000, 0}}));
  EXPECT_EQ(market().room("vm-a", Resource::cpu), 3000);
}

TEST_F(FleetFeedTest, ANewAccountIsFedAtOnce) {
  feed_.on_host_hello(*Hello("h1", 8000, {{"vm-b", "bob", 500, 1500}}));
  EXPECT_EQ(market().room("vm-b", Resource::cpu), 0);
  f_.open_account("bob");
  feed_.feed_all();
  EXPECT_EQ(market().room("vm-b", Resource::cpu), 1000);
}

TEST_F(FleetFeedTest, AHostDownOffersNothingFromTheNextTickAndItsCapacityAgainWhenBack) {
  feed_.on_host_hello(*Hello("h1", 8000, {{"vm-a", "alice", 1000}}));
  feed_.on_host_change("h1", false);
  EXPECT_EQ(market().supply("h1", Resource::cpu), 7000);  // not before the tick
  feed_.feed_if_hosts_changed();
  EXPECT_LE(market().supply("h1", Resource::cpu), 0);
  feed_.on_host_change("h1", true);
  feed_.feed_if_hosts_changed();
  EXPECT_EQ(market().supply("h1", Resource::cpu), 7000);
  // Nothing changed since: a tick feeds nothing (a host unknown to the feed changes nothing either).
  feed_.on_host_change("h9", false);
  market::HostSpec other{"h1", {}};
  ASSERT_TRUE(market().upsert_host(other).ok());  // what a feed would overwrite
  feed_.feed_if_hosts_changed();
  EXPECT_LE(market().supply("h1", Resource::cpu), 0);
}

TEST_F(FleetFeedTest, AVmNoLongerReportedSitsOutAndAVmThatMovedBelongsToItsNewHost) {
  feed_.on_host_hello(*Hello("h1", 8000, {{"vm-a", "alice", 1000}, {"vm-c", "alice", 2000}}));
  feed_.on_host_hello(*Hello("h2", 8000, {}));
  EXPECT_EQ(market().supply("h1", Resource::cpu), 5000);
  // vm-a moves to h2; h1 then stops reporting vm-c as well.
  feed_.on_host_hello(*Hello("h2", 8000, {{"vm-a", "alice", 1000}}));
  feed_.on_host_hello(*Hello("h1", 8000, {}));
  EXPECT_EQ(feed_.find_vm("vm-a")->host, "h2");
  EXPECT_EQ(feed_.find_vm("vm-c"), nullptr);
  EXPECT_EQ(market().supply("h1", Resource::cpu), 8000);  // vm-c's baseline no longer takes supply
  EXPECT_EQ(market().supply("h2", Resource::cpu), 7000);
  // The move was published once, naming both hosts; a VM new to the fleet is no move.
  std::vector<std::string> moves;
  for (auto& e : f_.link.events) {
    if (e.type != v1::MarketEventBody::VmMigrated) continue;
    EXPECT_EQ(e.topic, "vm.migrated");
    flatbuffers::FlatBufferBuilder b;
    b.Finish(e.build(b));
    auto* m = flatbuffers::GetRoot<v1::VmMigrated>(b.GetBufferPointer());
    moves.push_back(m->vm_uuid()->str() + " " + m->from_host()->str() + "->" + m->to_host()->str());
  }
  EXPECT_EQ(moves, std::vector<std::string>{"vm-a h1->h2"});
}

TEST_F(FleetFeedTest, AnOwnerOverrideIsKeptInTheLedgerAndFeedsTheVm) {
  f_.open_account("carol");
  feed_.on_host_hello(*Hello("h1", 8000, {{"vm-x", "", 1000, 1500}}));
  EXPECT_EQ(market().room("vm-x", Resource::cpu), 0);  // no owner: not in the market
  ASSERT_TRUE(feed_.set_owner("vm-x", "carol", "ops").ok());
  EXPECT_EQ(feed_.owner_of("vm-x"), "carol");
  EXPECT_EQ(market().room("vm-x", Resource::cpu), 500);
  EXPECT_EQ(feed_.owner_overrides(), 1u);
  // After a restart the override comes back from the ledger.
  f_.reopen();
  FleetFeed again(*f_.state);
  again.restore_owners(f_.operator_state.owners);
  EXPECT_EQ(again.owner_of("vm-x"), "carol");
  ASSERT_EQ(f_.operator_state.owners.size(), 1u);
  EXPECT_EQ(f_.operator_state.owners[0].set_by, "ops");
  EXPECT_EQ(f_.operator_state.owners[0].set_ns, f_.clock.wall_ns());
}

}  // namespace
}  // namespace morph::controller
