#include "controller/ledger/sqlite_schema.h"

#include <spdlog/spdlog.h>

#include <string>

#include "controller/ledger/sqlite_allocations.h"
#include "controller/ledger/sqlite_support.h"

namespace morph::ledger {
namespace {

using sqlite::exec;
using sqlite::prep_error;
using sqlite::Stmt;
using sqlite::Transaction;

// Balances are the only amounts SQL computes (balance + credit, balance - charge); past int64 SQLite would
// make one a REAL, so the CHECKs keep them integers (schema version 3). Every other amount is bound from an
// int64 and cannot be anything else. The two tables' definitions are also what version 3 rebuilds old ones to.
std::string accounts_table(const char* name) {
  return std::string("CREATE TABLE IF NOT EXISTS ") + name +
         R"sql((
  id TEXT PRIMARY KEY,
  balance INTEGER NOT NULL CHECK (typeof(balance) = 'integer' AND balance >= 0)
);)sql";
}
std::string credits_table(const char* name) {
  return std::string("CREATE TABLE IF NOT EXISTS ") + name +
         R"sql((
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  account TEXT NOT NULL REFERENCES accounts(id),
  amount INTEGER NOT NULL CHECK (typeof(amount) = 'integer' AND amount > 0),
  note TEXT NOT NULL,
  after_tick INTEGER NOT NULL,
  ts_ns INTEGER NOT NULL DEFAULT 0,
  idempotency_key TEXT
);)sql";
}

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS bids(
  id INTEGER PRIMARY KEY,
  account TEXT NOT NULL REFERENCES accounts(id),
  vm TEXT NOT NULL,
  host TEXT NOT NULL,
  resource TEXT NOT NULL CHECK (resource IN ('cpu','memory','disk_iops','disk_bps','net_out_kbps','net_in_kbps','storage_tier')),
  tier TEXT NOT NULL CHECK (tier IN ('sla','improve','speculative')),
  quantity INTEGER NOT NULL CHECK (quantity > 0),
  min_fill INTEGER NOT NULL,
  max_price INTEGER NOT NULL CHECK (max_price > 0),
  expiry INTEGER NOT NULL,
  submitted INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('active','suspended','cancelled','expired')),
  state_reason TEXT NOT NULL,
  CHECK (min_fill BETWEEN 1 AND quantity)
);
CREATE TABLE IF NOT EXISTS ticks(
  tick INTEGER PRIMARY KEY,
  revenue INTEGER NOT NULL CHECK (revenue >= 0),
  charge_count INTEGER NOT NULL,
  allocation_count INTEGER NOT NULL,
  failure_count INTEGER NOT NULL,
  committed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  ts_ns INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS charges(
  tick INTEGER NOT NULL REFERENCES ticks(tick),
  bid_id INTEGER NOT NULL,
  account TEXT NOT NULL REFERENCES accounts(id),
  amount INTEGER NOT NULL CHECK (amount > 0),
  PRIMARY KEY (tick, bid_id)
);
CREATE INDEX IF NOT EXISTS charges_by_account ON charges(account);
CREATE TABLE IF NOT EXISTS failures(
  tick INTEGER NOT NULL REFERENCES ticks(tick),
  bid_id INTEGER NOT NULL,
  account TEXT NOT NULL,
  reason TEXT NOT NULL CHECK (reason IN ('no_capacity','price_below_market','insufficient_funds','suspended')),
  detail TEXT NOT NULL,
  PRIMARY KEY (tick, bid_id)
);
CREATE INDEX IF NOT EXISTS failures_by_account ON failures(account);
CREATE TABLE IF NOT EXISTS prices(
  tick INTEGER NOT NULL REFERENCES ticks(tick),
  host TEXT NOT NULL,
  resource TEXT NOT NULL,
  tier TEXT NOT NULL,
  price INTEGER NOT NULL,
  sold INTEGER NOT NULL,
  PRIMARY KEY (tick, host, resource, tier)
);
CREATE TABLE IF NOT EXISTS account_meta(
  account TEXT PRIMARY KEY REFERENCES accounts(id),
  display_name TEXT NOT NULL,
  created_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS vm_policies(
  vm TEXT PRIMARY KEY,
  account TEXT NOT NULL,
  rescue INTEGER NOT NULL CHECK (rescue IN (0, 1)),
  runq_wait_permille INTEGER NOT NULL,
  blk_p99_us INTEGER NOT NULL,
  drops_per_s INTEGER NOT NULL,
  breach_intervals INTEGER NOT NULL,
  recover_intervals INTEGER NOT NULL,
  cpu_step INTEGER NOT NULL,
  disk_iops_step INTEGER NOT NULL,
  net_kbps_step INTEGER NOT NULL,
  max_price INTEGER NOT NULL CHECK (max_price >= 0),
  budget_per_hour INTEGER NOT NULL CHECK (budget_per_hour >= 0),
  funds_horizon_s INTEGER NOT NULL,
  updated_tick INTEGER NOT NULL,
  predictive INTEGER NOT NULL DEFAULT 0 CHECK (predictive IN (0, 1)),
  predictive_horizon_s INTEGER NOT NULL DEFAULT 300,
  predictive_quantile_permille INTEGER NOT NULL DEFAULT 900
);
CREATE TABLE IF NOT EXISTS owner_overrides(
  vm TEXT PRIMARY KEY,
  account TEXT NOT NULL REFERENCES accounts(id),
  set_by TEXT NOT NULL,
  set_ns INTEGER NOT NULL
);
-- Retention: what archived rows summed to, per account and table (rows, amount), and per table (through
-- which tick, rows, amount, the largest journal id), so audits and journal ids carry on without them.
CREATE TABLE IF NOT EXISTS archived_totals(
  account TEXT NOT NULL,
  tbl TEXT NOT NULL,
  rows INTEGER NOT NULL,
  amount INTEGER NOT NULL CHECK (typeof(amount) = 'integer'),
  PRIMARY KEY (account, tbl)
);
CREATE TABLE IF NOT EXISTS retention_state(
  tbl TEXT PRIMARY KEY,
  through_tick INTEGER NOT NULL,
  rows INTEGER NOT NULL,
  amount INTEGER NOT NULL CHECK (typeof(amount) = 'integer'),
  max_id INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rescue_bids(
  bid_id INTEGER PRIMARY KEY REFERENCES bids(id),
  vm TEXT NOT NULL,
  signal TEXT NOT NULL,
  quantity INTEGER NOT NULL CHECK (quantity > 0)
);
)sql";

// The journal `morphctl ledger show` pages through is not a table of its own: it is the charges, failures and
// credits themselves, whose ids (the rowids) are drawn from one sequence in commit order (schema version
// 2), so an entry's id is a stable, increasing paging cursor. journal() queries the three tables directly
// (each through its own index, LIMIT pushed into each arm); the view is for inspection with sqlite3.
constexpr const char* kJournalView = R"sql(
CREATE VIEW IF NOT EXISTS journal(id, tick, account, kind, amount, bid_id, reason, ts_ns) AS
  SELECT c.rowid, c.tick, c.account, 'charge', -c.amount, c.bid_id, '', t.ts_ns FROM charges c JOIN ticks t ON t.tick = c.tick
  UNION ALL SELECT f.rowid, f.tick, f.account, 'failure', 0, f.bid_id, f.reason, t.ts_ns FROM failures f JOIN ticks t ON t.tick = f.tick
  UNION ALL SELECT id, after_tick, account, 'deposit', amount, 0, note, ts_ns FROM credits;
)sql";

// Version 2, from v1 (no journal) or the journal-table era, in one transaction:
//  - v1 (no journal) and the journal-table era alike: ticks and credits gain ts_ns; a journal table's
//    timestamps are kept (ticks: its charge/failure time; credits: matched in order), then it is dropped;
//    ticks without one take committed_at.
//  - charges, failures and credits are renumbered into one sequence in commit order (by tick; within a
//    tick charges, then failures, then the deposits made after it), the order the journal table had.
// Each statement is finished before the migration writes (a pending read would lock the tables).
Result<int64_t> scalar(sqlite3* db_, const std::string& sql, const char* arg = nullptr) {
  Stmt q(db_, sql.c_str());
  if (!q.ok()) return prep_error(db_, "schema check");
  if (arg) q.bind(1, arg);
  if (!q.row()) return prep_error(db_, "schema check");
  return q.i64(0);
}

Status to_v2(sqlite3* db_, int64_t version) {
  auto scalar = [&](const std::string& sql, const char* arg) { return ledger::scalar(db_, sql, arg); };
  auto has_column = [&](const char* table, const char* column) {
    auto n = scalar(std::string("SELECT COUNT(*) FROM pragma_table_info('") + table + "') WHERE name = ?", column);
    return n.ok() && *n > 0;
  };
  MORPH_TRY_ASSIGN(const int64_t journal_tables,
                   scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'journal'", nullptr));
  const bool journal_table = journal_tables > 0;
  Transaction tx(db_);
  MORPH_TRY(tx.begin());
  if (!has_column("ticks", "ts_ns"))
    MORPH_TRY(exec(db_, "ALTER TABLE ticks ADD COLUMN ts_ns INTEGER NOT NULL DEFAULT 0"));
  if (!has_column("credits", "ts_ns"))
    MORPH_TRY(exec(db_, "ALTER TABLE credits ADD COLUMN ts_ns INTEGER NOT NULL DEFAULT 0"));
  if (journal_table) {
    MORPH_TRY(
        exec(db_,
             "UPDATE ticks SET ts_ns = COALESCE((SELECT MAX(j.ts_ns) FROM journal j WHERE j.tick = ticks.tick AND "
             " j.kind != 'deposit'), 0);"
             "WITH jd AS (SELECT ts_ns, ROW_NUMBER() OVER (ORDER BY id) AS n FROM journal WHERE kind = 'deposit'),"
             " cr AS (SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS n FROM credits)"
             " UPDATE credits SET ts_ns = COALESCE((SELECT jd.ts_ns FROM jd JOIN cr ON cr.n = jd.n WHERE cr.id = "
             "credits.id), 0);"
             "DROP TABLE journal;"));
  }
  MORPH_TRY(
      exec(db_,
           "UPDATE ticks SET ts_ns = CAST((julianday(committed_at) - 2440587.5) * 86400000000000 AS INTEGER) WHERE "
           "ts_ns = 0;"
           "DROP TABLE IF EXISTS temp.journal_ids;"
           "CREATE TEMP TABLE journal_ids(kind INTEGER NOT NULL, old INTEGER NOT NULL, id INTEGER NOT NULL, PRIMARY "
           "KEY (kind, old));"
           "INSERT INTO journal_ids SELECT kind, old, ROW_NUMBER() OVER (ORDER BY tick, kind, old) FROM ("
           " SELECT tick, 0 AS kind, rowid AS old FROM charges"
           " UNION ALL SELECT tick, 1, rowid FROM failures"
           " UNION ALL SELECT after_tick, 2, id FROM credits);"
           "UPDATE charges SET rowid = -rowid;"
           "UPDATE charges SET rowid = (SELECT id FROM journal_ids WHERE kind = 0 AND old = -charges.rowid);"
           "UPDATE failures SET rowid = -rowid;"
           "UPDATE failures SET rowid = (SELECT id FROM journal_ids WHERE kind = 1 AND old = -failures.rowid);"
           "UPDATE credits SET id = -id;"
           "UPDATE credits SET id = (SELECT j.id FROM journal_ids j WHERE j.kind = 2 AND j.old = -credits.id);"
           "DROP TABLE temp.journal_ids;"));
  MORPH_TRY(exec(db_, "PRAGMA user_version = 2"));
  MORPH_TRY(tx.commit());
  if (version != 0 || journal_table) spdlog::info("ledger: migrated to schema 2 (journal as a view)");
  return {};
}

// Allocations stored as spans (spans.h) instead of one row per tick and bid: told by the table's layout, not
// by user_version, so this step composes with the numbered ones whatever order they land in. One transaction.
Status to_allocation_spans(sqlite3* db) {
  Transaction tx(db);
  MORPH_TRY(tx.begin());
  MORPH_TRY_ASSIGN(const bool converted, sqlite::to_spans(db));
  MORPH_TRY(tx.commit());
  if (converted) spdlog::info("ledger: migrated allocations to spans of unchanged terms (one row per change)");
  return {};
}

// Version 3: balances and credits are integers by CHECK. SQLite cannot add a CHECK to a table, so both are
// rebuilt (SQLite's "12 steps": new table, copy, drop, rename; foreign keys are not enforced yet while the
// ledger opens). A file where an overflow already made a balance REAL (before the money bounds) is refused,
// naming the accounts: which credit was wrong is the operator's call, not the migration's.
Status to_v3(sqlite3* db_) {
  MORPH_TRY_ASSIGN(const int64_t checked,
                   scalar(db_, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'accounts' AND sql LIKE '%typeof%'"));
  Transaction tx(db_);
  MORPH_TRY(tx.begin());
  if (checked == 0) {
    std::string bad;
    {
      Stmt q(db_,
             "SELECT 'account ' || id || ' balance ' || CAST(balance AS TEXT) FROM accounts WHERE typeof(balance) != "
             "'integer' UNION ALL SELECT 'credit ' || id || ' of ' || account || ' amount ' || CAST(amount AS TEXT) "
             "FROM credits WHERE typeof(amount) != 'integer'");
      if (!q.ok()) return prep_error(db_, "integer check");
      while (q.row()) bad += (bad.empty() ? "" : "; ") + q.text(0);
    }
    if (!bad.empty())
      return Error(Errc::invalid_argument,
                   "ledger: amounts stored as non-integers by an overflow of an older version (" + bad +
                       "); correct them from credits - charges, or restore a backup, before this version opens it");
    MORPH_TRY(exec(db_, "DROP VIEW IF EXISTS journal"));  // renaming tables under a view that names them fails
    MORPH_TRY(exec(db_, accounts_table("accounts_v3").c_str()));
    MORPH_TRY(exec(db_, credits_table("credits_v3").c_str()));
    MORPH_TRY(exec(db_,
                   "INSERT INTO accounts_v3(id, balance) SELECT id, balance FROM accounts;"
                   "INSERT INTO credits_v3(id, account, amount, note, after_tick, ts_ns)"
                   " SELECT id, account, amount, note, after_tick, ts_ns FROM credits;"
                   "DROP TABLE credits; DROP TABLE accounts;"
                   "ALTER TABLE accounts_v3 RENAME TO accounts; ALTER TABLE credits_v3 RENAME TO credits;"));
    MORPH_TRY_ASSIGN(const int64_t dangling, scalar(db_, "SELECT COUNT(*) FROM pragma_foreign_key_check"));
    if (dangling != 0) return Error(Errc::internal, "ledger: rebuilding accounts left rows without their account");
  }
  MORPH_TRY(exec(db_, "PRAGMA user_version = 3"));
  MORPH_TRY(tx.commit());
  if (checked == 0) spdlog::info("ledger: migrated to schema 3 (balances kept integers by CHECK)");
  return {};
}

// Version 4: a deposit may carry an idempotency key, unique per account (a retry is answered from the first
// deposit, never credited twice). Credits without one keep NULL, which the partial index leaves out.
Status to_v4(sqlite3* db_) {
  Transaction tx(db_);
  MORPH_TRY(tx.begin());
  bool has_key = false;  // a new file has the column from credits_table(); ADD COLUMN cannot be repeated
  {
    Stmt q(db_, "SELECT 1 FROM pragma_table_info('credits') WHERE name = 'idempotency_key'");
    if (!q.ok()) return prep_error(db_, "credits columns");
    has_key = q.row();
  }
  if (!has_key) MORPH_TRY(exec(db_, "ALTER TABLE credits ADD COLUMN idempotency_key TEXT"));
  MORPH_TRY(
      exec(db_,
           "CREATE UNIQUE INDEX IF NOT EXISTS credits_by_idempotency_key ON credits(account, idempotency_key) WHERE "
           "idempotency_key IS NOT NULL;"
           "PRAGMA user_version = 4;"));
  return tx.commit();
}

// A file from before predictive bids (issue #14) gains the policy's three predictive columns, at their
// defaults (off). Told by the table's layout, as the spans step: the columns are additive.
Status add_predictive_columns(sqlite3* db) {
  MORPH_TRY_ASSIGN(const int64_t n,
                   scalar(db, "SELECT COUNT(*) FROM pragma_table_info('vm_policies') WHERE name = 'predictive'"));
  if (n > 0) return {};
  return exec(db,
              "ALTER TABLE vm_policies ADD COLUMN predictive INTEGER NOT NULL DEFAULT 0 CHECK (predictive IN (0, 1));"
              "ALTER TABLE vm_policies ADD COLUMN predictive_horizon_s INTEGER NOT NULL DEFAULT 300;"
              "ALTER TABLE vm_policies ADD COLUMN predictive_quantile_permille INTEGER NOT NULL DEFAULT 900;");
}

Status migrate(sqlite3* db) {
  MORPH_TRY_ASSIGN(const int64_t version, scalar(db, "PRAGMA user_version"));
  if (version < 2) MORPH_TRY(to_v2(db, version));
  if (version < 3) MORPH_TRY(to_v3(db));
  if (version < 4) MORPH_TRY(to_v4(db));
  MORPH_TRY(to_allocation_spans(db));
  MORPH_TRY(add_predictive_columns(db));
  return exec(db, kJournalView);
}

}  // namespace

Status apply_schema(sqlite3* db) {
  MORPH_TRY(exec(db, "PRAGMA foreign_keys=OFF"));  // a migration may rebuild a table others refer to
  MORPH_TRY(exec(db, (accounts_table("accounts") + credits_table("credits")).c_str()));
  MORPH_TRY(exec(db, kSchema));
  MORPH_TRY(exec(db, sqlite::kAllocationSpansTable));
  return migrate(db);
}

}  // namespace morph::ledger
