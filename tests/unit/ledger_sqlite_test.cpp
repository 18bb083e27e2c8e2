// SqliteLedger and Exchange: one transaction per tick, refusal of a repeated tick, balances never
// negative, recovery of exactly the committed state, and the audit invariants (debits = revenue).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "controller/ledger/exchange.h"
#include "controller/ledger/sqlite_ledger.h"

namespace morph::ledger {
namespace {

using namespace morph::market;

std::string temp_db() {
  auto dir = std::filesystem::temp_directory_path() /
             ("morph-ledger-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}()));
  std::filesystem::create_directories(dir);
  return (dir / "ledger.db").string();
}

MarketConfig config() {
  MarketConfig c;
  for (Resource r : kAllResources) c.set_reserve(r, 2);
  c.hold_ticks = 2;
  c.notice_ticks = 1;
  return c;
}

void inventory(Market& m) {
  ASSERT_TRUE(m.upsert_host({"h1", {1000, 1000, 1000, 1000, 1000, 1000, 4}}).ok());
  for (const char* v : {"vm-a", "vm-b"}) {
    VmSpec vm{v, std::string(v) == "vm-a" ? "alice" : "bob", "h1", {}, {}};
    vm.ceiling.fill(800);
    ASSERT_TRUE(m.upsert_vm(vm).ok());
  }
}

class LedgerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = temp_db();
    auto l = SqliteLedger::open(path_);
    ASSERT_TRUE(l.ok()) << l.error().what();
    ledger_ = std::move(*l);
    market_ = std::make_unique<Market>(config());
    ex_ = std::make_unique<Exchange>(*market_, *ledger_);
    ASSERT_TRUE(ex_->open_account({"alice", 100'000}).ok());
    ASSERT_TRUE(ex_->open_account({"bob", 5'000}).ok());
    inventory(*market_);
  }
  void TearDown() override { std::filesystem::remove_all(std::filesystem::path(path_).parent_path()); }

  std::string path_;
  std::unique_ptr<SqliteLedger> ledger_;
  std::unique_ptr<Market> market_;
  std::unique_ptr<Exchange> ex_;
};

TEST_F(LedgerTest, WalAndFullSync) {
  sqlite3_stmt* s = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(ledger_->handle(), "PRAGMA journal_mode", -1, &s, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)), "wal");
  sqlite3_finalize(s);
  ASSERT_EQ(sqlite3_prepare_v2(ledger_->handle(), "PRAGMA synchronous", -1, &s, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(s, 0), 2);  // FULL
  sqlite3_finalize(s);
}

TEST_F(LedgerTest, TickIsChargedOnceAndRepeatIsRefused) {
  ASSERT_TRUE(ex_->submit({"alice", "vm-a", Resource::cpu, "improve", 600, 100, 30, 0}).ok());
  ASSERT_TRUE(ex_->submit({"bob", "vm-b", Resource::cpu, "improve", 600, 100, 10, 0}).ok());
  auto o = ex_->run_tick();
  ASSERT_TRUE(o.ok()) << o.error().what();
  // alice 600, bob 400 (partial), price = bob's 10.
  EXPECT_EQ(o->revenue, 600 * 10 + 400 * 10);
  auto again = ledger_->commit_tick(*o);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), Errc::conflict);
  auto gap = *o;
  gap.tick = 5;
  EXPECT_EQ(ledger_->commit_tick(gap).error().code(), Errc::conflict);
  auto a = ledger_->audit();
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->ok()) << a->describe();
  EXPECT_EQ(a->total_charges, 10'000);
  EXPECT_EQ(a->total_revenue, 10'000);
  EXPECT_EQ(a->tick_count, 1u);
}

TEST_F(LedgerTest, OverdraftAbortsTheWholeTick) {
  TickOutcome o;
  o.tick = 1;
  o.charges = {{1, "alice", 50}, {2, "bob", 5'001}};
  o.revenue = 5'051;
  auto st = ledger_->commit_tick(o);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Errc::insufficient_funds);
  EXPECT_EQ(*ledger_->last_tick(), 0u);
  auto a = ledger_->audit();
  EXPECT_TRUE(a->ok()) << a->describe();
  EXPECT_EQ(a->total_balances, 105'000);  // alice's 50 was rolled back with the rest
}

TEST_F(LedgerTest, AccountThatCannotPayIsSuspendedVisiblyAndLiftedByDeposit) {
  // bob can pay 5000: 500 units at price >= 10 per second is 5000 -> next tick he cannot.
  ASSERT_TRUE(ex_->submit({"alice", "vm-a", Resource::memory, "improve", 600, 0, 10, 0}).ok());
  auto bb = ex_->submit({"bob", "vm-b", Resource::memory, "improve", 500, 0, 20, 0});
  ASSERT_TRUE(bb.ok());
  bool suspended = false;
  for (int i = 0; i < 5 && !suspended; ++i) {
    auto o = ex_->run_tick();
    ASSERT_TRUE(o.ok()) << o.error().what();
    for (const auto& f : o->failures)
      if (f.bid_id == bb->id && f.reason == FailureReason::insufficient_funds) suspended = true;
  }
  ASSERT_TRUE(suspended);
  EXPECT_GE(*market_->balance("bob"), 0);
  EXPECT_EQ(market_->find_bid(bb->id)->state, BidState::suspended);
  // The suspension is in the ledger: a fresh market loaded from it sees it.
  auto snap = ledger_->load();
  ASSERT_TRUE(snap.ok());
  bool found = false;
  for (const auto& b : snap->bids)
    if (b.id == bb->id) {
      found = true;
      EXPECT_EQ(b.state, BidState::suspended);
      EXPECT_EQ(b.state_reason, FailureReason::insufficient_funds);
    }
  EXPECT_TRUE(found);
  ASSERT_TRUE(ex_->deposit("bob", 1'000'000).ok());
  EXPECT_EQ(market_->find_bid(bb->id)->state, BidState::active);
  // Lifted in the ledger in the credit's own transaction, so a restart agrees.
  auto after = ledger_->load();
  ASSERT_TRUE(after.ok());
  for (const auto& b : after->bids)
    if (b.id == bb->id) {
      EXPECT_EQ(b.state, BidState::active);
    }
  // alice now holds 600 of 1000 under her minimum hold time (2 ticks); after it, bob's 20 outbids her 10.
  bool won = false;
  for (int i = 0; i < 3 && !won; ++i) {
    auto o = ex_->run_tick();
    ASSERT_TRUE(o.ok());
    for (const auto& a : o->allocations) won |= a.bid_id == bb->id;
  }
  EXPECT_TRUE(won);
  EXPECT_TRUE(ledger_->audit()->ok()) << ledger_->audit()->describe();
}

TEST_F(LedgerTest, RecoveryRebuildsTheCommittedState) {
  std::mt19937 rng(7);
  for (int i = 0; i < 30; ++i) {
    const bool a = rng() % 2;
    auto r = ex_->submit({a ? "alice" : "bob", a ? "vm-a" : "vm-b", kAllResources[rng() % kResourceCount],
                          i % 3 == 0 ? "speculative" : "improve", 1 + static_cast<int64_t>(rng() % 60), 1,
                          2 + static_cast<Micros>(rng() % 20), 0});
    (void)r;  // ceilings refuse some
    ASSERT_TRUE(ex_->run_tick().ok());
  }
  // A second market recovered from the same file must clear the next tick identically.
  Market again(config());
  Exchange ex2(again, *ledger_);
  ASSERT_TRUE(ex2.recover().ok());
  inventory(again);  // agents report in after the controller restarted
  EXPECT_EQ(again.last_tick(), market_->last_tick());
  EXPECT_EQ(*again.balance("alice"), *market_->balance("alice"));
  EXPECT_EQ(*again.balance("bob"), *market_->balance("bob"));
  TickOutcome x = market_->clear(31), y = again.clear(31);
  ASSERT_EQ(x.allocations.size(), y.allocations.size());
  EXPECT_EQ(x.revenue, y.revenue);
  for (size_t i = 0; i < x.allocations.size(); ++i) {
    EXPECT_EQ(x.allocations[i].bid_id, y.allocations[i].bid_id);
    EXPECT_EQ(x.allocations[i].quantity, y.allocations[i].quantity);
    EXPECT_EQ(x.allocations[i].since, y.allocations[i].since);
  }
  auto a = ledger_->audit();
  EXPECT_TRUE(a->ok()) << a->describe();
  EXPECT_EQ(a->tick_count, 30u);
  EXPECT_GT(a->total_charges, 0);
}

}  // namespace
}  // namespace morph::ledger
