// Predictive bids: the live demand forecasts (DemandForecasts over the KPI history, on a ManualClock's
// report times), the sizing of a predictive bid (predictive_plan.h), and PredictiveService in a real market
// over a SQLite ledger: no bid on too little history (and policy status says so), a bid placed as the
// forecast rises above the baseline, amended as it moves, cancelled when it falls, within the room and the
// hourly budget, tagged predictive, and still known after a restart.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "controller/fleet/fleet_feed.h"
#include "controller/market_state/market_views.h"
#include "controller/predict/demand_forecasts.h"
#include "controller/predict/predictive_plan.h"
#include "controller/predict/predictive_service.h"
#include "tests/unit/controller_test_support.h"

namespace morph::controller {
namespace {

using ::testing::HasSubstr;
using namespace fixtures;
using predict::PlanStep;

constexpr auto kStep = std::chrono::seconds(10);

KpiHistory::Options history_options() {
  KpiHistory::Options o;
  o.fine_samples = 60;
  o.coarse_window = kStep;
  return o;
}
DemandForecastsConfig forecast_config() {
  DemandForecastsConfig c;
  c.step = kStep;
  c.max_horizon = 6;
  c.min_steps = 3;
  return c;
}

// KPI history and forecasts fed one report a second of one VM's demand (run only), at the clock's time.
struct Feed {
  test::ManualClock& clock;
  std::shared_ptr<KpiHistory> history = std::make_shared<KpiHistory>(history_options());
  std::shared_ptr<DemandForecasts> forecasts = std::make_shared<DemandForecasts>(history, forecast_config());

  // `seconds` one-second reports of vm at `demand_mc`; each also goes to `also` (the market's observer).
  template <class F>
  void run(const std::string& vm, uint64_t demand_mc, int seconds, F&& also) {
    for (int i = 0; i < seconds; ++i) {
      clock.advance(std::chrono::seconds(1));
      Report r("h1", clock.wall_ns(), {vm_kpis(vm, demand_mc, 0)});
      history->on_kpi_report(*r, 0);
      forecasts->on_kpi_report(*r, 0);
      also(*r);
    }
  }
  void run(const std::string& vm, uint64_t demand_mc, int seconds) {
    run(vm, demand_mc, seconds, [](const v1::KpiReport&) {});
  }
};

// A clock on a step boundary, so each step is ten whole reports.
test::ManualClock aligned_clock() {
  return test::ManualClock(1'800'000'000'000'000'000ULL);
}

TEST(DemandForecasts, EachClosedStepFeedsTheMeanDemandOfItsReportsAndForecastsEveryHorizon) {
  test::ManualClock clock = aligned_clock();
  Feed feed{clock};
  EXPECT_FALSE(feed.forecasts->forecast("vm-a"));
  feed.run("vm-a", 400, 9);  // reports ending at 1..9 s: the first step, still open
  EXPECT_FALSE(feed.forecasts->forecast("vm-a"));
  feed.run("vm-a", 700, 1);  // ends at 10 s: the next step's first report closes the first
  auto f = feed.forecasts->forecast("vm-a");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->steps, 1u);
  EXPECT_NEAR(f->last_mc, 400, 1e-9);
  EXPECT_EQ(f->as_of_ns, 1'800'000'000'000'000'000ULL + 10'000'000'000ULL);
  ASSERT_EQ(f->ahead.size(), 6u);
  for (auto& q : f->ahead) EXPECT_LE(q.p50, q.p90);
  feed.run("vm-a", 700, 10);  // the second step: 10 reports at 700 (the one ending at 20 s opens the third)
  f = feed.forecasts->forecast("vm-a");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->steps, 2u);
  EXPECT_NEAR(f->last_mc, 700, 1e-9);
  EXPECT_EQ(feed.forecasts->vm_count(), 1u);
}

TEST(DemandForecasts, ASteadyDemandIsForecastNearItsLevelAndASilentVmStartsOver) {
  test::ManualClock clock = aligned_clock();
  Feed feed{clock};
  feed.run("vm-a", 600, 300);  // 30 steps at 600 mc
  auto f = feed.forecasts->forecast("vm-a");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->steps, 30u);  // the report ending at 300 s closed the 30th
  for (auto& q : f->ahead) {
    EXPECT_NEAR(q.p50, 600, 60);
    EXPECT_GE(q.p90, q.p50);
    EXPECT_LT(q.p90, 800);
  }
  clock.advance(std::chrono::seconds(100));  // silent for 10 steps, more than the 6 it forecasts
  feed.run("vm-a", 600, 1);
  EXPECT_FALSE(feed.forecasts->forecast("vm-a"));  // its history starts again
}

TEST(PredictivePlan, QuantilesBetweenAndBeyondP90AreReadOffTheNormalShape) {
  forecast::QuantileForecast f{1000, 1256};  // p90 - p50 = 256 = 1.2816 sigma: sigma ~ 200
  EXPECT_NEAR(predict::quantile_of(f, 0.5), 1000, 1e-6);
  EXPECT_NEAR(predict::quantile_of(f, 0.9), 1256, 1e-6);
  EXPECT_NEAR(predict::quantile_of(f, 0.99), 1000 + 2.3263 * 256 / 1.2816, 0.5);
  EXPECT_NEAR(predict::quantile_of(f, 0.75), 1000 + 0.6745 * 256 / 1.2816, 0.5);
}

predict::PlanInput plan_input(double p50, double p90) {
  predict::PlanInput in;
  in.ahead = {{p50, p90}, {p50, p90}, {p50, p90}};
  in.horizon_steps = 3;
  in.baseline_mc = 1000;
  in.room_mc = 3000;
  in.max_price = 10;
  return in;
}

TEST(PredictivePlan, PlacesForTheForecastAboveTheBaselineAmendsPastTheDeadbandAndCancelsWhenItFalls) {
  struct Case {
    const char* what;
    double p50, p90;
    int64_t current;
    PlanStep::Kind kind;
    int64_t quantity;
  };
  const Case cases[] = {
      {"under the baseline: nothing", 700, 900, 0, PlanStep::Kind::keep, 0},
      {"p90 1620 above 1000: 620 rounded up to 650", 1400, 1620, 0, PlanStep::Kind::place, 650},
      {"moved by less than the deadband: kept", 1400, 1660, 650, PlanStep::Kind::keep, 650},
      {"moved past it: amended", 1800, 2100, 650, PlanStep::Kind::amend, 1100},
      {"fell under the baseline: cancelled", 500, 700, 1100, PlanStep::Kind::cancel, 0},
      {"past the room: capped at it", 4000, 5000, 0, PlanStep::Kind::place, 3000},
  };
  for (const auto& c : cases) {
    auto in = plan_input(c.p50, c.p90);
    in.current = c.current;
    auto step = predict::plan_predictive(in);
    EXPECT_EQ(step.kind, c.kind) << c.what;
    EXPECT_EQ(step.quantity, c.quantity) << c.what;
  }
  // The peak over the horizon counts, and only the steps the horizon reaches.
  auto in = plan_input(800, 900);
  in.ahead[2] = {1500, 2000};
  EXPECT_EQ(predict::plan_predictive(in).quantity, 1000);
  in.horizon_steps = 2;
  EXPECT_EQ(predict::plan_predictive(in).kind, PlanStep::Kind::keep);
}

TEST(PredictivePlan, TheHourlyBudgetLeftAfterRescueBidsCapsTheBid) {
  auto in = plan_input(2400, 3000);  // wants 2000 mc
  in.max_price = 10;                 // 36,000 µcr per mc-hour
  in.budget_per_hour = 36'000 * 1000;
  auto step = predict::plan_predictive(in);
  EXPECT_EQ(step.kind, PlanStep::Kind::place);
  EXPECT_EQ(step.quantity, 1000);
  EXPECT_THAT(step.why, HasSubstr("hourly budget"));
  in.committed_per_hour = 36'000 * 800;  // a rescue of 800 mc in force
  EXPECT_EQ(predict::plan_predictive(in).quantity, 200);
  in.committed_per_hour = 36'000 * 1000;  // nothing left: no bid, and one in force is cancelled
  EXPECT_EQ(predict::plan_predictive(in).kind, PlanStep::Kind::keep);
  in.current = 200;
  EXPECT_EQ(predict::plan_predictive(in).kind, PlanStep::Kind::cancel);
}

class PredictiveServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    f_.open_account("alice");
    fleet_.on_host_hello(*Hello("h1", 16000, {{"vm-a", "alice", 1000, 4000}}));
    service_.use_forecasts(feed_.forecasts);
  }
  rescue::SlaPolicy policy() {
    rescue::SlaPolicy p;
    p.vm = "vm-a";
    p.account = "alice";
    p.rescue = false;
    p.max_price = 10;
    p.predictive = true;
    p.predictive_horizon_s = 30;  // 3 steps of 10 s
    return p;
  }
  void run(uint64_t demand_mc, int seconds) {
    feed_.run("vm-a", demand_mc, seconds, [&](const v1::KpiReport& r) { service_.on_kpi_report(r); });
  }
  const market::Bid* bid() { return f_.state->market().find_bid(service_.bid("vm-a")); }

  MarketStateFixture f_;
  Feed feed_{f_.clock};
  MarketViews views_{*f_.state};
  FleetFeed fleet_{*f_.state};
  RescueService rescue_{*f_.state, views_, fleet_};
  PredictiveService service_{*f_.state, views_, fleet_, rescue_};
};

TEST_F(PredictiveServiceTest, TooLittleHistoryGetsNoBidAndTheStatusSaysHowMuchThereIs) {
  ASSERT_TRUE(rescue_.set_policy(policy()).ok());
  EXPECT_THAT(service_.status("vm-a"), HasSubstr("too little history: 0 of 3 forecast steps of 10 s"));
  run(3000, 21);  // two steps closed
  EXPECT_EQ(service_.bid("vm-a"), 0u);
  EXPECT_THAT(service_.status("vm-a"), HasSubstr("too little history: 2 of 3"));
  EXPECT_TRUE(f_.state->market().bids().empty());
}

TEST_F(PredictiveServiceTest, ABidFollowsTheForecastUpAndDownWithinTheRoomAndIsTaggedPredictive) {
  ASSERT_TRUE(rescue_.set_policy(policy()).ok());
  run(600, 60);  // under the baseline of 1000: no bid
  EXPECT_EQ(service_.bid("vm-a"), 0u);
  EXPECT_THAT(service_.status("vm-a"), HasSubstr("no bid needed"));
  run(2000, 60);  // a rise: a bid for the forecast above the baseline
  const market::Bid* b = bid();
  ASSERT_NE(b, nullptr);
  const market::BidId id = b->id;
  EXPECT_TRUE(f_.state->is_predictive(id));
  EXPECT_FALSE(f_.state->is_rescue(id));
  {  // announced on bid.alice as predictive (an event's body is built when it is sent: now)
    flatbuffers::FlatBufferBuilder fbb;
    const auto* placed = f_.link.body<v1::BidOutcome>(f_.link.events.size() - 1, fbb);
    EXPECT_THAT(placed->outcome()->str(), ::testing::StartsWith("predictive_"));
    ASSERT_NE(placed->bid(), nullptr);
    EXPECT_TRUE(placed->bid()->predictive());
    EXPECT_FALSE(placed->bid()->rescue());
  }
  EXPECT_EQ(b->tier, market::Tier::improve);
  EXPECT_EQ(b->account, "alice");
  EXPECT_EQ(b->max_price, 10);
  EXPECT_GE(b->quantity, 900);  // covers the 2000 mc seen, above the 1000 baseline
  const int64_t first = b->quantity;
  run(3500, 60);  // higher: amended (the same bid), capped by the 3000 mc of room under the ceiling
  b = bid();
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->id, id);
  EXPECT_GT(b->quantity, first);
  EXPECT_LE(b->quantity, 3000);
  // The demand falls to 300 mc: the bid is cancelled once the forecast's p90 is back under the baseline,
  // which takes the forecaster a while after a high level (its decaying histogram has a 24-step half-life).
  int steps = 0;
  while (service_.bid("vm-a") != 0 && steps < 60) {
    run(300, 10);
    ++steps;
  }
  EXPECT_EQ(service_.bid("vm-a"), 0u) << service_.status("vm-a");
  EXPECT_GE(steps, 1);
  EXPECT_FALSE(f_.state->is_predictive(id));
  auto outcomes = bid_outcomes(f_.link);
  EXPECT_EQ(std::count(outcomes.begin(), outcomes.end(), "predictive_placed"), 1);
  EXPECT_GE(std::count(outcomes.begin(), outcomes.end(), "predictive_amended"), 1);
  EXPECT_EQ(std::count(outcomes.begin(), outcomes.end(), "predictive_cancelled"), 1);
}

TEST_F(PredictiveServiceTest, TheBidStaysWithinTheHourlyBudgetAndGoesWhenPredictiveIsTurnedOff) {
  auto p = policy();
  p.budget_per_hour = 10 * 3600 * 400;  // 400 mc at max_price
  ASSERT_TRUE(rescue_.set_policy(p).ok());
  run(3500, 60);
  const market::Bid* b = bid();
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->quantity, 400);
  EXPECT_LE(b->quantity * b->max_price * 3600, p.budget_per_hour);
  EXPECT_THAT(service_.status("vm-a"), HasSubstr("hourly budget"));
  p.predictive = false;
  ASSERT_TRUE(rescue_.set_policy(p).ok());
  service_.policy_changed("vm-a");
  EXPECT_EQ(service_.bid("vm-a"), 0u);
  EXPECT_EQ(service_.status("vm-a"), "off");
}

TEST_F(PredictiveServiceTest, AHorizonPastTheForecastersReachIsRefusedNamingTheField) {
  auto p = policy();
  p.predictive_horizon_s = 61;  // 7 steps of 10 s; the forecaster reaches 6
  auto st = service_.check(p);
  ASSERT_FALSE(st);
  EXPECT_THAT(st.error().what(), HasSubstr("predictive_horizon_s 61 out of range (1..60"));
  p.predictive_horizon_s = 60;
  EXPECT_TRUE(service_.check(p).ok());
  p.predictive_quantile_permille = 995;
  EXPECT_THAT(rescue_.set_policy(p).error().what(),
              HasSubstr("predictive_quantile_permille 995 out of range (500..990)"));
  PredictiveService no_forecaster{*f_.state, views_, fleet_, rescue_};
  EXPECT_THAT(no_forecaster.check(policy()).error().what(), HasSubstr("need the demand forecaster"));
}

TEST_F(PredictiveServiceTest, ThePolicyAndTheBidInForceSurviveARestart) {
  ASSERT_TRUE(rescue_.set_policy(policy()).ok());
  run(2500, 60);
  const market::BidId id = service_.bid("vm-a");
  ASSERT_NE(id, 0u);
  f_.reopen();  // a controller restart: the market, the policy and the tags from the ledger
  MarketViews views{*f_.state};
  FleetFeed fleet{*f_.state};
  fleet.on_host_hello(*Hello("h1", 16000, {{"vm-a", "alice", 1000, 4000}}));
  RescueService rescue{*f_.state, views, fleet};
  rescue.restore(f_.operator_state);
  PredictiveService service{*f_.state, views, fleet, rescue};
  service.restore(f_.operator_state);
  ASSERT_NE(rescue.find_policy("vm-a"), nullptr);
  EXPECT_TRUE(rescue.find_policy("vm-a")->predictive);
  EXPECT_EQ(rescue.find_policy("vm-a")->predictive_horizon_s, 30u);
  EXPECT_EQ(service.bid("vm-a"), id);
  EXPECT_TRUE(f_.state->is_predictive(id));
  EXPECT_FALSE(f_.state->is_rescue(id));
}

}  // namespace
}  // namespace morph::controller
