// Property tests: random markets (seeded, many iterations, several ticks each with bids arriving,
// amended and cancelled, and accounts running dry) must satisfy the rules of docs/market.md at every tick.
#include <gtest/gtest.h>

#include <cstdio>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <tuple>

#include "controller/market/market.h"
#include "controller/market/money.h"

namespace morph::market {
namespace {

struct Key {
  std::string host;
  Resource r;
  Tier t;
  auto operator<=>(const Key&) const = default;
};

// Extremes: every bounded field (capacities, ceilings, quantities, prices, balances, the tick, reserves)
// drawn from its bounds and their neighbours, so products and sums that would wrap int64 happen if anything
// lets them (docs/market.md "Money bounds").
class RandomMarket {
 public:
  RandomMarket(uint64_t seed, bool with_notice, bool extremes = false)
      : rng_(seed), extremes_(extremes), market_(make_config(with_notice)) {
    std::uniform_int_distribution<int> hosts(1, 3), vms(1, 4), accounts(2, 5);
    n_accounts_ = accounts(rng_);
    for (int a = 0; a < n_accounts_; ++a) {
      Micros bal = pick(0, 3) == 0 ? pick(0, 20000) : pick(0, 3'000'000);
      if (extremes_) bal = one_of({0, 1, kMaxBalance / 2, kMaxBalance - 1, kMaxBalance});
      // All balances together stay within int64 (Market refuses more): later accounts may start empty.
      if (!market_.add_account({"acct" + std::to_string(a), bal}).ok()) {
        EXPECT_TRUE(market_.add_account({"acct" + std::to_string(a), 0}).ok());
      }
    }
    int nh = hosts(rng_);
    for (int h = 0; h < nh; ++h) {
      HostSpec hs{"h" + std::to_string(h), {}};
      for (auto& c : hs.capacity) c = extremes_ ? one_of({1, 400, int64_t{1} << 20, kMaxQuantity}) : pick(50, 400);
      EXPECT_TRUE(market_.upsert_host(hs).ok());
      int nv = vms(rng_);
      for (int v = 0; v < nv; ++v) {
        VmSpec vm{hs.id + "-vm" + std::to_string(v), "acct" + std::to_string(pick(0, n_accounts_ - 1)), hs.id, {}, {}};
        for (Resource r : kMarketResources) {
          at(vm.baseline, r) = pick(0, 20);
          at(vm.ceiling, r) = extremes_ ? kMaxQuantity : at(vm.baseline, r) + pick(50, 300);
        }
        EXPECT_TRUE(market_.upsert_vm(vm).ok());
        vms_.push_back(vm);
      }
    }
  }

  MarketConfig make_config(bool with_notice) {
    MarketConfig c;
    for (Resource r : kMarketResources)
      for (int t = 0; t < kTierCount; ++t)
        c.reserve[static_cast<size_t>(r)][t] = extremes_ ? one_of({0, 1}) : pick(1, 10);
    c.tick_ms = static_cast<uint32_t>(pick(0, 1) ? 1000 : pick(100, 2000));
    if (extremes_) c.tick_ms = static_cast<uint32_t>(one_of({1, 1000, kMaxTickMs - 1, kMaxTickMs}));
    c.hold_ticks = static_cast<uint32_t>(pick(1, 4));
    c.notice_ticks = with_notice ? static_cast<uint32_t>(pick(1, 3)) : 0;
    c.hysteresis_pct = static_cast<uint32_t>(pick(0, 20));
    return c;
  }

  int64_t pick(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng_); }
  int64_t one_of(std::initializer_list<int64_t> v) {
    return *(v.begin() + pick(0, static_cast<int64_t>(v.size()) - 1));
  }
  // A quantity and a max price: small ones, or near the bounds of each and of their product.
  std::pair<int64_t, Micros> extreme_bid() {
    int64_t q = one_of({1, 2, 1'000, int64_t{1} << 20, kMaxQuantity - 1, kMaxQuantity});
    Micros most = kMaxBidCostPerSecond / q;  // the highest max_price the product bound lets through
    Micros p = one_of({1, 2, most - 1, most, most + 1, kMaxPrice});
    return {q, std::max<Micros>(p, 1)};
  }

  void churn() {
    static const char* tiers[] = {"sla", "improve", "speculative"};
    for (int i = pick(0, 6); i > 0; --i) {
      const VmSpec& vm = vms_[static_cast<size_t>(pick(0, static_cast<int64_t>(vms_.size()) - 1))];
      Resource r = kMarketResources[static_cast<size_t>(pick(0, kMarketResourceCount - 1))];
      int64_t q = pick(1, 120);
      Micros price = pick(1, 60);
      if (extremes_) std::tie(q, price) = extreme_bid();
      BidRequest req{vm.owner, vm.id, r, tiers[pick(0, 2)], q, pick(0, 2) == 0 ? 0 : pick(1, q), price, 0};
      if (pick(0, 4) == 0) req.expiry = market_.last_tick() + static_cast<Tick>(pick(1, 5));
      auto b = market_.check_submit(req, market_.last_tick());
      if (b.ok()) market_.put_bid(*b);  // ceilings and reserves refuse some: that is fine
      if (b.ok() && static_cast<Wide>(q) * price > kMaxBidCostPerSecond / 2) ++near_bound_;
      if (!b.ok() && static_cast<Wide>(q) * price > kMaxBidCostPerSecond) ++past_bound_;
    }
    auto live = all_bids();
    if (!live.empty() && pick(0, 2) == 0) {
      const Bid& b = live[static_cast<size_t>(pick(0, static_cast<int64_t>(live.size()) - 1))];
      if (pick(0, 1)) {
        auto c = market_.check_cancel(b.account, b.id);
        ASSERT_TRUE(c.ok());
        market_.put_bid(*c);
      } else {
        BidAmendment a;
        a.max_price = pick(1, 60);
        auto c = market_.check_amend(b.account, b.id, a);
        if (c.ok()) market_.put_bid(*c);
      }
    }
    if (pick(0, 5) == 0) {
      // Within the bounds a credit is taken; past them it is refused and nothing changes.
      const std::string acct = "acct" + std::to_string(pick(0, n_accounts_ - 1));
      const Micros amount =
          extremes_ ? one_of({1, kMaxBalance / 3, kMaxBalance, std::numeric_limits<Micros>::max()}) : pick(1, 50000);
      const Micros was = *market_.balance(acct);
      if (market_.credit(acct, amount).ok()) {
        EXPECT_EQ(*market_.balance(acct), was + amount);
      } else {
        EXPECT_TRUE(extremes_);
        EXPECT_EQ(*market_.balance(acct), was);
      }
      EXPECT_LE(*market_.balance(acct), kMaxBalance);
    }
  }

  std::vector<Bid> all_bids() const {
    std::vector<Bid> out;
    for (int a = 0; a < n_accounts_; ++a) {
      auto v = market_.list_bids("acct" + std::to_string(a));
      out.insert(out.end(), v.begin(), v.end());
    }
    return out;
  }

  Market& market() { return market_; }
  int64_t near_bound() const { return near_bound_; }  // bids taken with quantity x price over half the bound
  int64_t past_bound() const { return past_bound_; }  // bids refused for quantity x price past the bound

 private:
  std::mt19937_64 rng_;
  bool extremes_ = false;
  int64_t near_bound_ = 0, past_bound_ = 0;
  Market market_;
  int n_accounts_ = 0;
  std::vector<VmSpec> vms_;
};

// What the random markets exercised, so a generator that stopped producing contention fails loudly.
struct Coverage {
  int64_t allocations = 0, partial = 0, losers = 0, broke = 0, notices = 0, priced_by_loser = 0;
  int64_t big_charges = 0;  // above a tenth of the largest balance
};

void check_tick(RandomMarket& rm, bool strict_tiers, uint64_t seed, Coverage& cov) {
  Market& m = rm.market();
  const MarketConfig& cfg = m.config();
  std::map<BidId, Bid> bids;
  for (const Bid& b : rm.all_bids()) bids[b.id] = b;
  std::map<std::string, Micros> before;
  for (const Bid& b : rm.all_bids()) before[b.account] = *m.balance(b.account);

  const Tick tick = m.last_tick() + 1;
  TickOutcome o = m.clear(tick);
  SCOPED_TRACE("seed " + std::to_string(seed) + " tick " + std::to_string(tick));

  std::set<std::string> broke;
  std::set<BidId> out_of_play;  // suspended before, suspended now, or expired
  for (const Failure& f : o.failures) {
    if (f.reason == FailureReason::insufficient_funds) {
      broke.insert(f.account);
      ++cov.broke;
    }
    if (f.reason == FailureReason::no_capacity || f.reason == FailureReason::price_below_market) ++cov.losers;
    if (f.reason == FailureReason::insufficient_funds || f.reason == FailureReason::suspended)
      out_of_play.insert(f.bid_id);
  }
  for (const Bid& b : o.bid_changes) out_of_play.insert(b.id);

  std::map<BidId, int64_t> fill;
  std::map<std::pair<std::string, Resource>, int64_t> used;
  std::map<Key, Micros> alloc_price;
  for (const Allocation& a : o.allocations) {
    ASSERT_TRUE(bids.contains(a.bid_id));
    const Bid& b = bids[a.bid_id];
    EXPECT_FALSE(broke.contains(b.account));
    EXPECT_GE(a.quantity, b.min_fill) << "partial fill below min_fill, bid " << b.id;
    EXPECT_LE(a.quantity, b.quantity);
    EXPECT_LE(a.price, b.max_price) << "paid above max, bid " << b.id;
    fill[a.bid_id] = a.quantity;
    ++cov.allocations;
    if (a.quantity < b.quantity) {
      ++cov.partial;
    }
    if (a.notice_until == tick + cfg.notice_ticks && cfg.notice_ticks > 0) {
      ++cov.notices;
    }
    used[{a.host, a.resource}] += a.quantity;
    Key k{a.host, a.resource, a.tier};
    if (alloc_price.contains(k)) {
      EXPECT_EQ(alloc_price[k], a.price) << "price not uniform";
    }
    alloc_price[k] = a.price;
  }
  for (const auto& [hr, q] : used) EXPECT_LE(q, m.supply(hr.first, hr.second)) << "capacity exceeded on " << hr.first;

  // Price = max(reserve, min(highest losing, lowest winning)) per (host, resource, tier); reserve if no winner.
  std::map<Key, std::pair<Micros, Micros>> lose_win;  // highest losing, lowest winning
  for (const auto& [id, b] : bids) {
    if (out_of_play.contains(id)) continue;
    Key k{b.host, b.resource, b.tier};
    auto& lw = lose_win.try_emplace(k, 0, std::numeric_limits<Micros>::max()).first->second;
    int64_t f = fill.contains(id) ? fill[id] : 0;
    if (f < b.quantity) lw.first = std::max(lw.first, b.max_price);
    if (f > 0) lw.second = std::min(lw.second, b.max_price);
  }
  for (const PriceQuote& p : o.prices) {
    Key k{p.host, p.resource, p.tier};
    const Micros reserve = cfg.reserve[static_cast<size_t>(p.resource)][static_cast<size_t>(p.tier)];
    if (alloc_price.contains(k)) {
      EXPECT_EQ(alloc_price[k], p.price);
    }
    if (p.sold == 0) {
      EXPECT_EQ(p.price, reserve);
      continue;
    }
    ASSERT_TRUE(lose_win.contains(k));
    auto [lose, win] = lose_win[k];
    EXPECT_EQ(p.price, std::max(reserve, std::min(lose, win)));
    if (p.price > reserve) {
      ++cov.priced_by_loser;
    }
  }

  // Tier order (without notices, which by design outrank newer higher-tier demand for a while): a bid
  // short of its quantity could not have been served from what lower tiers got plus what stayed free.
  if (strict_tiers) {
    for (const auto& [id, b] : bids) {
      if (out_of_play.contains(id)) continue;
      int64_t f = fill.contains(id) ? fill[id] : 0;
      if (f >= b.quantity) continue;
      int64_t higher_or_same = 0;
      for (const Allocation& a : o.allocations)
        if (a.host == b.host && a.resource == b.resource && a.tier <= b.tier) higher_or_same += a.quantity;
      int64_t spare = m.supply(b.host, b.resource) - higher_or_same;
      if (f > 0) {
        EXPECT_EQ(spare, 0) << "partly filled bid " << id << " while lower tiers or free capacity had units";
      } else
        EXPECT_LT(spare, b.min_fill) << "unfilled bid " << id << " could have had its minimum from lower tiers";
    }
  }

  // Money: revenue = sum of charges; every charge = quantity x price x tick, rounded down; nobody negative.
  Wide sum = 0;
  std::map<std::string, Wide> due;
  for (const Charge& c : o.charges) {
    EXPECT_GT(c.amount, 0);
    if (c.amount > kMaxBalance / 10) ++cov.big_charges;
    sum += c.amount;
    due[c.account] += c.amount;
    const Allocation* a = nullptr;
    for (const Allocation& x : o.allocations)
      if (x.bid_id == c.bid_id) a = &x;
    ASSERT_NE(a, nullptr);
    // Compared in 128 bits: a charge that wrapped int64 cannot match.
    EXPECT_EQ(static_cast<Wide>(c.amount), static_cast<Wide>(a->quantity) * a->price * cfg.tick_ms / 1000);
  }
  EXPECT_EQ(sum, static_cast<Wide>(o.revenue));
  m.apply(o);
  for (const auto& [acct, amount] : due) {
    EXPECT_GE(*m.balance(acct), 0);
    EXPECT_EQ(static_cast<Wide>(*m.balance(acct)), static_cast<Wide>(before[acct]) - amount);
  }
}

class MarketProperties : public ::testing::TestWithParam<bool> {};

TEST_P(MarketProperties, HoldOnRandomMarkets) {
  const bool notice = GetParam();
  const uint64_t base = notice ? 1000 : 0;
  Coverage cov;
  for (uint64_t seed = base; seed < base + 300; ++seed) {
    RandomMarket rm(seed, notice);
    for (int t = 0; t < 25; ++t) {
      rm.churn();
      check_tick(rm, !notice, seed, cov);
      if (::testing::Test::HasFailure()) return;
    }
  }
  std::printf("allocations %ld partial %ld losers %ld suspensions %ld notices %ld prices-above-reserve %ld\n",
              static_cast<long>(cov.allocations), static_cast<long>(cov.partial), static_cast<long>(cov.losers),
              static_cast<long>(cov.broke), static_cast<long>(cov.notices), static_cast<long>(cov.priced_by_loser));
  EXPECT_GT(cov.allocations, 1000);
  EXPECT_GT(cov.partial, 100);
  EXPECT_GT(cov.losers, 100);
  EXPECT_GT(cov.broke, 10);
  EXPECT_GT(cov.priced_by_loser, 100);
  if (notice) {
    EXPECT_GT(cov.notices, 10);
  }
}

// Every bounded field at and around its bound: the same properties, money computed without wrapping, and
// credits past the bounds refused. Funds run out all the time here, so suspensions are common.
TEST(MarketPropertiesAtTheBounds, HoldAtTheExtremesOfEveryBoundedField) {
  Coverage cov;
  int64_t near = 0, past = 0;
  for (uint64_t seed = 5000; seed < 5300; ++seed) {
    RandomMarket rm(seed, seed % 2 == 0, /*extremes=*/true);
    for (int t = 0; t < 15; ++t) {
      rm.churn();
      check_tick(rm, seed % 2 != 0, seed, cov);
      if (::testing::Test::HasFailure()) return;
    }
    near += rm.near_bound();
    past += rm.past_bound();
  }
  std::printf("allocations %ld suspensions %ld charges above 10^17 %ld bids near the cost bound %ld past it %ld\n",
              static_cast<long>(cov.allocations), static_cast<long>(cov.broke), static_cast<long>(cov.big_charges),
              static_cast<long>(near), static_cast<long>(past));
  EXPECT_GT(cov.allocations, 300);
  EXPECT_GT(cov.broke, 100);
  EXPECT_GT(near, 100);  // the generator reaches the product bound from both sides
  EXPECT_GT(past, 100);
}

std::string notice_name(const ::testing::TestParamInfo<bool>& p) {
  return p.param ? "with_notice" : "without_notice";
}
INSTANTIATE_TEST_SUITE_P(Notice, MarketProperties, ::testing::Values(false, true), notice_name);

}  // namespace
}  // namespace morph::market
