// Change-only allocation writes: SpanSet tells a tick's rows apart against the open spans (new, unchanged,
// changed, ended); the SQLite ledger stores only those changes, yet after many ticks of churn (reopened at
// random points, with and without a load() in between) it restores exactly the last tick's allocations and
// its spans answer what held at every committed tick; a file of per-tick snapshots (the layout before spans)
// is converted on open to the same answers.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <map>
#include <random>
#include <tuple>

#include "controller/ledger/spans.h"
#include "controller/ledger/sqlite_ledger.h"
#include "tests/support/files.h"

namespace morph::ledger {
namespace {

using namespace morph::market;

Allocation alloc(BidId bid, int64_t quantity, Micros price, Tick since) {
  Allocation a;
  a.bid_id = bid;
  a.account = "acct" + std::to_string(bid % 7);
  a.vm = "vm-" + std::to_string(bid % 31);
  a.host = "h" + std::to_string(bid % 5);
  a.resource = kMarketResources[bid % kMarketResourceCount];
  a.tier = bid % 3 == 0 ? Tier::speculative : Tier::improve;
  a.quantity = quantity;
  a.price = price;
  a.since = since;
  return a;
}

auto fields(const Allocation& a) {
  return std::tie(a.bid_id, a.account, a.vm, a.host, a.resource, a.tier, a.quantity, a.price, a.since, a.notice_until);
}

void expect_same(std::vector<Allocation> got, std::vector<Allocation> want, const std::string& where) {
  auto by_bid = [](const Allocation& x, const Allocation& y) { return x.bid_id < y.bid_id; };
  std::sort(got.begin(), got.end(), by_bid);
  std::sort(want.begin(), want.end(), by_bid);
  ASSERT_EQ(got.size(), want.size()) << where;
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_TRUE(fields(got[i]) == fields(want[i])) << where << " bid " << want[i].bid_id;
}

TEST(SpanSet, TellsNewUnchangedChangedAndEndedApart) {
  AllocationSpans spans;
  EXPECT_FALSE(spans.known());
  spans.reset({});
  std::vector<Allocation> t1{alloc(1, 10, 5, 1), alloc(2, 20, 5, 1), alloc(3, 30, 5, 1)};
  auto c1 = spans.diff(1, t1, allocation_key, allocation_terms, "allocation");
  ASSERT_TRUE(c1.ok());
  EXPECT_EQ(c1->opened.size(), 3u);
  EXPECT_TRUE(c1->closed.empty());
  spans.committed(std::move(*c1));
  EXPECT_EQ(spans.size(), 3u);

  // bid 1 unchanged, bid 2's price changed, bid 3 ended, bid 4 new.
  std::vector<Allocation> t2{alloc(4, 40, 5, 2), alloc(2, 20, 6, 1), alloc(1, 10, 5, 1)};
  auto c2 = spans.diff(2, t2, allocation_key, allocation_terms, "allocation");
  ASSERT_TRUE(c2.ok());
  ASSERT_EQ(c2->opened.size(), 2u);
  EXPECT_EQ(c2->opened[0]->bid_id, 2u);
  EXPECT_EQ(c2->opened[1]->bid_id, 4u);
  ASSERT_EQ(c2->closed.size(), 2u);
  EXPECT_EQ(c2->closed[0].key, 2u);
  EXPECT_EQ(c2->closed[1].key, 3u);
  EXPECT_EQ(c2->closed[1].from, 1u);
  ASSERT_EQ(c2->open_after.size(), 3u);
  EXPECT_EQ(c2->open_after[0].from, 1u);  // bid 1 holds from tick 1
  EXPECT_EQ(c2->open_after[1].from, 2u);  // bid 2's new terms from tick 2

  // A change of identity alone (the VM) is a change too; the open spans are not moved by a diff.
  std::vector<Allocation> t3 = t2;
  t3[2].vm = "elsewhere";
  auto c3 = spans.diff(3, t3, allocation_key, allocation_terms, "allocation");
  ASSERT_TRUE(c3.ok());
  ASSERT_EQ(c3->opened.size(), 3u);  // nothing committed since t1: 2 and 4 differ from it as well
  spans.committed(std::move(*c2));
  auto c3b = spans.diff(3, t3, allocation_key, allocation_terms, "allocation");
  ASSERT_TRUE(c3b.ok());
  ASSERT_EQ(c3b->opened.size(), 1u);
  EXPECT_EQ(c3b->opened[0]->bid_id, 1u);

  // Two rows of one bid would leave two open spans: refused.
  std::vector<Allocation> twice{alloc(5, 1, 1, 3), alloc(5, 2, 1, 3)};
  auto bad = spans.diff(3, twice, allocation_key, allocation_terms, "allocation");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), Errc::internal);
}

// A steady synthetic market: `n` allocations, of which about `churn` change each tick (a new price or
// quantity, an end, a new bid); no charges, so no accounts are needed.
class Churn {
 public:
  Churn(size_t n, double churn, uint64_t seed) : rng_(seed), churn_(churn) {
    for (size_t i = 0; i < n; ++i) live_[next_] = alloc(next_, 1 + static_cast<int64_t>(i % 50), 10, 1), ++next_;
  }
  TickOutcome next(Tick t) {
    const auto changes = std::max<size_t>(1, static_cast<size_t>(churn_ * static_cast<double>(live_.size())));
    for (size_t k = 0; k < changes && !live_.empty(); ++k) {
      auto it = live_.begin();
      std::advance(it, static_cast<long>(rng_() % live_.size()));
      switch (rng_() % 4) {
        case 0:
          it->second.price += 1;
          break;
        case 1:
          it->second.quantity = 1 + static_cast<int64_t>(rng_() % 90);
          break;
        case 2:
          live_.erase(it);
          break;
        default:
          live_[next_] = alloc(next_, 5, 10, t), ++next_;
      }
    }
    TickOutcome o;
    o.tick = t;
    for (auto& [bid, a] : live_) o.allocations.push_back(a);
    std::shuffle(o.allocations.begin(), o.allocations.end(), rng_);  // the market's order is not the key's
    return o;
  }

 private:
  std::mt19937_64 rng_;
  double churn_;
  BidId next_ = 1;
  std::map<BidId, Allocation> live_;
};

// What the file says held at tick t: the spans covering it.
std::vector<Allocation> held_at(sqlite3* db, Tick t) {
  std::vector<Allocation> out;
  sqlite3_stmt* q = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db,
                               "SELECT bid_id, account, vm, host, resource, tier, quantity, price, since, notice_until "
                               "FROM allocations WHERE from_tick <= ?1 AND (to_tick IS NULL OR to_tick >= ?1)",
                               -1, &q, nullptr),
            SQLITE_OK);
  sqlite3_bind_int64(q, 1, static_cast<int64_t>(t));
  while (sqlite3_step(q) == SQLITE_ROW) {
    auto text = [&](int c) { return std::string(reinterpret_cast<const char*>(sqlite3_column_text(q, c))); };
    Allocation a;
    a.bid_id = static_cast<BidId>(sqlite3_column_int64(q, 0));
    a.account = text(1);
    a.vm = text(2);
    a.host = text(3);
    a.resource = *parse_traded_resource(text(4));
    a.tier = *parse_tier(text(5));
    a.quantity = sqlite3_column_int64(q, 6);
    a.price = sqlite3_column_int64(q, 7);
    a.since = static_cast<Tick>(sqlite3_column_int64(q, 8));
    a.notice_until = static_cast<Tick>(sqlite3_column_int64(q, 9));
    out.push_back(std::move(a));
  }
  sqlite3_finalize(q);
  return out;
}

int64_t count(sqlite3* db, const char* sql) {
  sqlite3_stmt* q = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &q, nullptr), SQLITE_OK) << sql;
  int64_t n = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -1;
  sqlite3_finalize(q);
  return n;
}

class SpansLedgerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dir_.ok());
    reopen();
  }
  void reopen() {
    ledger_.reset();
    auto l = SqliteLedger::open((dir_ / "ledger.db").string());
    ASSERT_TRUE(l.ok()) << l.error().what();
    ledger_ = std::move(*l);
  }
  test::TempDir dir_{"ledger-spans"};
  std::unique_ptr<SqliteLedger> ledger_;
};

TEST_F(SpansLedgerTest, RestartAfterManyTicksOfChurnRestoresExactlyTheLastTick) {
  Churn market(400, 0.02, 11);
  std::mt19937 rng(5);
  std::vector<std::vector<Allocation>> history{{}};  // history[t]: what tick t committed
  constexpr Tick kTicks = 150;
  for (Tick t = 1; t <= kTicks; ++t) {
    TickOutcome o = market.next(t);
    ASSERT_TRUE(ledger_->commit_tick(o).ok()) << "tick " << t;
    history.push_back(o.allocations);
    // Restarts at random points: some load() as a controller does, some commit straight after opening.
    if (rng() % 10 == 0) {
      reopen();
      if (rng() % 2) {
        auto s = ledger_->load();
        ASSERT_TRUE(s.ok()) << s.error().what();
        ASSERT_EQ(s->last_tick, t);
        expect_same(s->allocations, history[t], "restart after tick " + std::to_string(t));
      }
    }
  }
  reopen();
  auto s = ledger_->load();
  ASSERT_TRUE(s.ok()) << s.error().what();
  EXPECT_EQ(s->last_tick, kTicks);
  expect_same(s->allocations, history[kTicks], "the last tick");
  for (Tick t = 1; t <= kTicks; ++t)
    expect_same(held_at(ledger_->handle(), t), history[t], "tick " + std::to_string(t));
  // Only changes were written: far fewer rows than one per tick and allocation.
  const int64_t rows = count(ledger_->handle(), "SELECT COUNT(*) FROM allocations");
  EXPECT_LT(rows, 400 + static_cast<int64_t>(kTicks) * 400 / 10) << rows;
}

// The layout before spans: one row per tick and bid (as the previous version wrote it).
void make_snapshot_layout(sqlite3* db, const std::vector<std::vector<Allocation>>& history) {
  std::string sql =
      "DROP TABLE allocations;"
      "CREATE TABLE allocations(tick INTEGER NOT NULL REFERENCES ticks(tick), bid_id INTEGER NOT NULL, account TEXT "
      "NOT NULL, vm TEXT NOT NULL, host TEXT NOT NULL, resource TEXT NOT NULL, tier TEXT NOT NULL, quantity INTEGER "
      "NOT NULL CHECK (quantity > 0), price INTEGER NOT NULL CHECK (price >= 0), since INTEGER NOT NULL, notice_until "
      "INTEGER NOT NULL, PRIMARY KEY (tick, bid_id));";
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_stmt* ins = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "INSERT INTO allocations VALUES(?,?,?,?,?,?,?,?,?,?,?)", -1, &ins, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr), SQLITE_OK);
  for (size_t t = 1; t < history.size(); ++t)
    for (const Allocation& a : history[t]) {
      sqlite3_bind_int64(ins, 1, static_cast<int64_t>(t));
      sqlite3_bind_int64(ins, 2, static_cast<int64_t>(a.bid_id));
      sqlite3_bind_text(ins, 3, a.account.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(ins, 4, a.vm.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(ins, 5, a.host.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(ins, 6, std::string(resource_name(a.resource)).c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(ins, 7, std::string(tier_name(a.tier)).c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64(ins, 8, a.quantity);
      sqlite3_bind_int64(ins, 9, a.price);
      sqlite3_bind_int64(ins, 10, static_cast<int64_t>(a.since));
      sqlite3_bind_int64(ins, 11, static_cast<int64_t>(a.notice_until));
      ASSERT_EQ(sqlite3_step(ins), SQLITE_DONE) << sqlite3_errmsg(db);
      sqlite3_reset(ins);
    }
  sqlite3_finalize(ins);
  ASSERT_EQ(sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
}

TEST_F(SpansLedgerTest, PerTickSnapshotsAreConvertedToSpansOnOpen) {
  Churn market(300, 0.03, 3);
  std::vector<std::vector<Allocation>> history{{}};
  constexpr Tick kTicks = 60;
  for (Tick t = 1; t <= kTicks; ++t) {
    TickOutcome o = market.next(t);
    // Tick 40 holds nothing: every span ends before it and new ones begin after.
    if (t == 40) o.allocations.clear();
    ASSERT_TRUE(ledger_->commit_tick(o).ok()) << "tick " << t;
    history.push_back(o.allocations);
  }
  make_snapshot_layout(ledger_->handle(), history);
  ASSERT_EQ(count(ledger_->handle(), "SELECT COUNT(*) FROM allocations"), [&] {
    int64_t n = 0;
    for (auto& h : history) n += static_cast<int64_t>(h.size());
    return n;
  }());
  reopen();
  EXPECT_EQ(count(ledger_->handle(), "SELECT COUNT(*) FROM pragma_table_info('allocations') WHERE name = 'tick'"), 0);
  auto s = ledger_->load();
  ASSERT_TRUE(s.ok()) << s.error().what();
  expect_same(s->allocations, history[kTicks], "the last tick, converted");
  for (Tick t = 1; t <= kTicks; ++t)
    expect_same(held_at(ledger_->handle(), t), history[t], "tick " + std::to_string(t));
  // The converted file carries on: the next ticks write changes against the converted spans.
  for (Tick t = kTicks + 1; t <= kTicks + 10; ++t) {
    TickOutcome o = market.next(t);
    ASSERT_TRUE(ledger_->commit_tick(o).ok()) << "tick " << t;
    history.push_back(o.allocations);
  }
  reopen();
  auto again = ledger_->load();
  ASSERT_TRUE(again.ok());
  expect_same(again->allocations, history.back(), "after the converted file carried on");
  for (Tick t = 1; t <= kTicks + 10; ++t)
    expect_same(held_at(ledger_->handle(), t), history[t], "tick " + std::to_string(t));
  auto audit = ledger_->audit();
  ASSERT_TRUE(audit.ok());
  EXPECT_TRUE(audit->ok()) << audit->describe();
}

}  // namespace
}  // namespace morph::ledger
