// RescueEvaluator: breach streaks raise SLA rescue bids only when policy, budget and funds allow;
// recovery retires them only after a healthy streak (hysteresis).
#include "controller/rescue/rescue_policy.h"

#include <gtest/gtest.h>

#include "controller/market/money.h"

namespace morph::rescue {
namespace {

constexpr uint64_t kSecond = 1'000'000'000;

SlaPolicy policy() {
  SlaPolicy p;
  p.vm = "vm1";
  p.account = "alice";
  p.runq_wait_permille = 200;
  p.blk_p99_us = 20'000;
  p.drops_per_s = 50;
  p.breach_intervals = 3;
  p.recover_intervals = 4;
  p.cpu_step = 500;
  p.max_price = 10;
  p.budget_per_hour = 500 * 10 * 3600;  // exactly one cpu step at max price
  p.funds_horizon_s = 60;
  return p;
}

kpi::VmKpis sample(uint64_t wait_pm, uint64_t blk_us = 100, uint64_t tx_drops = 0) {
  kpi::VmKpis k;
  k.uuid = "vm1";
  k.interval_ns = kSecond;
  k.cpu_run_ns = (1000 - wait_pm) * 1'000'000;
  k.cpu_wait_ns = wait_pm * 1'000'000;
  int b = 0;
  while ((uint64_t{1} << (b + 1)) < blk_us) ++b;
  k.blk_lat_us[static_cast<size_t>(b)] = 1000;
  k.net_tx_drops = tx_drops;
  return k;
}

constexpr Micros kRich = 1'000'000'000;

// Everything the evaluator decides over `n` intervals of the same sample.
std::vector<RescueAction> observe_n(RescueEvaluator& ev, int n, const kpi::VmKpis& k, Micros funds) {
  std::vector<RescueAction> got;
  for (int i = 0; i < n; ++i) {
    auto a = ev.observe(k, funds);
    got.insert(got.end(), a.begin(), a.end());
  }
  return got;
}

TEST(RescuePolicy, RaisesAfterThreeConsecutiveBreachesOnly) {
  RescueEvaluator ev;
  ASSERT_TRUE(ev.set_policy(policy()).ok());
  EXPECT_TRUE(ev.observe(sample(300), kRich).empty());
  EXPECT_TRUE(ev.observe(sample(300), kRich).empty());
  EXPECT_TRUE(ev.observe(sample(100), kRich).empty());  // streak broken
  EXPECT_TRUE(ev.observe(sample(300), kRich).empty());
  EXPECT_TRUE(ev.observe(sample(300), kRich).empty());
  auto a = ev.observe(sample(300), kRich);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].kind, RescueAction::Kind::raise);
  EXPECT_EQ(a[0].signal, Signal::runq_wait);
  EXPECT_EQ(a[0].bid.tier, "sla");
  EXPECT_EQ(a[0].bid.resource, Resource::cpu);
  EXPECT_EQ(a[0].bid.quantity, 500);
  EXPECT_EQ(a[0].bid.max_price, 10);
  EXPECT_EQ(a[0].bid.account, "alice");
  EXPECT_NE(a[0].why.find("300"), std::string::npos) << a[0].why;
  EXPECT_TRUE(ev.active("vm1", Signal::runq_wait));
  EXPECT_TRUE(ev.observe(sample(300), kRich).empty());  // no second bid while one is in force
}

TEST(RescuePolicy, RetiresOnlyAfterHealthyStreak) {
  RescueEvaluator ev;
  ASSERT_TRUE(ev.set_policy(policy()).ok());
  for (int i = 0; i < 3; ++i) (void)ev.observe(sample(300), kRich);
  ASSERT_TRUE(ev.active("vm1", Signal::runq_wait));
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(ev.observe(sample(50), kRich).empty());
  EXPECT_TRUE(ev.observe(sample(300), kRich).empty());  // relapse resets the healthy streak
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(ev.observe(sample(50), kRich).empty());
  auto a = ev.observe(sample(50), kRich);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].kind, RescueAction::Kind::retire);
  EXPECT_EQ(a[0].bid.resource, Resource::cpu);
  EXPECT_FALSE(ev.active("vm1", Signal::runq_wait));
}

// Just under the threshold is not recovered: the rescue's own capacity often holds the VM there while the
// load that starved it is still on. Only intervals under 80 % of the threshold (160 of 200 per mille) count.
TEST(RescuePolicy, RetiresOnlyWellUnderTheThreshold) {
  RescueEvaluator ev;
  ASSERT_TRUE(ev.set_policy(policy()).ok());
  for (int i = 0; i < 3; ++i) (void)ev.observe(sample(300), kRich);
  ASSERT_TRUE(ev.active("vm1", Signal::runq_wait));
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(ev.observe(sample(190), kRich).empty()) << "interval " << i;
  EXPECT_TRUE(ev.active("vm1", Signal::runq_wait));
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(ev.observe(sample(160), kRich).empty());
  EXPECT_TRUE(ev.observe(sample(170), kRich).empty());  // back above 80 %: the calm streak starts again
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(ev.observe(sample(160), kRich).empty());
  auto a = ev.observe(sample(160), kRich);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].kind, RescueAction::Kind::retire);
}

TEST(RescuePolicy, RefusedWithoutFundsOrWhenRescueIsOff) {
  RescueEvaluator ev;
  ASSERT_TRUE(ev.set_policy(policy()).ok());
  const Micros need = 500 * 10 * 60;
  std::vector<RescueAction> a;
  for (int i = 0; i < 3; ++i) a = ev.observe(sample(300), need - 1);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].kind, RescueAction::Kind::refused);
  EXPECT_NE(a[0].why.find("does not cover"), std::string::npos) << a[0].why;
  EXPECT_FALSE(ev.active("vm1", Signal::runq_wait));
  for (int i = 0; i < 3; ++i) a = ev.observe(sample(300), need);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].kind, RescueAction::Kind::raise);

  SlaPolicy off = policy();
  off.rescue = false;
  RescueEvaluator ev2;
  ASSERT_TRUE(ev2.set_policy(off).ok());
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(ev2.observe(sample(900), kRich).empty());
}

TEST(RescuePolicy, HourlyBudgetCapsTheBids) {
  SlaPolicy p = policy();
  p.disk_iops_step = 200;
  RescueEvaluator ev;
  ASSERT_TRUE(ev.set_policy(p).ok());
  std::vector<RescueAction> a;
  // CPU and block latency breach together: the budget pays the CPU step only.
  for (int i = 0; i < 3; ++i) a = ev.observe(sample(300, 50'000), kRich);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].kind, RescueAction::Kind::raise);
  EXPECT_EQ(a[0].bid.resource, Resource::cpu);
  EXPECT_EQ(a[1].kind, RescueAction::Kind::refused);
  EXPECT_EQ(a[1].signal, Signal::blk_latency);
  EXPECT_NE(a[1].why.find("budget"), std::string::npos);
  // With half the budget, the CPU step shrinks to what it pays for.
  p.budget_per_hour = 250 * 10 * 3600;
  RescueEvaluator ev2;
  ASSERT_TRUE(ev2.set_policy(p).ok());
  for (int i = 0; i < 3; ++i) a = ev2.observe(sample(300), kRich);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].bid.quantity, 250);
}

TEST(RescuePolicy, DropsAndLatencyMapToTheirResources) {
  RescueEvaluator ev;
  SlaPolicy p = policy();
  p.budget_per_hour = 0;  // no cap
  ASSERT_TRUE(ev.set_policy(p).ok());
  std::vector<RescueAction> a;
  for (int i = 0; i < 3; ++i) a = ev.observe(sample(0, 40'000, 120), kRich);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].signal, Signal::blk_latency);
  EXPECT_EQ(a[0].bid.resource, Resource::disk_iops);
  EXPECT_EQ(a[0].bid.quantity, 200);
  EXPECT_EQ(a[1].signal, Signal::tx_drops);
  EXPECT_EQ(a[1].bid.resource, Resource::net_out_kbps);
}

TEST(RescuePolicy, RejectsBadPolicies) {
  RescueEvaluator ev;
  SlaPolicy p = policy();
  p.max_price = 0;
  EXPECT_EQ(ev.set_policy(p).error().code(), Errc::invalid_argument);
  p = policy();
  p.account.clear();
  EXPECT_FALSE(ev.set_policy(p).ok());
}

}  // namespace
}  // namespace morph::rescue

namespace morph::rescue {
namespace {

// After a controller restart the rescue in force is re-armed from the ledger: it is not raised again
// while the breach lasts, it counts against the hourly budget, and it is retired on recovery.
TEST(RescuePolicy, RestoredRescueIsRetiredOnRecoveryAndNotRaisedTwice) {
  RescueEvaluator ev;
  EXPECT_FALSE(ev.restore_rescue("vm1", Signal::runq_wait, 500).ok());  // no policy yet
  ASSERT_TRUE(ev.set_policy(policy()).ok());
  EXPECT_FALSE(ev.restore_rescue("vm1", Signal::runq_wait, 0).ok());
  ASSERT_TRUE(ev.restore_rescue("vm1", Signal::runq_wait, 500).ok());
  EXPECT_TRUE(ev.active("vm1", Signal::runq_wait));
  for (int i = 0; i < 5; ++i)
    EXPECT_TRUE(ev.observe(sample(300), kRich).empty()) << i;  // still breached: no second bid
  // The budget (one cpu step) is used by the restored rescue: a latency breach cannot add a disk bid.
  std::vector<RescueAction> got = observe_n(ev, 3, sample(300, 50'000), kRich);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].kind, RescueAction::Kind::refused);
  EXPECT_NE(got[0].why.find("budget"), std::string::npos) << got[0].why;
  got = observe_n(ev, 4, sample(100), kRich);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].kind, RescueAction::Kind::retire);
  EXPECT_EQ(got[0].signal, Signal::runq_wait);
  EXPECT_FALSE(ev.active("vm1", Signal::runq_wait));
  EXPECT_EQ(parse_signal("blk_p99"), Signal::blk_latency);
  EXPECT_EQ(parse_signal("nope"), std::nullopt);
}

}  // namespace
}  // namespace morph::rescue

namespace morph::rescue {
namespace {

// Money bounds (issue #19): each money field and step refused past its bound, naming it.
TEST(RescuePolicy, RefusesMoneyFieldsPastTheirBoundsNamingThem) {
  RescueEvaluator ev;
  auto refused = [&](SlaPolicy p, const std::string& field) {
    auto st = ev.set_policy(p);
    ASSERT_FALSE(st.ok()) << field;
    EXPECT_NE(st.error().what().find(field), std::string::npos) << st.error().what();
  };
  SlaPolicy p = policy();
  p.max_price = kMaxPolicyPrice;
  p.budget_per_hour = market::kMaxBalance;
  p.funds_horizon_s = market::kMaxFundsHorizonS;
  p.cpu_step = kMaxStep;
  EXPECT_TRUE(ev.set_policy(p).ok());
  p = policy();
  p.max_price = kMaxPolicyPrice + 1;
  refused(p, "max_price " + std::to_string(kMaxPolicyPrice + 1));
  p = policy();
  p.budget_per_hour = market::kMaxBalance + 1;
  refused(p, "budget_per_hour");
  p = policy();
  p.budget_per_hour = -1;
  refused(p, "budget_per_hour -1");
  p = policy();
  p.funds_horizon_s = market::kMaxFundsHorizonS + 1;
  refused(p, "funds_horizon_s");
  p = policy();
  p.net_kbps_step = kMaxStep + 1;
  refused(p, "net_kbps_step");
}

// The funds check at the extremes of the bounds: step x max_price x horizon is past int64 (2^20 x 2^28 x
// 2^15 = 2^63); no balance covers it, so the rescue is refused. Computed unchecked it wrapped to INT64_MIN,
// and a VM with no money was rescued.
TEST(RescuePolicy, AFundsHorizonPastInt64IsRefusedNotWrapped) {
  RescueEvaluator ev;
  SlaPolicy p = policy();
  p.cpu_step = kMaxStep;
  p.max_price = kMaxPolicyPrice;
  p.funds_horizon_s = 1u << 15;
  p.budget_per_hour = 0;  // no hourly cap: only the funds decide
  ASSERT_TRUE(ev.set_policy(p).ok());
  std::vector<RescueAction> got = observe_n(ev, 3, sample(300), 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].kind, RescueAction::Kind::refused);
  EXPECT_NE(got[0].why.find("does not cover"), std::string::npos) << got[0].why;
  EXPECT_FALSE(ev.active("vm1", Signal::runq_wait));
}

// A rescue restored from the ledger with a quantity far past the steps: its hourly cost saturates (it is
// over any budget) instead of wrapping to a negative cost that would let every other signal raise.
TEST(RescuePolicy, ARestoredHugeRescueUsesTheWholeBudget) {
  RescueEvaluator ev;
  SlaPolicy p = policy();
  p.max_price = kMaxPolicyPrice;
  p.budget_per_hour = market::kMaxBalance;
  ASSERT_TRUE(ev.set_policy(p).ok());
  ASSERT_TRUE(ev.restore_rescue("vm1", Signal::runq_wait, market::kMaxQuantity).ok());
  std::vector<RescueAction> got = observe_n(ev, 3, sample(100, 50'000), kRich);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].kind, RescueAction::Kind::refused);
  EXPECT_NE(got[0].why.find("budget"), std::string::npos) << got[0].why;
}

}  // namespace
}  // namespace morph::rescue
