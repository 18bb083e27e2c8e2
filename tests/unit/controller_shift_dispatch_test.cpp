// ShiftDispatch: a tick's allocations become ShiftCommands with absolute targets (baseline + increment) and
// leases, renewals while they hold, the baseline when they end; and the record behind `morphctl shifts`.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "controller/market_state/market_wire.h"
#include "controller/shifts/shift_dispatch.h"
#include "tests/unit/controller_test_support.h"

namespace morph::controller {
namespace {

using ::testing::_;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::Field;
using namespace fixtures;

// The VMs a test knows: baselines only.
class FakeDirectory final : public VmDirectory {
 public:
  std::map<std::string, VmRecord> vms;
  const VmRecord* find_vm(const std::string& vm) const override {
    auto it = vms.find(vm);
    return it == vms.end() ? nullptr : &it->second;
  }
  bool has_host(const std::string&) const override { return true; }
  std::string owner_of(const std::string&) const override { return "alice"; }
};

market::Allocation alloc(market::BidId bid, const std::string& vm, Resource r, int64_t q) {
  market::Allocation a;
  a.bid_id = bid;
  a.vm = vm;
  a.host = "h1";
  a.account = "alice";
  a.resource = r;
  a.quantity = q;
  a.price = 3;
  return a;
}

auto setting(Resource r, int64_t v) {
  return AllOf(Field(&msg::ResourceSetting::resource, wire(r)), Field(&msg::ResourceSetting::value, v));
}

class ShiftDispatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    VmRecord a{"h1", "alice", {}, {}};
    market::at(a.baseline, Resource::cpu) = 1000;
    market::at(a.baseline, Resource::net_out_kbps) = 5000;
    dir_.vms["vm-a"] = a;
  }
  MarketStateFixture f_;
  FakeDirectory dir_;
  ShiftDispatch shifts_{*f_.state, dir_};
};

TEST_F(ShiftDispatchTest, ANewAllocationIsSentAsBaselinePlusIncrementWithALease) {
  auto sent = shifts_.dispatch({alloc(1, "vm-a", Resource::cpu, 300), alloc(2, "vm-a", Resource::cpu, 200)});
  EXPECT_THAT(sent, ElementsAre("vm-a"));
  ASSERT_EQ(f_.link.shifts.size(), 1u);
  auto& [host, o] = f_.link.shifts[0];
  EXPECT_EQ(host, "h1");
  EXPECT_EQ(o.vm_uuid, "vm-a");
  EXPECT_THAT(o.adjustments, ElementsAre(setting(Resource::cpu, 1500)));  // only what the market moved
  EXPECT_EQ(o.lease_ns, 5'000'000'000u);
  EXPECT_EQ(o.issued_ns, f_.clock.wall_ns());
  EXPECT_GT(o.command_id, f_.clock.wall_ns());  // ids start at the clock: a restart never reuses one
  EXPECT_EQ(shifts_.command_of("vm-a"), o.command_id);
  ASSERT_EQ(shifts_.records().size(), 1u);
  EXPECT_EQ(shifts_.records()[0].phase, "sent");
}

TEST_F(ShiftDispatchTest, AnIncrementThatHoldsRenewsTheLeaseOfItsCommand) {
  shifts_.dispatch({alloc(1, "vm-a", Resource::cpu, 300)});
  const uint64_t id = f_.link.shifts.at(0).second.command_id;
  EXPECT_CALL(f_.link, send_shift(_, _)).Times(0);
  EXPECT_CALL(f_.link, renew_lease("h1", AllOf(Field(&msg::LeaseRenewal::vm_uuid, "vm-a"),
                                               Field(&msg::LeaseRenewal::command_ids, ElementsAre(id)),
                                               Field(&msg::LeaseRenewal::lease_ns, 5'000'000'000u))));
  EXPECT_TRUE(shifts_.dispatch({alloc(1, "vm-a", Resource::cpu, 300)}).empty());
}

TEST_F(ShiftDispatchTest, AChangeSetsEveryResourceMovedNowOrBefore) {
  shifts_.dispatch({alloc(1, "vm-a", Resource::cpu, 300)});
  shifts_.dispatch({alloc(2, "vm-a", Resource::net_out_kbps, 1000)});
  ASSERT_EQ(f_.link.shifts.size(), 2u);
  // cpu went back to its baseline (moved before), net up by 1000 (moved now).
  EXPECT_THAT(f_.link.shifts[1].second.adjustments,
              ElementsAre(setting(Resource::cpu, 1000), setting(Resource::net_out_kbps, 6000)));
  EXPECT_GT(f_.link.shifts[1].second.command_id, f_.link.shifts[0].second.command_id);
}

TEST_F(ShiftDispatchTest, AVmThatHoldsNothingAnyMoreIsSentItsBaselineOnce) {
  shifts_.dispatch({alloc(1, "vm-a", Resource::cpu, 300)});
  EXPECT_TRUE(shifts_.dispatch({}).empty());  // not "sent for an allocation"
  ASSERT_EQ(f_.link.shifts.size(), 2u);
  EXPECT_THAT(f_.link.shifts[1].second.adjustments, ElementsAre(setting(Resource::cpu, 1000)));
  EXPECT_EQ(shifts_.command_of("vm-a"), 0u);
  shifts_.dispatch({});
  EXPECT_EQ(f_.link.shifts.size(), 2u);
  EXPECT_TRUE(f_.link.renewals.empty());
}

TEST_F(ShiftDispatchTest, AVmThatMovedGetsItsWholeAllocationOnTheNewHostAndNothingOnTheOld) {
  shifts_.dispatch({alloc(1, "vm-a", Resource::cpu, 300)});
  const uint64_t first = f_.link.shifts.at(0).second.command_id;
  // The same allocation, now cleared on h2's books: no renewal of a lease h2 never granted, no baseline to h1.
  auto moved = alloc(1, "vm-a", Resource::cpu, 300);
  moved.host = "h2";
  EXPECT_CALL(f_.link, renew_lease(_, _)).Times(0);
  EXPECT_THAT(shifts_.dispatch({moved}), ElementsAre("vm-a"));
  ASSERT_EQ(f_.link.shifts.size(), 2u);
  auto& [host, o] = f_.link.shifts[1];
  EXPECT_EQ(host, "h2");
  EXPECT_THAT(o.adjustments, ElementsAre(setting(Resource::cpu, 1300)));
  EXPECT_GT(o.command_id, first);
  EXPECT_EQ(shifts_.command_of("vm-a"), o.command_id);
  // From then on it holds there: renewed on h2.
  EXPECT_CALL(f_.link, renew_lease("h2", Field(&msg::LeaseRenewal::command_ids, ElementsAre(o.command_id))));
  EXPECT_TRUE(shifts_.dispatch({moved}).empty());
}

TEST_F(ShiftDispatchTest, AVmTheDirectoryDoesNotKnowGetsTheIncrementAlone) {
  shifts_.dispatch({alloc(1, "vm-gone", Resource::cpu, 250)});
  ASSERT_EQ(f_.link.shifts.size(), 1u);
  EXPECT_THAT(f_.link.shifts[0].second.adjustments, ElementsAre(setting(Resource::cpu, 250)));
}

TEST_F(ShiftDispatchTest, ResultsAreRecordedAndTheRecordIsBounded) {
  msg::ShiftOutcome r;
  r.command_id = 7;
  r.vm_uuid = "vm-a";
  r.error = v1::ErrorCode::unavailable;
  r.error_message = "host h1 is down or unknown";
  f_.clock.advance(std::chrono::seconds(3));
  shifts_.on_result("h1", r);
  ASSERT_EQ(shifts_.records().size(), 1u);
  EXPECT_EQ(shifts_.records()[0].phase, "failed");
  EXPECT_EQ(shifts_.records()[0].message, r.error_message);
  EXPECT_EQ(shifts_.records()[0].ts, f_.clock.wall_ns());
  for (int i = 0; i < 600; ++i) shifts_.on_result("h1", r);
  EXPECT_EQ(shifts_.records().size(), ShiftDispatch::kRecords);
}

TEST_F(ShiftDispatchTest, WithoutALinkNothingIsSentButTheRecordIsKept) {
  f_.state->attach(nullptr);
  EXPECT_THAT(shifts_.dispatch({alloc(1, "vm-a", Resource::cpu, 300)}), ElementsAre("vm-a"));
  EXPECT_TRUE(f_.link.shifts.empty());
  EXPECT_EQ(shifts_.records().size(), 1u);
}

}  // namespace
}  // namespace morph::controller
