// The worked examples of docs/market.md ("Worked examples"), one test each, with the same numbers.
// If you change a number here, change the table in the doc (and the other way round); the single-tick
// tables are also read from the doc itself (DocTablesMatchTheMarket, at the end).
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <regex>
#include <sstream>

#include "tests/support/requirements.h"
#include "tests/unit/market_test_support.h"

namespace morph::market {
namespace {

using testing::OneHostMarket;
constexpr auto kNone = FailureReason::none;
constexpr auto kNoCap = FailureReason::no_capacity;
constexpr auto kBelow = FailureReason::price_below_market;

// Examples 1-4 are single ticks: one row a bid, in the order submitted (min_fill 0: all or nothing), with
// what it must get: its fill, its charge for the tick and why it failed, if it did.
struct SingleTickBid {
  const char* example;
  const char* bid;
  const char* tier;
  int64_t quantity, min_fill;
  Micros max_price;
  int64_t fill;
  Micros charge;
  FailureReason reason;
};
const SingleTickBid kSingleTick[] = {
    // Example 1: one tier, the highest losing bid sets the price.
    {"E1", "A", "improve", 400, 100, 50, 400, 12000, kNone},
    {"E1", "B", "improve", 400, 0, 40, 400, 12000, kNone},
    {"E1", "C", "improve", 300, 100, 30, 200, 6000, kNone},
    {"E1", "D", "improve", 200, 0, 20, 0, 0, kBelow},
    // Example 2: tiers are served in order whatever the prices; each tier has its own price.
    {"E2", "S1", "sla", 600, 0, 15, 600, 6000, kNone},
    {"E2", "I1", "improve", 500, 100, 80, 400, 32000, kNone},
    {"E2", "I2", "improve", 300, 0, 60, 0, 0, kBelow},
    {"E2", "P1", "speculative", 200, 1, 90, 0, 0, kNoCap},
    // Example 3: equal prices — the earlier bid is served first; the partly filled one sets the price.
    {"E3", "A", "improve", 300, 100, 40, 300, 12000, kNone},
    {"E3", "B", "improve", 300, 100, 40, 200, 8000, kNone},
    {"E3", "C", "improve", 100, 0, 30, 0, 0, kBelow},
    // Example 4: a bid that cannot reach its min_fill is skipped; it pushes the price only up to the
    // lowest winner's price.
    {"E4", "A", "improve", 300, 0, 40, 300, 7500, kNone},
    {"E4", "B", "improve", 300, 0, 40, 0, 0, kNoCap},
    {"E4", "C", "improve", 200, 0, 25, 200, 5000, kNone},
};

// Submits the example's bids to `m`, runs one tick, and checks each bid's fill, charge and failure.
void expect_single_tick(OneHostMarket& m, const std::string& example) {
  for (const auto& b : kSingleTick)
    if (b.example == example) m.bid(b.bid, b.tier, b.quantity, b.min_fill, b.max_price);
  m.tick();
  for (const auto& b : kSingleTick)
    if (b.example == example) {
      EXPECT_EQ(m.fill(b.bid), b.fill) << example << " bid " << b.bid;
      EXPECT_EQ(m.charge(b.bid), b.charge) << example << " bid " << b.bid;
      EXPECT_EQ(m.reason(b.bid), b.reason) << example << " bid " << b.bid;
    }
}

TEST(MarketExamples, E1_UniformPriceIsHighestLosingBid) {
  OneHostMarket m(1000);
  expect_single_tick(m, "E1");
  EXPECT_EQ(m.price(Tier::improve), 30);
}

TEST(MarketExamples, E2_TiersServedInOrder) {
  MarketConfig c = OneHostMarket::default_config();
  c.reserve[static_cast<size_t>(Resource::cpu)] = {10, 5, 1};
  OneHostMarket m(1000, c);
  expect_single_tick(m, "E2");
  EXPECT_EQ(m.price(Tier::sla), 10);
  EXPECT_EQ(m.price(Tier::improve), 80);
  EXPECT_EQ(m.price(Tier::speculative), 1);
}

TEST(MarketExamples, E3_TiesGoToTheEarlierBid) {
  OneHostMarket m(500);
  expect_single_tick(m, "E3");
  EXPECT_EQ(m.price(Tier::improve), 40);
}

TEST(MarketExamples, E4_MinFillLoserIsCappedAtLowestWinner) {
  OneHostMarket m(500);
  expect_single_tick(m, "E4");
  EXPECT_EQ(m.price(Tier::improve), 25);
}

// The default configuration with one change.
MarketConfig config_with(const std::function<void(MarketConfig&)>& change) {
  MarketConfig c = OneHostMarket::default_config();
  change(c);
  return c;
}

// After a tick: `bid` holds `fill` and is charged `charge` for it.
void expect_holds(const OneHostMarket& m, const std::string& bid, int64_t fill, Micros charge) {
  EXPECT_EQ(m.fill(bid), fill) << bid;
  EXPECT_EQ(m.charge(bid), charge) << bid;
}

// Examples 5 and 7 start alike: A alone has all 100 at the reserve, 1 per unit.
void expect_a_alone(const OneHostMarket& m) {
  EXPECT_EQ(m.fill("A"), 100);
  EXPECT_EQ(m.price(Tier::improve), 1);
  EXPECT_EQ(m.charge("A"), 100);
}

// Examples 5 and 7 end alike: B has all 100 at 20 per unit (A's price, the highest losing bid), A is out.
void expect_b_took_over(const OneHostMarket& m) {
  EXPECT_EQ(m.fill("A"), 0);
  EXPECT_EQ(m.fill("B"), 100);
  EXPECT_EQ(m.price(Tier::improve), 20);
  EXPECT_EQ(m.charge("B"), 2000);
  EXPECT_EQ(m.reason("A"), kBelow);
}

// Example 5: minimum hold time against the same tier.
TEST(MarketExamples, E5_MinimumHoldTime) {
  OneHostMarket m(100, config_with([](MarketConfig& c) { c.hold_ticks = 3; }));
  m.bid("A", "improve", 100, 10, 20);
  m.tick();  // tick 1
  expect_a_alone(m);
  m.bid("B", "improve", 100, 0, 50);
  for (int t = 2; t <= 3; ++t) {
    m.tick();
    EXPECT_EQ(m.fill("A"), 100) << "tick " << t;
    EXPECT_EQ(m.fill("B"), 0) << "tick " << t;
    EXPECT_EQ(m.price(Tier::improve), 20) << "tick " << t;
    EXPECT_EQ(m.charge("A"), 2000) << "tick " << t;
    EXPECT_EQ(m.reason("B"), kNoCap);
  }
  m.tick();  // tick 4: the hold (ticks 1..3) is over
  expect_b_took_over(m);
}

// Example 6: a higher tier takes held capacity at once.
TEST(MarketExamples, E6_HigherTierPreemptsHold) {
  OneHostMarket m(100, config_with([](MarketConfig& c) { c.hold_ticks = 3; }));
  m.bid("A", "improve", 100, 10, 20);
  m.tick();
  m.bid("S", "sla", 60, 0, 5);
  m.tick();
  expect_holds(m, "S", 60, 60);
  expect_holds(m, "A", 40, 800);
  EXPECT_EQ(m.price(Tier::sla), 1);
  EXPECT_EQ(m.price(Tier::improve), 20);
}

// Example 7: hysteresis — a challenger must beat an incumbent by hysteresis_pct.
TEST(MarketExamples, E7_Hysteresis) {
  OneHostMarket m(100, config_with([](MarketConfig& c) { c.hysteresis_pct = 10; }));
  m.bid("A", "improve", 100, 0, 20);
  m.tick();
  expect_a_alone(m);
  m.bid("B", "improve", 100, 0, 21);
  m.tick();
  EXPECT_EQ(m.charge("A"), 2000);
  EXPECT_EQ(m.fill("A"), 100);
  EXPECT_EQ(m.fill("B"), 0);
  EXPECT_EQ(m.price(Tier::improve), 20);
  EXPECT_EQ(m.reason("B"), kNoCap);
  m.amend("B", 23);
  m.tick();
  expect_b_took_over(m);
}

// Example 8: speculative capacity is revoked only after notice.
TEST(MarketExamples, E8_SpeculativeNotice) {
  OneHostMarket m(100, config_with([](MarketConfig& c) { c.notice_ticks = 2; }));
  m.bid("P", "speculative", 100, 10, 30);
  m.tick();  // 1
  EXPECT_EQ(m.fill("P"), 100);
  m.bid("I", "improve", 70, 0, 10);
  m.tick();  // 2: notice given, P keeps 100 until tick 4
  EXPECT_EQ(m.fill("P"), 100);
  EXPECT_EQ(m.price(Tier::improve), 1);
  EXPECT_EQ(m.price(Tier::speculative), 1);
  EXPECT_EQ(m.charge("P"), 100);
  EXPECT_EQ(m.notice_until("P"), 4u);
  EXPECT_EQ(m.fill("I"), 0);
  EXPECT_EQ(m.reason("I"), kNoCap);
  m.tick();  // 3
  EXPECT_EQ(m.fill("P"), 100);
  EXPECT_EQ(m.fill("I"), 0);
  EXPECT_EQ(m.charge("P"), 100);
  EXPECT_EQ(m.reason("I"), kNoCap);
  m.tick();  // 4: notice ran out
  expect_holds(m, "I", 70, 70);
  expect_holds(m, "P", 30, 900);
  EXPECT_EQ(m.price(Tier::improve), 1);
  EXPECT_EQ(m.price(Tier::speculative), 30);
  EXPECT_EQ(m.notice_until("P"), 0u);
}

// Example 9: an account that cannot pay is suspended and the book cleared again without it.
TEST(MarketExamples, E9_InsufficientFundsSuspendsAndReclears) {
  OneHostMarket m(100);
  m.fund("X", 1000);
  m.fund("Y", 1'000'000);
  m.bid("X", "improve", 100, 1, 50);
  m.bid("Y", "improve", 100, 1, 30);
  const TickOutcome& o = m.tick();
  EXPECT_EQ(m.fill("X"), 0);
  EXPECT_EQ(m.fill("Y"), 100);
  EXPECT_EQ(m.price(Tier::improve), 1);
  EXPECT_EQ(m.charge("Y"), 100);
  EXPECT_EQ(m.reason("X"), FailureReason::insufficient_funds);
  ASSERT_NE(m.market().find_bid(m.id("X")), nullptr);
  EXPECT_EQ(m.market().find_bid(m.id("X"))->state, BidState::suspended);
  EXPECT_EQ(o.revenue, 100);
  // Next tick it is reported as suspended until a credit lifts it.
  m.tick();
  EXPECT_EQ(m.reason("X"), FailureReason::suspended);
  EXPECT_EQ(m.fill("Y"), 100);
  EXPECT_EQ(m.charge("Y"), 100);
  ASSERT_TRUE(m.market().credit("X", 10'000).ok());
  m.tick();
  EXPECT_EQ(m.fill("X"), 100);
  EXPECT_EQ(m.price(Tier::improve), 30);
  EXPECT_EQ(m.charge("X"), 3000);
  EXPECT_EQ(m.reason("Y"), kBelow);
  EXPECT_EQ(m.reason("X"), kNone);
}

}  // namespace
}  // namespace morph::market

// The single-tick example tables of docs/market.md (E1-E4: "| bid | tier | qty | min_fill | max_price |
// → fill | pays/unit | charge | failure |"), read from the doc itself and run through the market, so the
// doc cannot drift from the code. The multi-tick examples are checked by the tests above.
namespace morph::market {
namespace {

std::vector<std::string> cells(const std::string& line) {
  std::vector<std::string> out;
  std::stringstream ss(line);
  std::string c;
  std::getline(ss, c, '|');  // before the first bar
  while (std::getline(ss, c, '|')) {
    auto b = c.find_first_not_of(' '), e = c.find_last_not_of(' ');
    out.push_back(b == std::string::npos ? "" : c.substr(b, e - b + 1));
  }
  return out;
}

TEST(MarketExamples, DocTablesMatchTheMarket) {
  std::ifstream doc(morph::test::source_dir() + "/docs/market.md");
  ASSERT_TRUE(doc) << "cannot read docs/market.md";
  struct Example {
    std::string name;
    int64_t supply = 0;
    std::array<Micros, kTierCount> reserve{1, 1, 1};
    std::vector<std::vector<std::string>> rows;
  };
  std::vector<Example> examples;
  const std::regex supply_re(R"(^Supply (\d+))"), reserve_re(R"(reserve: sla (\d+), improve (\d+), speculative (\d+))");
  bool in_table = false;
  for (std::string line; std::getline(doc, line);) {
    if (line.rfind("### E", 0) == 0) {
      examples.push_back({line.substr(4)});
      in_table = false;
      continue;
    }
    if (examples.empty()) continue;
    Example& ex = examples.back();
    std::smatch m;
    if (std::regex_search(line, m, supply_re)) ex.supply = std::stoll(m[1]);
    if (std::regex_search(line, m, reserve_re)) ex.reserve = {std::stoll(m[1]), std::stoll(m[2]), std::stoll(m[3])};
    if (line.rfind("| bid | tier | qty | min_fill | max_price | → fill | pays/unit | charge | failure |", 0) == 0) {
      in_table = true;
      continue;
    }
    if (in_table && line.rfind("|---", 0) == 0) continue;
    if (in_table && line.rfind("| ", 0) == 0) {
      ex.rows.push_back(cells(line));
      continue;
    }
    in_table = false;
  }
  int checked = 0;
  for (const Example& ex : examples) {
    if (ex.rows.empty()) continue;
    SCOPED_TRACE(ex.name);
    MarketConfig c = testing::OneHostMarket::default_config();
    c.reserve[static_cast<size_t>(Resource::cpu)] = ex.reserve;
    testing::OneHostMarket m(ex.supply, c);
    for (const auto& r : ex.rows) {
      ASSERT_GE(r.size(), 9u);
      m.bid(r[0], r[1].c_str(), std::stoll(r[2]), r[3] == "aon" ? 0 : std::stoll(r[3]), std::stoll(r[4]));
    }
    m.tick();
    for (const auto& r : ex.rows) {
      SCOPED_TRACE("bid " + r[0]);
      const Tier tier = *parse_tier(r[1]);
      EXPECT_EQ(m.fill(r[0]), std::stoll(r[5]));
      if (!r[6].empty()) {
        EXPECT_EQ(m.price(tier), std::stoll(r[6]));
      }
      EXPECT_EQ(m.charge(r[0]), r[7].empty() ? 0 : std::stoll(r[7]));
      EXPECT_STREQ(failure_reason_name(m.reason(r[0])), r[8].empty() ? "none" : r[8].c_str());
    }
    ++checked;
  }
  EXPECT_EQ(checked, 4) << "expected the four single-tick example tables E1-E4";
}

}  // namespace
}  // namespace morph::market
