// SqliteLedger and Exchange: one transaction per tick, refusal of a repeated tick, balances never
// negative, recovery of exactly the committed state, and the audit invariants (debits = revenue).
#include <gtest/gtest.h>

#include <random>

#include "tests/unit/ledger_test_support.h"

namespace morph::ledger {
namespace {

using namespace morph::market;
using testing::config;
using testing::inventory;
using testing::LedgerTest;

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
    auto r = ex_->submit({a ? "alice" : "bob", a ? "vm-a" : "vm-b", kMarketResources[rng() % kMarketResourceCount],
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

namespace morph::ledger {
namespace {

// The journal is what `morphctl ledger show` serves: charges, failures and deposits as committed, with
// the filters (account, since tick, kind) and keyset paging, and it survives reopening the file.
TEST_F(LedgerTest, JournalHoldsTheCommittedHistoryWithFiltersAndPaging) {
  ASSERT_TRUE(ex_->deposit("bob", 1'000, "invoice-7").ok());
  auto a = ex_->submit({"alice", "vm-a", Resource::cpu, "improve", 600, 100, 30, 0});
  auto b = ex_->submit({"bob", "vm-b", Resource::cpu, "improve", 600, 600, 1'000, 0});  // bob cannot pay: failure
  ASSERT_TRUE(a.ok() && b.ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(ex_->run_tick().ok());

  auto all = ledger_->journal({});
  ASSERT_TRUE(all.ok()) << all.error().what();
  int charges = 0, deposits = 0, failures = 0;
  Micros charged = 0;
  for (auto& e : *all) {
    if (e.kind == "charge") {
      ++charges;
      charged += e.amount;
      EXPECT_EQ(e.bid, a->id);
    }
    if (e.kind == "deposit") ++deposits;
    if (e.kind == "failure") {
      ++failures;
      EXPECT_EQ(e.account, "bob");
    }
    EXPECT_GT(e.ts_ns, 0u);
  }
  EXPECT_EQ(charges, 3);
  EXPECT_EQ(deposits, 3);  // two opening balances and bob's deposit
  EXPECT_GE(failures, 1);
  for (size_t i = 1; i < all->size(); ++i) EXPECT_LT((*all)[i - 1].id, (*all)[i].id);  // oldest first
  auto audit = ledger_->audit();
  ASSERT_TRUE(audit.ok());
  EXPECT_EQ(-charged, audit->total_charges);
  EXPECT_EQ(audit->journal_mismatch, 0);
  EXPECT_TRUE(audit->ok()) << audit->describe();
  // The journal is the charges, failures and credits themselves (a view); a journal id that two of them
  // share would break the paging cursor and is caught by the audit.
  ASSERT_EQ(sqlite3_exec(ledger_->handle(),
                         "UPDATE failures SET rowid = (SELECT MAX(rowid) FROM charges) "
                         "WHERE rowid = (SELECT MAX(rowid) FROM failures)",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  audit = ledger_->audit();
  ASSERT_TRUE(audit.ok());
  EXPECT_EQ(audit->journal_mismatch, 1);
  EXPECT_FALSE(audit->ok());
  ASSERT_EQ(sqlite3_exec(ledger_->handle(),
                         "UPDATE failures SET rowid = (SELECT MAX(rowid) + 1 FROM failures) "
                         "WHERE rowid = (SELECT MAX(rowid) FROM charges)",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  // Tenant isolation: an account's journal holds only its own entries.
  auto alice_all = ledger_->journal({"alice", 0, "", 0, 100});
  ASSERT_TRUE(alice_all.ok());
  EXPECT_FALSE(alice_all->empty());
  for (auto& e : *alice_all) EXPECT_EQ(e.account, "alice");

  auto bob = ledger_->journal({"bob", 0, "deposit", 0, 100});
  ASSERT_TRUE(bob.ok());
  ASSERT_EQ(bob->size(), 2u);
  EXPECT_EQ((*bob)[0].reason, "opening balance");
  EXPECT_EQ((*bob)[1].reason, "invoice-7");
  EXPECT_EQ((*bob)[1].amount, 1'000);
  auto late = ledger_->journal({"alice", 2, "charge", 0, 100});
  ASSERT_TRUE(late.ok());
  EXPECT_EQ(late->size(), 2u);  // ticks 2 and 3
  for (auto& e : *late) EXPECT_GE(e.tick, 2u);

  // Paging: pages of 2 back from the newest cover everything exactly once.
  std::vector<uint64_t> seen;
  uint64_t before = 0;
  for (;;) {
    auto page = ledger_->journal({"", 0, "", before, 2});
    ASSERT_TRUE(page.ok());
    if (page->empty()) break;
    ASSERT_LE(page->size(), 2u);
    for (auto it = page->rbegin(); it != page->rend(); ++it) seen.push_back(it->id);
    before = page->front().id;
  }
  ASSERT_EQ(seen.size(), all->size());
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], (*all)[all->size() - 1 - i].id);

  auto bad = ledger_->journal({"", 0, "refund", 0, 10});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("refund"), std::string::npos);

  // Reopened (a restarted controller): the same history.
  ledger_.reset();
  auto again = SqliteLedger::open(path_);
  ASSERT_TRUE(again.ok());
  auto reread = (*again)->journal({});
  ASSERT_TRUE(reread.ok());
  ASSERT_EQ(reread->size(), all->size());
  EXPECT_EQ(reread->back().id, all->back().id);
}

// Older files are migrated to the journal-as-view schema (version 2) on open, in one transaction: a file
// from the journal-table era (per-table rowids, a journal table with the timestamps, no ts_ns columns) and
// a v1 file (no journal at all) both come back with the same journal: same entries in the same order, the
// same ids, the journal table's timestamps kept.
void make_older(sqlite3* db, bool with_journal_table) {
  std::string sql =
      "CREATE TABLE old_journal AS SELECT * FROM journal;"
      "DROP VIEW journal;"
      // Per-table sequences, as SQLite assigned them before the shared one.
      "CREATE TEMP TABLE m AS SELECT rowid AS old, ROW_NUMBER() OVER (ORDER BY rowid) AS n FROM charges;"
      "UPDATE charges SET rowid = -rowid; UPDATE charges SET rowid = (SELECT n FROM m WHERE old = -charges.rowid); "
      "DROP TABLE m;"
      "CREATE TEMP TABLE m AS SELECT rowid AS old, ROW_NUMBER() OVER (ORDER BY rowid) AS n FROM failures;"
      "UPDATE failures SET rowid = -rowid; UPDATE failures SET rowid = (SELECT n FROM m WHERE old = -failures.rowid); "
      "DROP TABLE m;"
      "CREATE TEMP TABLE m AS SELECT id AS old, ROW_NUMBER() OVER (ORDER BY id) AS n FROM credits;"
      "UPDATE credits SET id = -id; UPDATE credits SET id = (SELECT n FROM m WHERE old = -credits.id); DROP TABLE m;"
      "ALTER TABLE ticks DROP COLUMN ts_ns; ALTER TABLE credits DROP COLUMN ts_ns;"
      "PRAGMA user_version = 0;";
  if (with_journal_table)
    sql +=
        "CREATE TABLE journal(id INTEGER PRIMARY KEY AUTOINCREMENT, tick INTEGER NOT NULL, account TEXT NOT NULL,"
        " kind TEXT NOT NULL, amount INTEGER NOT NULL, bid_id INTEGER NOT NULL, reason TEXT NOT NULL, ts_ns INTEGER "
        "NOT NULL);"
        "CREATE INDEX journal_by_account ON journal(account, id); CREATE INDEX journal_by_tick ON journal(tick);"
        "INSERT INTO journal(tick, account, kind, amount, bid_id, reason, ts_ns)"
        " SELECT tick, account, kind, amount, bid_id, reason, ts_ns FROM old_journal ORDER BY id;";
  sql += "DROP TABLE old_journal;";
  char* err = nullptr;
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
}

TEST_F(LedgerTest, OlderDatabasesAreMigratedToTheJournalView) {
  auto a = ex_->submit({"alice", "vm-a", Resource::cpu, "improve", 600, 100, 30, 0});
  ASSERT_TRUE(a.ok()) << a.error().what();
  auto b = ex_->submit({"bob", "vm-b", Resource::cpu, "improve", 600, 600, 1'000, 0});  // fails: a failure row
  ASSERT_TRUE(b.ok()) << b.error().what();
  for (bool with_journal_table : {true, false}) {
    SCOPED_TRACE(with_journal_table ? "journal-table era" : "v1");
    for (int i = 0; i < 2; ++i) ASSERT_TRUE(ex_->run_tick().ok());
    ASSERT_TRUE(ex_->deposit("bob", 700, "invoice-9").ok());
    ASSERT_TRUE(ex_->run_tick().ok());
    auto before = ledger_->journal({"", 0, "", 0, 1000});
    ASSERT_TRUE(before.ok());
    ASSERT_GE(before->size(), 8u);
    make_older(ledger_->handle(), with_journal_table);
    ledger_.reset();
    auto l = SqliteLedger::open(path_);
    ASSERT_TRUE(l.ok()) << l.error().what();
    auto after = (*l)->journal({"", 0, "", 0, 1000});
    ASSERT_TRUE(after.ok()) << after.error().what();
    ASSERT_EQ(after->size(), before->size());
    for (size_t i = 0; i < after->size(); ++i) {
      const auto &x = (*before)[i], &y = (*after)[i];
      EXPECT_EQ(y.id, x.id) << i;
      EXPECT_EQ(y.tick, x.tick) << i;
      EXPECT_EQ(y.kind, x.kind) << i;
      EXPECT_EQ(y.account, x.account) << i;
      EXPECT_EQ(y.amount, x.amount) << i;
      EXPECT_EQ(y.bid, x.bid) << i;
      EXPECT_EQ(y.reason, x.reason) << i;
      if (with_journal_table) {
        EXPECT_EQ(y.ts_ns, x.ts_ns) << i;  // v1 had no ns clock: committed_at (ms) instead
      }
      if (with_journal_table || y.kind != "deposit") {
        EXPECT_GT(y.ts_ns, 0u) << i;  // a v1 credit has no time at all: 0, as the journal's back-fill had it
      }
    }
    auto audit = (*l)->audit();
    ASSERT_TRUE(audit.ok());
    EXPECT_TRUE(audit->ok()) << audit->describe();
    // New entries continue the sequence after the migrated ones.
    ledger_ = std::move(*l);
    ex_ = std::make_unique<Exchange>(*market_, *ledger_);
    ASSERT_TRUE(ex_->run_tick().ok());
    auto more = ledger_->journal({"", 0, "", 0, 1000});
    ASSERT_TRUE(more.ok());
    ASSERT_GT(more->size(), after->size());
    EXPECT_GT(more->back().id, after->back().id);
  }
}

// Policies, owner overrides, account details and rescue bids survive reopening; a rescue bid that was
// cancelled is no longer loaded as in force.
TEST_F(LedgerTest, OperatorStateSurvivesReopen) {
  PolicyRecord p{"vm-a", "alice", true, 250, 15'000, 40, 3, 5, 700, 200, 10'000, 20, 5'000'000, 60};
  ASSERT_TRUE(ledger_->put_policy(p).ok());
  p.runq_wait_permille = 300;  // replaced, not duplicated
  ASSERT_TRUE(ledger_->put_policy(p).ok());
  ASSERT_TRUE(ledger_->put_owner_override({"vm-b", "alice", "ops", 42}).ok());
  auto unknown = ledger_->put_owner_override({"vm-b", "nobody", "ops", 42});
  EXPECT_FALSE(unknown.ok());
  auto bid = market_->check_submit({"alice", "vm-a", Resource::cpu, "sla", 500, 1, 20, 0}, 0);
  ASSERT_TRUE(bid.ok());
  ASSERT_TRUE(ledger_->put_rescue_bid(*bid, {bid->id, "vm-a", "runq_wait", 500}).ok());
  auto gone = market_->check_submit({"alice", "vm-a", Resource::disk_iops, "sla", 200, 1, 20, 0}, 0);
  ASSERT_TRUE(gone.ok());
  gone->id = bid->id + 1;
  ASSERT_TRUE(ledger_->put_rescue_bid(*gone, {gone->id, "vm-a", "blk_p99", 200}).ok());
  gone->state = BidState::cancelled;
  ASSERT_TRUE(ledger_->put_bid(*gone).ok());
  ASSERT_TRUE(ledger_->create_account({"carol", 0}, "Carol Ltd", 1234).ok());

  ledger_.reset();
  auto l = SqliteLedger::open(path_);
  ASSERT_TRUE(l.ok());
  auto st = (*l)->load_operator_state();
  ASSERT_TRUE(st.ok()) << st.error().what();
  ASSERT_EQ(st->policies.size(), 1u);
  EXPECT_EQ(st->policies[0].runq_wait_permille, 300u);
  EXPECT_EQ(st->policies[0].max_price, 20);
  EXPECT_EQ(st->policies[0].budget_per_hour, 5'000'000);
  EXPECT_EQ(st->policies[0].cpu_step, 700);
  EXPECT_TRUE(st->policies[0].rescue);
  ASSERT_EQ(st->owners.size(), 1u);
  EXPECT_EQ(st->owners[0].account, "alice");
  EXPECT_EQ(st->owners[0].set_by, "ops");
  ASSERT_EQ(st->rescues.size(), 1u);
  EXPECT_EQ(st->rescues[0].bid, bid->id);
  EXPECT_EQ(st->rescues[0].signal, "runq_wait");
  EXPECT_EQ(st->rescues[0].quantity, 500);
  ASSERT_EQ(st->accounts.size(), 3u);
  EXPECT_EQ(st->accounts[0].account, "alice");
  EXPECT_GT(st->accounts[0].created_ns, 0u);
  EXPECT_EQ(st->accounts[2].display_name, "Carol Ltd");
  EXPECT_EQ(st->accounts[2].created_ns, 1234u);
}

TEST_F(LedgerTest, PriceHistoryIsReadBackFromATick) {
  ASSERT_TRUE(ex_->submit({"alice", "vm-a", Resource::cpu, "improve", 600, 100, 30, 0}).ok());
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(ex_->run_tick().ok());
  auto p = ledger_->prices_since(3);
  ASSERT_TRUE(p.ok()) << p.error().what();
  ASSERT_EQ(p->size(), 2u * kTierCount);  // ticks 3 and 4, cpu on h1, three tiers
  EXPECT_EQ(p->front().tick, 3u);
  EXPECT_EQ(p->back().tick, 4u);
  for (auto& x : *p) {
    EXPECT_EQ(x.quote.host, "h1");
    EXPECT_EQ(x.quote.resource, Resource::cpu);
  }
}

}  // namespace
}  // namespace morph::ledger
