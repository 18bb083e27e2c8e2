// Money that cannot overflow (issue #19): the attacks an outside probe found, and every money bound refused
// at the edge with an error naming the field and the bound. The numbers are the probe's.
#include <gtest/gtest.h>

#include <limits>

#include "controller/market/market.h"
#include "controller/market/money.h"

namespace morph::market {
namespace {

constexpr int64_t kAgentNetCapacity = 10'000'000;  // the agent's default capacity.net_out_kbps
constexpr Micros kHighestOldPrice = int64_t{1} << 40;
constexpr Micros kOneCredit = 1'000'000;

MarketConfig config() {
  MarketConfig c;
  for (Resource r : kMarketResources) c.set_reserve(r, 1);
  c.hold_ticks = 1;
  c.notice_ticks = 0;
  c.hysteresis_pct = 0;
  return c;
}

// A host announcing the agent's default network capacity; the attacker (1 credit) has two VMs there, an
// honest tenant (a million credits) one.
class NetMarket : public ::testing::Test {
 protected:
  void SetUp() override {
    HostSpec h{"h1", {}};
    at(h.capacity, Resource::net_out_kbps) = kAgentNetCapacity;
    ASSERT_TRUE(m_.upsert_host(h).ok());
    ASSERT_TRUE(m_.add_account({"mallory", kOneCredit}).ok());
    ASSERT_TRUE(m_.add_account({"honest", 1'000'000 * kOneCredit}).ok());
    for (auto [vm, owner] : {std::pair{"m1", "mallory"}, {"m2", "mallory"}, {"h1vm", "honest"}}) {
      VmSpec v{vm, owner, "h1", {}, {}};
      at(v.ceiling, Resource::net_out_kbps) = kAgentNetCapacity;
      ASSERT_TRUE(m_.upsert_vm(v).ok());
    }
  }
  Result<Bid> submit(const char* acct, const char* vm, int64_t qty, Micros price) {
    auto b = m_.check_submit({acct, vm, Resource::net_out_kbps, "improve", qty, 0, price, 0}, m_.last_tick());
    if (b.ok()) m_.put_bid(*b);
    return b;
  }
  Market m_{config()};
};

// Issue #19 item 1: two all-or-nothing bids of the whole link at the highest price the market accepted. The
// winner's true charge, 10^7 x 2^40 µcr, is past int64; it was cast, wrapped negative, skipped as "not
// positive", and the tenant held the link for nothing. Now such a bid is refused at submit.
TEST_F(NetMarket, AWinnerCannotPayNothing_TheAttackIsRefusedAtSubmit) {
  auto b = submit("mallory", "m1", kAgentNetCapacity, kHighestOldPrice);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code(), Errc::invalid_argument);
  EXPECT_NE(b.error().what().find("quantity x max_price"), std::string::npos) << b.error().what();
  EXPECT_NE(b.error().what().find(std::to_string(kMaxBidCostPerSecond)), std::string::npos) << b.error().what();
  EXPECT_TRUE(m_.list_bids("mallory").empty());
}

// The attack at the highest price the bound lets through: the winner owes 10^15 µcr a tick, cannot pay,
// is suspended, and the link goes to the honest tenant, who pays exactly quantity x price.
TEST_F(NetMarket, AtTheBoundTheAttackerIsSuspendedAndTheHonestTenantChargedExactly) {
  const Micros price = kMaxBidCostPerSecond / kAgentNetCapacity;
  ASSERT_TRUE(submit("mallory", "m1", kAgentNetCapacity, price).ok());
  ASSERT_TRUE(submit("mallory", "m2", kAgentNetCapacity, price).ok());
  ASSERT_TRUE(submit("honest", "h1vm", 1'000'000, 1'000).ok());
  TickOutcome o = m_.clear(1);
  for (const Allocation& a : o.allocations) EXPECT_NE(a.account, "mallory");
  int suspended = 0;
  for (const Failure& f : o.failures)
    if (f.account == "mallory") {
      EXPECT_EQ(f.reason, FailureReason::insufficient_funds);
      ++suspended;
    }
  EXPECT_EQ(suspended, 2);
  ASSERT_EQ(o.charges.size(), 1u);
  EXPECT_EQ(o.charges[0].account, "honest");
  ASSERT_EQ(o.allocations.size(), 1u);
  EXPECT_EQ(o.charges[0].amount, o.allocations[0].quantity * o.allocations[0].price);
  m_.apply(o);
  EXPECT_EQ(*m_.balance("mallory"), kOneCredit);
}

// A bid recorded before the bounds (restored from an older ledger) still clears, but its charge past int64
// leaves its account unable to pay: suspended, never charged a wrapped amount.
TEST_F(NetMarket, ABidFromBeforeTheBoundsIsSuspendedNotChargedAWrappedAmount) {
  MarketSnapshot snap;
  snap.accounts = {{"mallory", kOneCredit}, {"honest", 1'000'000 * kOneCredit}};
  for (BidId id : {BidId{1}, BidId{2}}) {
    Bid b;
    b.id = id;
    b.account = "mallory";
    b.vm = id == 1 ? "m1" : "m2";
    b.host = "h1";
    b.resource = Resource::net_out_kbps;
    b.quantity = b.min_fill = kAgentNetCapacity;
    b.max_price = kHighestOldPrice;
    b.seq = id;
    snap.bids.push_back(b);
  }
  snap.next_bid_id = snap.next_seq = 3;
  m_.restore(snap);
  TickOutcome o = m_.clear(1);
  EXPECT_TRUE(o.allocations.empty());
  EXPECT_TRUE(o.charges.empty());
  EXPECT_EQ(o.revenue, 0);
  ASSERT_EQ(o.failures.size(), 2u);
  for (const Failure& f : o.failures) EXPECT_EQ(f.reason, FailureReason::insufficient_funds);
  m_.apply(o);
  EXPECT_EQ(*m_.balance("mallory"), kOneCredit);
  // Amending it back within the bounds is how its owner gets it going again.
  BidAmendment fix;
  fix.max_price = 10;
  EXPECT_TRUE(m_.check_amend("mallory", 1, fix).ok());
  fix.max_price = kHighestOldPrice;
  EXPECT_FALSE(m_.check_amend("mallory", 1, fix).ok());
}

// Issue #19 item 2: after any positive deposit, a deposit of INT64_MAX overflowed the balance.
TEST_F(NetMarket, ACreditThatWouldOverflowABalanceIsRefused) {
  auto st = m_.credit("mallory", std::numeric_limits<Micros>::max());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Errc::invalid_argument);
  EXPECT_NE(st.error().what().find(std::to_string(kMaxBalance)), std::string::npos) << st.error().what();
  EXPECT_EQ(*m_.balance("mallory"), kOneCredit);
  // Up to the bound is fine; one µcr more is not.
  ASSERT_TRUE(m_.credit("mallory", kMaxBalance - kOneCredit).ok());
  EXPECT_EQ(*m_.balance("mallory"), kMaxBalance);
  EXPECT_FALSE(m_.credit("mallory", 1).ok());
  EXPECT_FALSE(m_.add_account({"rich", kMaxBalance + 1}).ok());
}

// All balances together stay within int64 (a tick's revenue is at most their sum).
TEST(MoneyBounds, BalancesTogetherStayWithinInt64) {
  Market m(config());
  int n = 0;
  for (; n < 20; ++n) {
    std::string a = "a" + std::to_string(n);
    ASSERT_TRUE(m.add_account({a, 0}).ok());
    if (!m.credit(a, kMaxBalance).ok()) break;
  }
  EXPECT_EQ(n, static_cast<int>(std::numeric_limits<Micros>::max() / kMaxBalance));
}

// Every bounded field of a bid, of the inventory and of the config: accepted at its bound, refused one past
// it with an error naming the field and the bound.
TEST(MoneyBounds, EveryFieldIsRefusedPastItsBoundNamingIt) {
  Market m(config());
  HostSpec h{"h1", {}};
  h.capacity.fill(kMaxQuantity);
  ASSERT_TRUE(m.upsert_host(h).ok());
  h.capacity[0] = kMaxQuantity + 1;
  auto host = m.upsert_host(h);
  ASSERT_FALSE(host.ok());
  EXPECT_NE(host.error().what().find("cpu capacity " + std::to_string(kMaxQuantity + 1)), std::string::npos);
  ASSERT_TRUE(m.add_account({"a", kMaxBalance}).ok());
  VmSpec vm{"vm1", "a", "h1", {}, {}};
  vm.ceiling.fill(kMaxQuantity);
  ASSERT_TRUE(m.upsert_vm(vm).ok());
  vm.ceiling[2] = kMaxQuantity + 1;
  EXPECT_FALSE(m.upsert_vm(vm).ok());

  auto refused = [&](int64_t qty, Micros price, const std::string& words) {
    auto b = m.check_submit({"a", "vm1", Resource::disk_bps, "improve", qty, 1, price, 0}, 0);
    ASSERT_FALSE(b.ok()) << qty << " x " << price;
    EXPECT_NE(b.error().what().find(words), std::string::npos) << b.error().what();
  };
  EXPECT_TRUE(m.check_submit({"a", "vm1", Resource::disk_bps, "improve", kMaxQuantity, 1, 1, 0}, 0).ok());
  EXPECT_TRUE(m.check_submit({"a", "vm1", Resource::disk_bps, "improve", 1, 1, kMaxPrice, 0}, 0).ok());
  refused(kMaxQuantity + 1, 1,
          "quantity " + std::to_string(kMaxQuantity + 1) + " must be in 1.." + std::to_string(kMaxQuantity));
  refused(1, kMaxPrice + 1, "max_price " + std::to_string(kMaxPrice + 1) + " must be in 1..");
  // The product: at the bound exactly, and one unit past it.
  const int64_t q = 1'000'000;
  EXPECT_TRUE(m.check_submit({"a", "vm1", Resource::disk_bps, "improve", q, 1, kMaxBidCostPerSecond / q, 0}, 0).ok());
  refused(q, kMaxBidCostPerSecond / q + 1, "exceeds the bound of " + std::to_string(kMaxBidCostPerSecond));

  MarketConfig c = config();
  c.tick_ms = kMaxTickMs;
  c.set_reserve(Resource::memory, kMaxPrice);
  EXPECT_TRUE(check_config(c).ok());
  c.tick_ms = kMaxTickMs + 1;
  auto tick = check_config(c);
  ASSERT_FALSE(tick.ok());
  EXPECT_NE(tick.error().what().find(std::to_string(kMaxTickMs)), std::string::npos);
  c.tick_ms = 1000;
  c.set_reserve(Resource::memory, kMaxPrice + 1);
  auto reserve = check_config(c);
  ASSERT_FALSE(reserve.ok());
  EXPECT_NE(reserve.error().what().find("reserve of memory"), std::string::npos) << reserve.error().what();
}

// The largest bid the bounds allow, priced by an equal loser: at a 1000 s tick its charge is at most the
// largest balance and charged to the µcr; at the longest tick (3.6 times that) no balance can pay it and
// its bidder is suspended. Both computed without overflow (the static_assert of money.h, exercised).
TEST(MoneyBounds, TheLargestBidIsChargedExactlyOrSuspended) {
  for (uint32_t tick_ms : {1'000'000u, kMaxTickMs}) {
    SCOPED_TRACE(tick_ms);
    MarketConfig c = config();
    c.tick_ms = tick_ms;
    Market m(c);
    const int64_t q = int64_t{1} << 20;
    const Micros p = kMaxBidCostPerSecond / q;
    HostSpec h{"h1", {}};
    at(h.capacity, Resource::cpu) = q;
    ASSERT_TRUE(m.upsert_host(h).ok());
    for (auto [vm, acct] : {std::pair{"va", "a"}, {"vb", "b"}}) {
      ASSERT_TRUE(m.add_account({acct, kMaxBalance}).ok());
      VmSpec v{vm, acct, "h1", {}, {}};
      at(v.ceiling, Resource::cpu) = q;
      ASSERT_TRUE(m.upsert_vm(v).ok());
      auto b = m.check_submit({acct, vm, Resource::cpu, "improve", q, 0, p, 0}, 0);
      ASSERT_TRUE(b.ok()) << b.error().what();
      m.put_bid(*b);
    }
    TickOutcome o = m.clear(1);
    const Wide want = static_cast<Wide>(q) * p * tick_ms / 1000;
    if (want <= kMaxBalance) {
      ASSERT_EQ(o.charges.size(), 1u);
      ASSERT_EQ(o.allocations.size(), 1u);
      EXPECT_EQ(o.allocations[0].price, p);
      EXPECT_EQ(static_cast<Wide>(o.charges[0].amount), want);
      m.apply(o);
      EXPECT_EQ(static_cast<Wide>(*m.balance(o.charges[0].account)), static_cast<Wide>(kMaxBalance) - want);
    } else {
      // The first winner cannot pay and is suspended; cleared again without it, the other wins uncontested
      // and pays the reserve (1).
      ASSERT_EQ(o.failures.size(), 1u);
      EXPECT_EQ(o.failures[0].reason, FailureReason::insufficient_funds);
      ASSERT_EQ(o.charges.size(), 1u);
      EXPECT_NE(o.charges[0].account, o.failures[0].account);
      EXPECT_EQ(static_cast<Wide>(o.charges[0].amount), static_cast<Wide>(q) * tick_ms / 1000);
    }
  }
}

}  // namespace
}  // namespace morph::market
