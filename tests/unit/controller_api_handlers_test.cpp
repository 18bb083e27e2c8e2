// MarketRequests: each market request kind registered once with its access rule, the rule checked before
// the handler (admins only, the account's own caller, anyone with lists filtered), and the one rule for a
// bid's expiry on submit and amend alike.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "controller/api/handlers/bid_expiry.h"
#include "controller/api/handlers/market_requests.h"
#include "tests/unit/controller_test_support.h"

namespace morph::controller {
namespace {

using namespace fixtures;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;
using Body = v1::ApiRequestBody;

constexpr uint64_t kTick = 1'000'000'000ULL;

class MarketRequestsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    f_.open_account("alice");
    f_.open_account("bob");
    fleet_.on_host_hello(
        *Hello("h1", 8000, {{"vm-a", "alice", 1000, 4000}, {"vm-b", "bob", 1000, 4000}, {"vm-x", "", 1000, 4000}}));
  }
  Result<ReplyBody> call(const Caller& c, const Request& r) { return requests_.handle(c, *r, fbb_); }
  Errc refused(const Caller& c, const Request& r, std::string* message = nullptr) {
    auto rep = call(c, r);
    EXPECT_FALSE(rep) << "not refused";
    if (rep) return Errc::internal;
    if (message) *message = rep.error().what();
    return rep.error().code();
  }
  static Request submit(const std::string& account, const std::string& vm, uint64_t expires_ns = 0) {
    return Request(Body::BidSubmit, [&](auto& b) {
      return v1::CreateBidSubmitDirect(b, account.c_str(), vm.c_str(), v1::Resource::cpu, 100, 0, 5,
                                       v1::BidTier::improvement, expires_ns);
    });
  }
  market::BidId submitted(const Caller& c, const Request& r) {
    auto rep = call(c, r);
    EXPECT_TRUE(rep) << rep.error().what();
    if (!rep) return 0;
    return reply_as<v1::BidReply>(fbb_, *rep)->bid()->bid_id();
  }
  static Request amend_expiry(market::BidId id, uint64_t expires_ns) {
    return Request(Body::BidAmend, [&](auto& b) {
      v1::BidAmendBuilder a(b);
      a.add_bid_id(id);
      a.add_expires_ns(expires_ns);
      return a.Finish();
    });
  }
  static Request policy_get(const std::string& vm) {
    return Request(Body::PolicyGet, [&](auto& b) { return v1::CreatePolicyGetDirect(b, vm.c_str()); });
  }

  MarketStateFixture f_;
  MarketViews views_{*f_.state};
  FleetFeed fleet_{*f_.state};
  ShiftDispatch shifts_{*f_.state, fleet_};
  RescueService rescue_{*f_.state, views_, fleet_};
  PredictiveService predictive_{*f_.state, views_, fleet_, rescue_};
  MarketRequests requests_{{*f_.state, views_, fleet_, rescue_, shifts_, predictive_}};
  flatbuffers::FlatBufferBuilder fbb_;
};

TEST_F(MarketRequestsTest, EveryMarketRequestKindIsRegisteredAndNoOther) {
  std::vector<Body> handled;
  for (auto kind : v1::EnumValuesApiRequestBody())
    if (requests_.handles(kind)) handled.push_back(kind);
  EXPECT_THAT(handled,
              UnorderedElementsAre(Body::AccountCreate, Body::AccountGet, Body::AccountList, Body::AccountDeposit,
                                   Body::BidSubmit, Body::BidAmend, Body::BidCancel, Body::BidList, Body::PricesQuery,
                                   Body::AllocationsQuery, Body::LedgerQuery, Body::PolicyGet, Body::PolicySet,
                                   Body::QuoteQuery, Body::ShiftsQuery, Body::VmOwnerSet));
  std::string why;
  EXPECT_EQ(refused(admin(), Request(Body::HostsQuery, [](auto& b) { return v1::CreateHostsQuery(b); }), &why),
            Errc::invalid_argument);
  EXPECT_EQ(why, "HostsQuery: not a market request");
  EXPECT_DEATH(requests_.add(Body::BidList, MarketRequests::anyone(), {}), "");  // once per kind
}

TEST_F(MarketRequestsTest, AdminOnlyKindsAreRefusedToTenantsBeforeAnythingElse) {
  std::string why;
  auto create = Request(Body::AccountCreate, [](auto& b) { return v1::CreateAccountCreateDirect(b, "not valid!"); });
  EXPECT_EQ(refused(tenant("alice"), create, &why), Errc::permission_denied);
  EXPECT_EQ(why, "creating an account is for admins only");
  EXPECT_EQ(refused(admin(), create, &why), Errc::invalid_argument);  // an admin gets to the handler's check
  auto deposit = Request(Body::AccountDeposit, [](auto& b) { return v1::CreateAccountDepositDirect(b, "alice", 5); });
  EXPECT_EQ(refused(tenant("alice"), deposit, &why), Errc::permission_denied);
  EXPECT_EQ(why, "depositing is for admins only");
  EXPECT_TRUE(call(admin(), deposit));
  auto owner = Request(Body::VmOwnerSet, [](auto& b) { return v1::CreateVmOwnerSetDirect(b, "vm-x", "alice"); });
  EXPECT_EQ(refused(tenant("alice"), owner, &why), Errc::permission_denied);
  EXPECT_EQ(why, "setting a VM's owner is for admins only");
  ASSERT_TRUE(call(admin(), owner));
  EXPECT_EQ(fleet_.owner_of("vm-x"), "alice");
}

TEST_F(MarketRequestsTest, ATenantActsOnlyOnItsOwnAccount) {
  std::string why;
  auto get_bob = Request(Body::AccountGet, [](auto& b) { return v1::CreateAccountGetDirect(b, "bob"); });
  EXPECT_EQ(refused(tenant("alice"), get_bob, &why), Errc::permission_denied);
  EXPECT_EQ(why, "tenant-alice may not act on account bob");
  EXPECT_TRUE(call(tenant("bob"), get_bob));
  EXPECT_EQ(refused(tenant("alice"), submit("bob", "vm-b")), Errc::permission_denied);
  // A bid is acted on by its own account's caller; an unknown bid is not found whoever asks.
  const market::BidId bobs = submitted(tenant("bob"), submit("bob", "vm-b"));
  auto cancel = [](market::BidId id) {
    return Request(Body::BidCancel, [id](auto& b) { return v1::CreateBidCancel(b, id); });
  };
  EXPECT_EQ(refused(tenant("alice"), cancel(bobs)), Errc::permission_denied);
  EXPECT_EQ(refused(tenant("alice"), amend_expiry(bobs, 0)), Errc::permission_denied);
  EXPECT_EQ(refused(tenant("alice"), cancel(bobs + 100), &why), Errc::not_found);
  EXPECT_EQ(why, "unknown or closed bid " + std::to_string(bobs + 100));
  EXPECT_TRUE(call(tenant("bob"), cancel(bobs)));
  // VMs: by their owner; an unknown VM is not found first; a VM nobody owns takes no policy.
  EXPECT_EQ(refused(tenant("alice"), policy_get("vm-b")), Errc::permission_denied);
  EXPECT_EQ(refused(tenant("alice"), policy_get("vm-zz"), &why), Errc::not_found);
  EXPECT_EQ(why, "unknown VM vm-zz");
  EXPECT_EQ(refused(tenant("alice"), policy_get("vm-x")), Errc::permission_denied);  // nobody's: admins only
  EXPECT_TRUE(call(admin(), policy_get("vm-x")));
  auto set_x = Request(Body::PolicySet, [](auto& b) {
    v1::PolicySetBuilder p(b);
    p.add_vm_uuid(b.CreateString("vm-x"));
    return p.Finish();
  });
  EXPECT_EQ(refused(admin(), set_x, &why), Errc::invalid_argument);
  EXPECT_EQ(why, "VM vm-x has no owner account");
}

TEST_F(MarketRequestsTest, ListsShowOnlyWhatTheCallerSees) {
  submitted(admin(), submit("alice", "vm-a"));
  submitted(admin(), submit("bob", "vm-b"));
  auto accounts = call(tenant("alice"), Request(Body::AccountList, [](auto& b) { return v1::CreateAccountList(b); }));
  ASSERT_TRUE(accounts);
  std::vector<std::string> names;
  for (const auto* a : *reply_as<v1::AccountListReply>(fbb_, *accounts)->accounts())
    names.push_back(a->account()->str());
  EXPECT_THAT(names, ElementsAre("alice"));
  fbb_.Clear();
  auto bids = call(tenant("alice"), Request(Body::BidList, [](auto& b) { return v1::CreateBidListDirect(b); }));
  ASSERT_TRUE(bids);
  std::vector<std::string> owners;
  for (const auto* b : *reply_as<v1::BidListReply>(fbb_, *bids)->bids()) owners.push_back(b->account()->str());
  EXPECT_THAT(owners, ElementsAre("alice"));
  fbb_.Clear();
  auto all = call(admin(), Request(Body::BidList, [](auto& b) { return v1::CreateBidListDirect(b); }));
  ASSERT_TRUE(all);
  EXPECT_EQ(reply_as<v1::BidListReply>(fbb_, *all)->bids()->size(), 2u);
}

TEST_F(MarketRequestsTest, ATenantsLedgerQueryIsConfinedToItsAccount) {
  auto ledger = [](const char* account) {
    return Request(Body::LedgerQuery, [account](auto& b) { return v1::CreateLedgerQueryDirect(b, account, 0, 100); });
  };
  auto rows = call(tenant("alice"), ledger(""));  // asks for everything, gets its own
  ASSERT_TRUE(rows);
  auto* reply = reply_as<v1::LedgerReply>(fbb_, *rows);
  ASSERT_GT(reply->entries()->size(), 0u);
  for (const auto* e : *reply->entries()) EXPECT_EQ(e->account()->str(), "alice");
  EXPECT_EQ(refused(tenant("alice"), ledger("bob")), Errc::permission_denied);
  std::string why;
  EXPECT_EQ(refused(tenant(""), ledger(""), &why), Errc::permission_denied);
  EXPECT_THAT(why, HasSubstr("may not act on account (any)"));
}

TEST(BidExpiry, TheTicksToExpiresNsRoundedUpAtLeastOne) {
  const uint64_t now = 1'000 * kTick;
  EXPECT_EQ(*expiry_tick(0, now, 40, kTick), 0u);  // until cancelled
  EXPECT_EQ(*expiry_tick(now + 1, now, 40, kTick), 41u);
  EXPECT_EQ(*expiry_tick(now + kTick, now, 40, kTick), 41u);
  EXPECT_EQ(*expiry_tick(now + kTick + 1, now, 40, kTick), 42u);
  EXPECT_EQ(*expiry_tick(now + 5 * kTick / 2, now, 40, kTick), 43u);
  auto past = expiry_tick(now, now, 40, kTick);
  ASSERT_FALSE(past);
  EXPECT_EQ(past.error().code(), Errc::invalid_argument);
  EXPECT_EQ(past.error().what(), "expires_ns is in the past");
}

TEST_F(MarketRequestsTest, SubmitAndAmendTurnTheSameExpiresNsIntoTheSameTick) {
  const uint64_t now = f_.clock.wall_ns();
  const market::Tick last = f_.state->market().last_tick();
  for (uint64_t ahead : {kTick / 3, kTick, 5 * kTick / 2, 10 * kTick - 1}) {
    const market::BidId id = submitted(admin(), submit("alice", "vm-a", now + ahead));
    const market::Tick on_submit = f_.state->market().find_bid(id)->expiry;
    EXPECT_EQ(on_submit, last + (ahead + kTick - 1) / kTick) << ahead;
    ASSERT_TRUE(call(admin(), amend_expiry(id, now + 20 * kTick)));
    ASSERT_TRUE(call(admin(), amend_expiry(id, now + ahead)));
    EXPECT_EQ(f_.state->market().find_bid(id)->expiry, on_submit) << ahead;
    fbb_.Clear();
  }
  // The reply shows the expiry as a time no earlier than asked.
  auto rep = call(admin(), submit("alice", "vm-a", now + 5 * kTick / 2));
  ASSERT_TRUE(rep);
  EXPECT_EQ(reply_as<v1::BidReply>(fbb_, *rep)->bid()->expires_ns(), now + 3 * kTick);
}

TEST_F(MarketRequestsTest, AnExpiryInThePastIsRefusedOnSubmitAndAmendAlikeAndZeroClearsIt) {
  const uint64_t now = f_.clock.wall_ns();
  std::string why;
  EXPECT_EQ(refused(admin(), submit("alice", "vm-a", now), &why), Errc::invalid_argument);
  EXPECT_EQ(why, "expires_ns is in the past");
  const market::BidId id = submitted(admin(), submit("alice", "vm-a", now + 3 * kTick));
  EXPECT_EQ(refused(admin(), amend_expiry(id, now - 1), &why), Errc::invalid_argument);
  EXPECT_EQ(why, "expires_ns is in the past");
  ASSERT_TRUE(call(admin(), amend_expiry(id, 0)));
  EXPECT_EQ(f_.state->market().find_bid(id)->expiry, 0u);
}

// Issue #19: a tenant's quote on another tenant's VM was answered; a quote on a host is anyone's.
TEST_F(MarketRequestsTest, AQuoteOnAVmIsItsOwnersOnly) {
  auto quote = [](const char* vm, const char* host) {
    return Request(Body::QuoteQuery, [=](auto& b) {
      return v1::CreateQuoteQueryDirect(b, vm, host, v1::Resource::cpu, v1::BidTier::improvement, 100);
    });
  };
  std::string why;
  EXPECT_EQ(refused(tenant("alice"), quote("vm-b", nullptr), &why), Errc::permission_denied);
  EXPECT_EQ(why, "tenant-alice may not act on account bob");
  EXPECT_TRUE(call(tenant("bob"), quote("vm-b", nullptr)));
  EXPECT_TRUE(call(admin(), quote("vm-b", nullptr)));
  EXPECT_TRUE(call(tenant("alice"), quote(nullptr, "h1")));
  EXPECT_EQ(refused(tenant("alice"), quote("vm-nowhere", nullptr)), Errc::not_found);
}

// Issue #19: a tenant's snapshot carried every tenant's allocations, which the allocations query hides.
TEST_F(MarketRequestsTest, ASnapshotShowsATenantItsOwnAllocationsOnly) {
  submitted(tenant("alice"), submit("alice", "vm-a"));
  submitted(tenant("bob"), submit("bob", "vm-b"));
  fleet_.feed_all();
  ASSERT_TRUE(f_.state->exchange().run_tick());
  auto accounts_in = [&](const Caller& c) {
    std::vector<flatbuffers::Offset<v1::PriceInfo>> prices;
    std::vector<flatbuffers::Offset<v1::AllocationInfo>> allocs;
    flatbuffers::FlatBufferBuilder fbb;
    requests_.snapshot(c, fbb, prices, allocs);
    std::vector<std::string> accounts;
    for (auto off : allocs) {
      auto* a = flatbuffers::GetTemporaryPointer(fbb, off);
      accounts.push_back(a->account()->str());
    }
    std::sort(accounts.begin(), accounts.end());
    return accounts;
  };
  EXPECT_THAT(accounts_in(admin()), ElementsAre("alice", "bob"));
  EXPECT_THAT(accounts_in(tenant("alice")), ElementsAre("alice"));
  EXPECT_THAT(accounts_in(tenant("carol")), ElementsAre());
}

}  // namespace
}  // namespace morph::controller
