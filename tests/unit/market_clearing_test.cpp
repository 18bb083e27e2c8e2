// The worked examples of docs/market.md ("Worked examples"), one test each, with the same numbers.
// If you change a number here, change the table in the doc (and the other way round); the single-tick
// tables are also read from the doc itself (DocTablesMatchTheMarket, at the end).
#include <gtest/gtest.h>

#include <fstream>
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

// Example 1: one tier, the highest losing bid sets the price.
TEST(MarketExamples, E1_UniformPriceIsHighestLosingBid) {
  OneHostMarket m(1000);
  m.bid("A", "improve", 400, 100, 50);
  m.bid("B", "improve", 400, 0, 40);
  m.bid("C", "improve", 300, 100, 30);
  m.bid("D", "improve", 200, 0, 20);
  m.tick();
  EXPECT_EQ(m.fill("A"), 400);
  EXPECT_EQ(m.fill("B"), 400);
  EXPECT_EQ(m.fill("C"), 200);
  EXPECT_EQ(m.fill("D"), 0);
  EXPECT_EQ(m.price(Tier::improve), 30);
  EXPECT_EQ(m.charge("A"), 12000);
  EXPECT_EQ(m.charge("B"), 12000);
  EXPECT_EQ(m.charge("C"), 6000);
  EXPECT_EQ(m.reason("D"), kBelow);
}

// Example 2: tiers are served in order whatever the prices; each tier has its own price.
TEST(MarketExamples, E2_TiersServedInOrder) {
  MarketConfig c = OneHostMarket::default_config();
  c.reserve[static_cast<size_t>(Resource::cpu)] = {10, 5, 1};
  OneHostMarket m(1000, c);
  m.bid("S1", "sla", 600, 0, 15);
  m.bid("I1", "improve", 500, 100, 80);
  m.bid("I2", "improve", 300, 0, 60);
  m.bid("P1", "speculative", 200, 1, 90);
  m.tick();
  EXPECT_EQ(m.fill("S1"), 600);
  EXPECT_EQ(m.fill("I1"), 400);
  EXPECT_EQ(m.fill("I2"), 0);
  EXPECT_EQ(m.fill("P1"), 0);
  EXPECT_EQ(m.price(Tier::sla), 10);
  EXPECT_EQ(m.price(Tier::improve), 80);
  EXPECT_EQ(m.price(Tier::speculative), 1);
  EXPECT_EQ(m.charge("S1"), 6000);
  EXPECT_EQ(m.charge("I1"), 32000);
  EXPECT_EQ(m.reason("I2"), kBelow);
  EXPECT_EQ(m.reason("P1"), kNoCap);
}

// Example 3: equal prices — the earlier bid is served first; the partly filled one sets the price.
TEST(MarketExamples, E3_TiesGoToTheEarlierBid) {
  OneHostMarket m(500);
  m.bid("A", "improve", 300, 100, 40);
  m.bid("B", "improve", 300, 100, 40);
  m.bid("C", "improve", 100, 0, 30);
  m.tick();
  EXPECT_EQ(m.fill("A"), 300);
  EXPECT_EQ(m.fill("B"), 200);
  EXPECT_EQ(m.fill("C"), 0);
  EXPECT_EQ(m.price(Tier::improve), 40);
  EXPECT_EQ(m.charge("A"), 12000);
  EXPECT_EQ(m.charge("B"), 8000);
  EXPECT_EQ(m.reason("C"), kBelow);
}

// Example 4: a bid that cannot reach its min_fill is skipped; it pushes the price only up to the
// lowest winner's price.
TEST(MarketExamples, E4_MinFillLoserIsCappedAtLowestWinner) {
  OneHostMarket m(500);
  m.bid("A", "improve", 300, 0, 40);
  m.bid("B", "improve", 300, 0, 40);
  m.bid("C", "improve", 200, 0, 25);
  m.tick();
  EXPECT_EQ(m.fill("A"), 300);
  EXPECT_EQ(m.fill("B"), 0);
  EXPECT_EQ(m.fill("C"), 200);
  EXPECT_EQ(m.price(Tier::improve), 25);
  EXPECT_EQ(m.charge("A"), 7500);
  EXPECT_EQ(m.charge("C"), 5000);
  EXPECT_EQ(m.reason("B"), kNoCap);
}

// Example 5: minimum hold time against the same tier.
TEST(MarketExamples, E5_MinimumHoldTime) {
  MarketConfig c = OneHostMarket::default_config();
  c.hold_ticks = 3;
  OneHostMarket m(100, c);
  m.bid("A", "improve", 100, 10, 20);
  m.tick();  // tick 1
  EXPECT_EQ(m.fill("A"), 100);
  EXPECT_EQ(m.price(Tier::improve), 1);
  EXPECT_EQ(m.charge("A"), 100);
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
  EXPECT_EQ(m.fill("A"), 0);
  EXPECT_EQ(m.fill("B"), 100);
  EXPECT_EQ(m.price(Tier::improve), 20);
  EXPECT_EQ(m.charge("B"), 2000);
  EXPECT_EQ(m.reason("A"), kBelow);
}

// Example 6: a higher tier takes held capacity at once.
TEST(MarketExamples, E6_HigherTierPreemptsHold) {
  MarketConfig c = OneHostMarket::default_config();
  c.hold_ticks = 3;
  OneHostMarket m(100, c);
  m.bid("A", "improve", 100, 10, 20);
  m.tick();
  m.bid("S", "sla", 60, 0, 5);
  m.tick();
  EXPECT_EQ(m.fill("S"), 60);
  EXPECT_EQ(m.fill("A"), 40);
  EXPECT_EQ(m.price(Tier::sla), 1);
  EXPECT_EQ(m.price(Tier::improve), 20);
  EXPECT_EQ(m.charge("S"), 60);
  EXPECT_EQ(m.charge("A"), 800);
}

// Example 7: hysteresis — a challenger must beat an incumbent by hysteresis_pct.
TEST(MarketExamples, E7_Hysteresis) {
  MarketConfig c = OneHostMarket::default_config();
  c.hysteresis_pct = 10;
  OneHostMarket m(100, c);
  m.bid("A", "improve", 100, 0, 20);
  m.tick();
  EXPECT_EQ(m.fill("A"), 100);
  EXPECT_EQ(m.price(Tier::improve), 1);
  EXPECT_EQ(m.charge("A"), 100);
  m.bid("B", "improve", 100, 0, 21);
  m.tick();
  EXPECT_EQ(m.charge("A"), 2000);
  EXPECT_EQ(m.fill("A"), 100);
  EXPECT_EQ(m.fill("B"), 0);
  EXPECT_EQ(m.price(Tier::improve), 20);
  EXPECT_EQ(m.reason("B"), kNoCap);
  m.amend("B", 23);
  m.tick();
  EXPECT_EQ(m.fill("A"), 0);
  EXPECT_EQ(m.fill("B"), 100);
  EXPECT_EQ(m.price(Tier::improve), 20);
  EXPECT_EQ(m.charge("B"), 2000);
  EXPECT_EQ(m.reason("A"), kBelow);
}

// Example 8: speculative capacity is revoked only after notice.
TEST(MarketExamples, E8_SpeculativeNotice) {
  MarketConfig c = OneHostMarket::default_config();
  c.notice_ticks = 2;
  OneHostMarket m(100, c);
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
  EXPECT_EQ(m.fill("I"), 70);
  EXPECT_EQ(m.fill("P"), 30);
  EXPECT_EQ(m.price(Tier::improve), 1);
  EXPECT_EQ(m.price(Tier::speculative), 30);
  EXPECT_EQ(m.charge("I"), 70);
  EXPECT_EQ(m.charge("P"), 900);
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
