// Ledger retention (issue #19: the ledger grew ~24 MB a minute at 100 hosts x 20 VMs with nothing to bound
// it): per-tick rows of old ticks are summed per account, then moved to an archive file or deleted, a
// bounded batch at a time, and every invariant of the audit still holds.
#include <gtest/gtest.h>

#include "tests/unit/ledger_test_support.h"

namespace morph::ledger {
namespace {

using namespace morph::market;
using testing::LedgerTest;

int64_t count(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) return -1;
  int64_t n = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
  sqlite3_finalize(s);
  return n;
}

class Retention : public LedgerTest {
 protected:
  // 30 ticks: alice wins, bob partly fails and runs dry (failures, a suspension), deposits in between.
  void history() {
    ASSERT_TRUE(ex_->submit({"alice", "vm-a", Resource::cpu, "improve", 600, 100, 30, 0}).ok());
    ASSERT_TRUE(ex_->submit({"bob", "vm-b", Resource::cpu, "improve", 600, 100, 10, 0}).ok());
    for (int t = 1; t <= 30; ++t) {
      ASSERT_TRUE(ex_->run_tick().ok()) << t;
      if (t % 7 == 0) {
        ASSERT_TRUE(ex_->deposit("bob", 3'000, "top-up").ok());
      }
    }
  }
  void expect_audit_ok() {
    auto a = ledger_->audit();
    ASSERT_TRUE(a.ok()) << a.error().what();
    EXPECT_TRUE(a->ok()) << a->describe();
  }
};

TEST_F(Retention, OldTicksAreSummedAndDeletedInBatchesKeepingEveryInvariant) {
  history();
  sqlite3* db = ledger_->handle();
  const int64_t charges_before = count(db, "SELECT COUNT(*) FROM charges");
  auto journal_before = ledger_->journal({"", 0, "", 0, 10000});
  ASSERT_TRUE(journal_before.ok());
  const auto audit_before = *ledger_->audit();
  RetentionPolicy p;
  p.keep_ticks = 5;
  p.batch_ticks = 4;
  Tick through = 0;
  int calls = 0;
  for (;; ++calls) {
    auto r = ledger_->retain(p);
    ASSERT_TRUE(r.ok()) << r.error().what();
    if (r->through == through) break;
    EXPECT_LE(r->through - through, 4u) << "a batch is at most batch_ticks";
    through = r->through;
    expect_audit_ok();
  }
  EXPECT_EQ(through, 25u);
  EXPECT_EQ(calls, 7);  // 25 ticks, 4 at a time
  EXPECT_EQ(count(db, "SELECT MIN(tick) FROM ticks"), 26);
  for (const char* t : {"charges", "failures", "prices"})
    EXPECT_EQ(count(db, std::string("SELECT COUNT(*) FROM ") + t + " WHERE tick <= 25"), 0) << t;
  // The sums: totals over all history are what they were, balances equal credits - charges per account.
  const auto audit_after = *ledger_->audit();
  EXPECT_EQ(audit_after.total_charges, audit_before.total_charges);
  EXPECT_EQ(audit_after.total_revenue, audit_before.total_revenue);
  EXPECT_EQ(audit_after.total_credits, audit_before.total_credits);
  EXPECT_EQ(audit_after.archived_through, 25u);
  EXPECT_LT(count(db, "SELECT COUNT(*) FROM charges"), charges_before);
  EXPECT_EQ(count(db, "SELECT SUM(rows) FROM archived_totals WHERE tbl = 'charges'") +
                count(db, "SELECT COUNT(*) FROM charges"),
            charges_before);
  // The journal keeps the deposits and the recent ticks; new entries continue above every archived id.
  auto journal_after = ledger_->journal({"", 0, "", 0, 10000});
  ASSERT_TRUE(journal_after.ok());
  EXPECT_LT(journal_after->size(), journal_before->size());
  for (auto& e : *journal_after) EXPECT_TRUE(e.kind == "deposit" || e.tick > 25) << e.kind << " " << e.tick;
  ASSERT_TRUE(ex_->run_tick().ok());
  auto more = ledger_->journal({"", 31, "", 0, 10000});
  ASSERT_TRUE(more.ok());
  ASSERT_FALSE(more->empty());
  EXPECT_GT(more->front().id, journal_before->back().id);
  expect_audit_ok();
  // A restart recovers the market as before: the last tick's allocations are never archived.
  Market again(testing::config());
  Exchange ex2(again, *ledger_);
  ASSERT_TRUE(ex2.recover().ok());
  EXPECT_EQ(again.last_tick(), 31u);
  EXPECT_EQ(again.allocations().size(), market_->allocations().size());
  EXPECT_EQ(*again.balance("alice"), *market_->balance("alice"));
}

TEST_F(Retention, KeepingEverythingChangesNothing) {
  history();
  auto r = ledger_->retain({});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->rows, 0u);
  EXPECT_EQ(count(ledger_->handle(), "SELECT MIN(tick) FROM ticks"), 1);
  RetentionPolicy p;
  p.keep_ticks = 100;  // more than there are
  EXPECT_EQ(ledger_->retain(p)->rows, 0u);
  expect_audit_ok();
}

// With an archive file the rows are moved, ids kept; a copy repeated (a crash between the archive's commit
// and the ledger's) does not double them.
TEST_F(Retention, RowsMoveToTheArchiveWithTheirIdsAndARepeatedCopyIsHarmless) {
  history();
  sqlite3* db = ledger_->handle();
  const std::string archive = std::filesystem::path(path_).parent_path() / "archive.db";
  const int64_t old_charges = count(db, "SELECT COUNT(*) FROM charges WHERE tick <= 20");
  const int64_t first_id = count(db, "SELECT MIN(rowid) FROM charges");
  RetentionPolicy p{10, archive, 10};
  ASSERT_EQ(ledger_->retain(p)->through, 10u);
  // Pretend the next batch's copy was committed once already and the ledger's delete was not (a crash in
  // between): the archive is attached to the ledger's connection as "archive".
  char* err = nullptr;
  ASSERT_EQ(
      sqlite3_exec(db, "INSERT INTO archive.charges SELECT rowid, * FROM main.charges WHERE tick > 10 AND tick <= 15",
                   nullptr, nullptr, &err),
      SQLITE_OK)
      << (err ? err : "");
  ASSERT_EQ(ledger_->retain(p)->through, 20u);
  sqlite3* arc = nullptr;
  ASSERT_EQ(ledger_->retain(p)->through, 20u);  // 30 - 10: caught up
  ASSERT_EQ(sqlite3_open(archive.c_str(), &arc), SQLITE_OK);
  EXPECT_EQ(count(arc, "SELECT COUNT(*) FROM charges"), old_charges);
  EXPECT_EQ(count(arc, "SELECT COUNT(DISTINCT row_id) FROM charges"), old_charges);
  EXPECT_EQ(count(arc, "SELECT MIN(row_id) FROM charges"), first_id);
  EXPECT_EQ(count(arc, "SELECT COUNT(*) FROM ticks"), 20);
  EXPECT_EQ(count(arc, "SELECT SUM(amount) FROM charges"),
            count(db, "SELECT SUM(amount) FROM archived_totals WHERE tbl = 'charges'"));
  sqlite3_close(arc);
  expect_audit_ok();
}

}  // namespace
}  // namespace morph::ledger
