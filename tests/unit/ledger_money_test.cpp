// The ledger's side of money that cannot overflow (issue #19): a credit past the bounds is refused before
// anything is written, balances stay integers (a CHECK, and a migration that adds it to older files), and a
// file an overflow already damaged is refused with the accounts named rather than opened.
#include <gtest/gtest.h>

#include <limits>

#include "controller/market/money.h"
#include "tests/unit/ledger_test_support.h"

namespace morph::ledger {
namespace {

using namespace morph::market;
using testing::LedgerTest;

constexpr Micros kInt64Max = std::numeric_limits<Micros>::max();

std::string text(sqlite3* db, const char* sql) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK) return "prepare failed";
  std::string out;
  if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
    out = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
  sqlite3_finalize(s);
  return out;
}

// Runs SQL behind the ledger's back (to make an older or damaged file); fails the test when SQLite refuses.
void run_sql(sqlite3* db, const char* sql) {
  char* err = nullptr;
  ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
}

// Issue #19 item 2: after a positive deposit, a deposit of INT64_MAX was accepted; the balance wrapped in
// memory and became a REAL in SQLite, and summing the account's credits failed. Now it is refused, in both.
TEST_F(LedgerTest, ADepositThatWouldOverflowIsRefusedAndNothingIsWritten) {
  ASSERT_TRUE(ex_->deposit("alice", 1'000'000).ok());
  auto st = ex_->deposit("alice", kInt64Max);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Errc::invalid_argument);
  EXPECT_NE(st.error().what().find("balance bound"), std::string::npos) << st.error().what();
  EXPECT_EQ(*market_->balance("alice"), 1'100'000);
  // The ledger refuses on its own too (its bound is the same), and the audit sums still work.
  auto direct = ledger_->credit("alice", kInt64Max, "overflow");
  ASSERT_FALSE(direct.ok());
  EXPECT_NE(direct.error().what().find(std::to_string(kMaxBalance)), std::string::npos) << direct.error().what();
  EXPECT_EQ(text(ledger_->handle(), "SELECT typeof(balance) FROM accounts WHERE id = 'alice'"), "integer");
  auto a = ledger_->audit();
  ASSERT_TRUE(a.ok()) << a.error().what();
  EXPECT_TRUE(a->ok()) << a->describe();
  EXPECT_EQ(a->total_credits, 1'105'000);
  // Reopened, the balance is what was acknowledged, not INT64_MAX.
  ledger_.reset();
  auto l = SqliteLedger::open(path_);
  ASSERT_TRUE(l.ok());
  auto snap = (*l)->load();
  ASSERT_TRUE(snap.ok());
  for (auto& acct : snap->accounts)
    if (acct.id == "alice") {
      EXPECT_EQ(acct.balance, 1'100'000);
    }
}

// All credits ever made sum within int64, so every SUM of the audit fits: with balances at their bound,
// the tenth credit of kMaxBalance is refused.
TEST_F(LedgerTest, CreditsEverMadeStayWithinInt64) {
  int taken = 0;
  for (int i = 0; i < 12; ++i) {
    const std::string acct = "rich" + std::to_string(i);
    ASSERT_TRUE(ledger_->create_account({acct, 0}).ok());
    if (ledger_->credit(acct, kMaxBalance, "top up").ok()) ++taken;
  }
  EXPECT_EQ(taken, static_cast<int>((kInt64Max - 105'000) / kMaxBalance));
  auto a = ledger_->audit();
  ASSERT_TRUE(a.ok()) << a.error().what();
  EXPECT_TRUE(a->ok()) << a->describe();
}

// The CHECK is the last line: SQL arithmetic past int64 cannot store a REAL balance.
TEST_F(LedgerTest, ABalanceCannotBecomeAReal) {
  char* err = nullptr;
  EXPECT_NE(sqlite3_exec(ledger_->handle(), "UPDATE accounts SET balance = balance + 9223372036854775807", nullptr,
                         nullptr, &err),
            SQLITE_OK);
  ASSERT_NE(err, nullptr);
  EXPECT_NE(std::string(err).find("CHECK constraint failed"), std::string::npos) << err;
  sqlite3_free(err);
  EXPECT_EQ(text(ledger_->handle(), "SELECT typeof(balance) FROM accounts WHERE id = 'alice'"), "integer");
}

// A schema-2 file: accounts and credits as they were before the CHECKs (and the idempotency key), the
// version stamp 2.
void make_v2(sqlite3* db) {
  const char* sql =
      "DROP VIEW journal;"
      "CREATE TABLE accounts_old(id TEXT PRIMARY KEY, balance INTEGER NOT NULL CHECK (balance >= 0));"
      "INSERT INTO accounts_old SELECT * FROM accounts;"
      "CREATE TABLE credits_old(id INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT NOT NULL REFERENCES accounts(id),"
      " amount INTEGER NOT NULL CHECK (amount > 0), note TEXT NOT NULL, after_tick INTEGER NOT NULL,"
      " ts_ns INTEGER NOT NULL DEFAULT 0);"
      "INSERT INTO credits_old SELECT id, account, amount, note, after_tick, ts_ns FROM credits;"
      "PRAGMA foreign_keys=OFF;"
      "DROP TABLE credits; DROP TABLE accounts;"
      "ALTER TABLE accounts_old RENAME TO accounts; ALTER TABLE credits_old RENAME TO credits;"
      "PRAGMA user_version = 2;";
  run_sql(db, sql);
}

TEST_F(LedgerTest, ASchema2FileIsMigratedAndKeepsItsHistory) {
  ASSERT_TRUE(ex_->submit({"alice", "vm-a", Resource::cpu, "improve", 600, 100, 30, 0}).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(ex_->run_tick().ok());
  ASSERT_TRUE(ex_->deposit("bob", 700, "invoice-9").ok());
  auto before = ledger_->journal({"", 0, "", 0, 1000});
  ASSERT_TRUE(before.ok());
  make_v2(ledger_->handle());
  ASSERT_EQ(text(ledger_->handle(), "SELECT sql FROM sqlite_master WHERE name = 'accounts'").find("typeof"),
            std::string::npos);
  ledger_.reset();
  auto l = SqliteLedger::open(path_);
  ASSERT_TRUE(l.ok()) << l.error().what();
  sqlite3* db = (*l)->handle();
  EXPECT_EQ(text(db, "PRAGMA user_version"), "4");
  EXPECT_EQ(text(db, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'credits_by_idempotency_key'"), "1");
  EXPECT_NE(text(db, "SELECT sql FROM sqlite_master WHERE name = 'accounts'").find("typeof(balance)"),
            std::string::npos);
  EXPECT_NE(text(db, "SELECT sql FROM sqlite_master WHERE name = 'credits'").find("typeof(amount)"), std::string::npos);
  auto after = (*l)->journal({"", 0, "", 0, 1000});
  ASSERT_TRUE(after.ok()) << after.error().what();
  ASSERT_EQ(after->size(), before->size());
  for (size_t i = 0; i < after->size(); ++i) {
    EXPECT_EQ((*after)[i].id, (*before)[i].id);
    EXPECT_EQ((*after)[i].amount, (*before)[i].amount);
  }
  auto audit = (*l)->audit();
  ASSERT_TRUE(audit.ok());
  EXPECT_TRUE(audit->ok()) << audit->describe();
  // Foreign keys still hold after the rebuild, and the ledger keeps working.
  EXPECT_EQ(text(db, "SELECT COUNT(*) FROM pragma_foreign_key_check"), "0");
  ledger_ = std::move(*l);
  ex_ = std::make_unique<Exchange>(*market_, *ledger_);
  ASSERT_TRUE(ex_->deposit("alice", 5).ok());
  ASSERT_TRUE(ex_->run_tick().ok());
}

// A schema-2 file in which the overflow already happened (the probe's: a REAL balance) is not opened: the
// error names the account and what to do.
TEST_F(LedgerTest, AFileAnOverflowDamagedIsRefusedNamingTheAccount) {
  ASSERT_TRUE(ex_->deposit("alice", 1'000'000).ok());
  make_v2(ledger_->handle());
  run_sql(ledger_->handle(), "UPDATE accounts SET balance = balance + 9223372036854775807 WHERE id = 'alice'");
  ASSERT_EQ(text(ledger_->handle(), "SELECT typeof(balance) FROM accounts WHERE id = 'alice'"), "real");
  ledger_.reset();
  auto l = SqliteLedger::open(path_);
  ASSERT_FALSE(l.ok());
  EXPECT_NE(l.error().what().find("account alice balance 9.2"), std::string::npos) << l.error().what();
  EXPECT_NE(l.error().what().find("restore a backup"), std::string::npos) << l.error().what();
}

// A schema-3 file (credits without the idempotency key) opens as version 4: the column is added, older
// credits keep none, and a keyed deposit is deduplicated from then on.
TEST_F(LedgerTest, ASchema3FileGainsTheIdempotencyKey) {
  ASSERT_TRUE(ex_->deposit("bob", 700, "invoice-9").ok());
  run_sql(ledger_->handle(),
          "DROP VIEW journal; DROP INDEX credits_by_idempotency_key;"
          "ALTER TABLE credits DROP COLUMN idempotency_key; PRAGMA user_version = 3;");
  ledger_.reset();
  auto l = SqliteLedger::open(path_);
  ASSERT_TRUE(l.ok()) << l.error().what();
  ledger_ = std::move(*l);
  EXPECT_EQ(text(ledger_->handle(), "PRAGMA user_version"), "4");
  EXPECT_EQ(text(ledger_->handle(), "SELECT COUNT(*) FROM credits WHERE idempotency_key IS NULL"),
            text(ledger_->handle(), "SELECT COUNT(*) FROM credits"));
  ex_ = std::make_unique<Exchange>(*market_, *ledger_);
  ASSERT_TRUE(ex_->deposit("bob", 5, "", "k-1").ok());
  auto again = ex_->deposit("bob", 5, "", "k-1");
  ASSERT_TRUE(again.ok()) << again.error().what();
  EXPECT_TRUE(again->replayed);
}

// Issue #19: a deposit had no idempotency key, so a client retrying after a lost reply credited twice.
TEST_F(LedgerTest, ADepositRetriedWithItsKeyIsCreditedOnce) {
  auto first = ex_->deposit("bob", 700, "invoice-9", "inv-9-attempt");
  ASSERT_TRUE(first.ok()) << first.error().what();
  EXPECT_FALSE(first->replayed);
  auto again = ex_->deposit("bob", 700, "invoice-9", "inv-9-attempt");
  ASSERT_TRUE(again.ok()) << again.error().what();
  EXPECT_TRUE(again->replayed);
  EXPECT_EQ(again->entry, first->entry);
  EXPECT_EQ(*market_->balance("bob"), 5'700);
  // The same key with another amount is a different request: refused, naming both.
  auto other = ex_->deposit("bob", 800, "invoice-9", "inv-9-attempt");
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().code(), Errc::conflict);
  EXPECT_NE(other.error().what().find("deposit of 700"), std::string::npos) << other.error().what();
  EXPECT_NE(other.error().what().find("not 800"), std::string::npos) << other.error().what();
  EXPECT_EQ(*market_->balance("bob"), 5'700);
  // Keys are per account; no key means no deduplication.
  ASSERT_TRUE(ex_->deposit("alice", 700, "", "inv-9-attempt").ok());
  EXPECT_TRUE(ex_->deposit("alice", 700, "", "inv-9-attempt")->replayed);
  ASSERT_TRUE(ex_->deposit("bob", 1).ok());
  ASSERT_TRUE(ex_->deposit("bob", 1).ok());
  EXPECT_EQ(*market_->balance("bob"), 5'702);
  EXPECT_EQ(*market_->balance("alice"), 100'700);
  // Durable: a restarted controller answers the retry from the ledger.
  ledger_.reset();
  auto l = SqliteLedger::open(path_);
  ASSERT_TRUE(l.ok());
  ledger_ = std::move(*l);
  Market again_market(testing::config());
  ex_ = std::make_unique<Exchange>(again_market, *ledger_);
  ASSERT_TRUE(ex_->recover().ok());
  auto late = ex_->deposit("bob", 700, "invoice-9", "inv-9-attempt");
  ASSERT_TRUE(late.ok()) << late.error().what();
  EXPECT_TRUE(late->replayed);
  EXPECT_EQ(late->entry, first->entry);
  EXPECT_EQ(*again_market.balance("bob"), 5'702);
  auto audit = ledger_->audit();
  ASSERT_TRUE(audit.ok());
  EXPECT_TRUE(audit->ok()) << audit->describe();
}

// A retry is answered even when the balance it already raised would no longer take it: the first deposit
// filled the account to its bound.
TEST_F(LedgerTest, ARetryIsAnsweredEvenWhenTheBoundWouldRefuseIt) {
  const Micros fill = kMaxBalance - 100'000;
  ASSERT_TRUE(ex_->deposit("alice", fill, "", "fill").ok());
  auto again = ex_->deposit("alice", fill, "", "fill");
  ASSERT_TRUE(again.ok()) << again.error().what();
  EXPECT_TRUE(again->replayed);
  EXPECT_EQ(*market_->balance("alice"), kMaxBalance);
}

}  // namespace
}  // namespace morph::ledger
