#include "controller/ledger/sqlite_ledger.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <sstream>

namespace morph::ledger {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS accounts(
  id TEXT PRIMARY KEY,
  balance INTEGER NOT NULL CHECK (balance >= 0)
);
CREATE TABLE IF NOT EXISTS credits(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  account TEXT NOT NULL REFERENCES accounts(id),
  amount INTEGER NOT NULL CHECK (amount > 0),
  note TEXT NOT NULL,
  after_tick INTEGER NOT NULL,
  ts_ns INTEGER NOT NULL DEFAULT 0
);
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
CREATE TABLE IF NOT EXISTS allocations(
  tick INTEGER NOT NULL REFERENCES ticks(tick),
  bid_id INTEGER NOT NULL,
  account TEXT NOT NULL,
  vm TEXT NOT NULL,
  host TEXT NOT NULL,
  resource TEXT NOT NULL,
  tier TEXT NOT NULL,
  quantity INTEGER NOT NULL CHECK (quantity > 0),
  price INTEGER NOT NULL CHECK (price >= 0),
  since INTEGER NOT NULL,
  notice_until INTEGER NOT NULL,
  PRIMARY KEY (tick, bid_id)
);
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
constexpr int kSchemaVersion = 2;
constexpr const char* kJournalView = R"sql(
CREATE VIEW IF NOT EXISTS journal(id, tick, account, kind, amount, bid_id, reason, ts_ns) AS
  SELECT c.rowid, c.tick, c.account, 'charge', -c.amount, c.bid_id, '', t.ts_ns FROM charges c JOIN ticks t ON t.tick = c.tick
  UNION ALL SELECT f.rowid, f.tick, f.account, 'failure', 0, f.bid_id, f.reason, t.ts_ns FROM failures f JOIN ticks t ON t.tick = f.tick
  UNION ALL SELECT id, after_tick, account, 'deposit', amount, 0, note, ts_ns FROM credits;
)sql";

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A prepared statement that finalizes itself.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) != SQLITE_OK) s_ = nullptr;
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  bool ok() const { return s_ != nullptr; }
  Stmt& bind(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  Stmt& bind(int i, uint64_t v) {
    sqlite3_bind_int64(s_, i, static_cast<int64_t>(v));
    return *this;
  }
  Stmt& bind(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, const char* v) {
    sqlite3_bind_text(s_, i, v, -1, SQLITE_STATIC);
    return *this;
  }
  template <typename T>
  Stmt& bind_named(const char* name, const T& v) {
    return bind(sqlite3_bind_parameter_index(s_, name), v);
  }
  // Runs to completion; for statements with no result rows.
  Status run(const char* what) {
    int rc = sqlite3_step(s_);
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
    if (rc != SQLITE_DONE) return Error(Errc::io, std::string(what) + ": " + sqlite3_errmsg(db_));
    return {};
  }
  bool row() { return sqlite3_step(s_) == SQLITE_ROW; }
  int64_t i64(int c) { return sqlite3_column_int64(s_, c); }
  std::string text(int c) {
    auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s_, c));
    return p ? std::string(p) : std::string();
  }
  bool null(int c) { return sqlite3_column_type(s_, c) == SQLITE_NULL; }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
};

Error prep_error(sqlite3* db, const char* what) {
  return Error(Errc::internal, std::string("preparing ") + what + ": " + sqlite3_errmsg(db));
}

// Rolls back unless committed.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) {}
  ~Transaction() {
    if (open_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  Status begin() {
    if (sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK)
      return Error(Errc::io, std::string("begin: ") + sqlite3_errmsg(db_));
    open_ = true;
    return {};
  }
  Status commit() {
    if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK)
      return Error(Errc::io, std::string("commit: ") + sqlite3_errmsg(db_));
    open_ = false;
    return {};
  }

 private:
  sqlite3* db_;
  bool open_ = false;
};

Result<market::Bid> bid_from_row(Stmt& q) {
  market::Bid b;
  b.id = static_cast<market::BidId>(q.i64(0));
  b.account = q.text(1);
  b.vm = q.text(2);
  b.host = q.text(3);
  auto r = market::parse_traded_resource(q.text(4));
  auto t = market::parse_tier(q.text(5));
  auto st = market::parse_bid_state(q.text(12));
  auto why = market::parse_failure_reason(q.text(13));
  if (!r || !t || !st || !why) return Error(Errc::internal, "bid " + std::to_string(b.id) + ": bad enum in ledger");
  b.resource = *r;
  b.tier = *t;
  b.quantity = q.i64(6);
  b.min_fill = q.i64(7);
  b.max_price = q.i64(8);
  b.expiry = static_cast<Tick>(q.i64(9));
  b.submitted = static_cast<Tick>(q.i64(10));
  b.seq = static_cast<uint64_t>(q.i64(11));
  b.state = *st;
  b.state_reason = *why;
  return b;
}

}  // namespace

std::string AuditReport::describe() const {
  std::ostringstream o;
  o << "ticks " << first_tick << ".." << last_tick << " (" << tick_count << ", contiguous=" << ticks_contiguous
    << ") credits=" << total_credits << " charges=" << total_charges << " revenue=" << total_revenue
    << " balances=" << total_balances << " negative=" << negative_balances
    << " inconsistent_accounts=" << accounts_inconsistent << " tick_revenue_mismatch=" << ticks_revenue_mismatch
    << " journal_mismatch=" << journal_mismatch;
  return o.str();
}

Result<std::unique_ptr<SqliteLedger>> SqliteLedger::open(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr) !=
      SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return Error(Errc::io, "opening ledger " + path + ": " + msg);
  }
  std::unique_ptr<SqliteLedger> l(new SqliteLedger(db));
  sqlite3_busy_timeout(db, 5000);
  // WAL + FULL: a returned COMMIT has been fsynced; a torn write is rolled back on the next open.
  MORPH_TRY(l->exec("PRAGMA journal_mode=WAL"));
  MORPH_TRY(l->exec("PRAGMA synchronous=FULL"));
  MORPH_TRY(l->exec("PRAGMA foreign_keys=ON"));
  // A tick of 100k allocations dirties tens of MB of table and index pages; with SQLite's 2 MiB default
  // cache they spill and are re-read within the one transaction (commit 1.2-1.6x slower at 100k-300k,
  // docs/benchmarks.md "Ledger commit per tick"). 64 MiB is a ceiling, allocated only as pages are used.
  MORPH_TRY(l->exec("PRAGMA cache_size=-65536"));
  MORPH_TRY(l->exec(kSchema));
  MORPH_TRY(l->migrate());
  MORPH_TRY(l->add_predictive_columns());
  Stmt q(db, "PRAGMA journal_mode");
  if (!q.ok() || !q.row() || q.text(0) != "wal") return Error(Errc::io, "ledger " + path + ": WAL mode not available");
  return l;
}

SqliteLedger::~SqliteLedger() {
  sqlite3_close(db_);
}

// Brings an older file to schema version 2, once, in one transaction:
//  - v1 (no journal) and the journal-table era alike: ticks and credits gain ts_ns; a journal table's
//    timestamps are kept (ticks: its charge/failure time; credits: matched in order), then it is dropped;
//    ticks without one take committed_at.
//  - charges, failures and credits are renumbered into one sequence in commit order (by tick; within a
//    tick charges, then failures, then the deposits made after it), the order the journal table had.
Status SqliteLedger::migrate() {
  // Each statement is finished before the migration writes (a pending read would lock the tables).
  auto scalar = [&](const std::string& sql, const char* arg) -> Result<int64_t> {
    Stmt q(db_, sql.c_str());
    if (!q.ok()) return prep_error(db_, "schema check");
    if (arg) q.bind(1, arg);
    if (!q.row()) return prep_error(db_, "schema check");
    return q.i64(0);
  };
  MORPH_TRY_ASSIGN(const int64_t version, scalar("PRAGMA user_version", nullptr));
  if (version >= kSchemaVersion) return exec(kJournalView);
  auto has_column = [&](const char* table, const char* column) {
    auto n = scalar(std::string("SELECT COUNT(*) FROM pragma_table_info('") + table + "') WHERE name = ?", column);
    return n.ok() && *n > 0;
  };
  MORPH_TRY_ASSIGN(const int64_t journal_tables,
                   scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'journal'", nullptr));
  const bool journal_table = journal_tables > 0;
  Transaction tx(db_);
  MORPH_TRY(tx.begin());
  if (!has_column("ticks", "ts_ns")) MORPH_TRY(exec("ALTER TABLE ticks ADD COLUMN ts_ns INTEGER NOT NULL DEFAULT 0"));
  if (!has_column("credits", "ts_ns"))
    MORPH_TRY(exec("ALTER TABLE credits ADD COLUMN ts_ns INTEGER NOT NULL DEFAULT 0"));
  if (journal_table) {
    MORPH_TRY(
        exec("UPDATE ticks SET ts_ns = COALESCE((SELECT MAX(j.ts_ns) FROM journal j WHERE j.tick = ticks.tick AND "
             " j.kind != 'deposit'), 0);"
             "WITH jd AS (SELECT ts_ns, ROW_NUMBER() OVER (ORDER BY id) AS n FROM journal WHERE kind = 'deposit'),"
             " cr AS (SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS n FROM credits)"
             " UPDATE credits SET ts_ns = COALESCE((SELECT jd.ts_ns FROM jd JOIN cr ON cr.n = jd.n WHERE cr.id = "
             "credits.id), 0);"
             "DROP TABLE journal;"));
  }
  MORPH_TRY(
      exec("UPDATE ticks SET ts_ns = CAST((julianday(committed_at) - 2440587.5) * 86400000000000 AS INTEGER) WHERE "
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
  MORPH_TRY(exec(kJournalView));
  MORPH_TRY(exec(("PRAGMA user_version = " + std::to_string(kSchemaVersion)).c_str()));
  MORPH_TRY(tx.commit());
  if (version != 0 || journal_table) spdlog::info("ledger: migrated to schema {} (journal as a view)", kSchemaVersion);
  return {};
}

// The next journal id: one past the largest of charges, failures and credits (each an index's last key).
Result<int64_t> SqliteLedger::next_journal_id() {
  Stmt q(db_,
         "SELECT MAX(COALESCE((SELECT MAX(rowid) FROM charges), 0), COALESCE((SELECT MAX(rowid) FROM failures), 0),"
         " COALESCE((SELECT MAX(id) FROM credits), 0)) + 1");
  if (!q.ok() || !q.row()) return prep_error(db_, "journal id");
  return q.i64(0);
}

// A file from before predictive bids (issue #14) gains the policy's three predictive columns, at their
// defaults (off). Independent of the schema version: the columns are additive.
Status SqliteLedger::add_predictive_columns() {
  int64_t n = 0;
  {
    Stmt q(db_, "SELECT COUNT(*) FROM pragma_table_info('vm_policies') WHERE name = 'predictive'");
    if (!q.ok() || !q.row()) return prep_error(db_, "schema check");
    n = q.i64(0);
  }
  if (n > 0) return {};
  return exec(
      "ALTER TABLE vm_policies ADD COLUMN predictive INTEGER NOT NULL DEFAULT 0 CHECK (predictive IN (0, 1));"
      "ALTER TABLE vm_policies ADD COLUMN predictive_horizon_s INTEGER NOT NULL DEFAULT 300;"
      "ALTER TABLE vm_policies ADD COLUMN predictive_quantile_permille INTEGER NOT NULL DEFAULT 900;");
}

Status SqliteLedger::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    return Error(Errc::io, std::string("ledger: ") + msg);
  }
  return {};
}

Status SqliteLedger::create_account(const market::Account& a, const std::string& display_name, uint64_t created_ns) {
  if (a.balance < 0) return Error(Errc::invalid_argument, "account " + a.id + ": negative opening balance");
  Transaction tx(db_);
  MORPH_TRY(tx.begin());
  Stmt ins(db_, "INSERT INTO accounts(id, balance) VALUES(?, 0)");
  if (!ins.ok()) return prep_error(db_, "account insert");
  auto st = ins.bind(1, a.id).run("creating account");
  if (!st.ok()) return Error(Errc::already_exists, "account " + a.id + ": " + st.error().message());
  if (a.balance > 0) MORPH_TRY(add_credit(a.id, a.balance, "opening balance"));
  Stmt meta(db_, "INSERT INTO account_meta(account, display_name, created_ns) VALUES(?, ?, ?)");
  if (!meta.ok()) return prep_error(db_, "account details");
  MORPH_TRY(meta.bind(1, a.id)
                .bind(2, display_name)
                .bind(3, created_ns ? created_ns : static_cast<uint64_t>(now_ns()))
                .run("recording account details"));
  return tx.commit();
}

Status SqliteLedger::add_credit(const std::string& account, Micros amount, const std::string& note) {
  Stmt up(db_, "UPDATE accounts SET balance = balance + ? WHERE id = ?");
  Stmt ins(db_,
           "INSERT INTO credits(id, account, amount, note, after_tick, ts_ns) "
           "VALUES(?, ?, ?, ?, (SELECT COALESCE(MAX(tick), 0) FROM ticks), ?)");
  if (!up.ok() || !ins.ok()) return prep_error(db_, "credit");
  MORPH_TRY(up.bind(1, amount).bind(2, account).run("crediting"));
  if (sqlite3_changes(db_) != 1) return Error(Errc::not_found, "unknown account " + account);
  MORPH_TRY_ASSIGN(int64_t id, next_journal_id());
  return ins.bind(1, id).bind(2, account).bind(3, amount).bind(4, note).bind(5, now_ns()).run("recording credit");
}

Status SqliteLedger::credit(const std::string& account, Micros amount, const std::string& note) {
  if (amount <= 0) return Error(Errc::invalid_argument, "a credit must be positive");
  Transaction tx(db_);
  MORPH_TRY(tx.begin());
  MORPH_TRY(add_credit(account, amount, note));
  // Same rule as Market::credit, in the same transaction: a credit lifts funds suspensions.
  Stmt lift(db_,
            "UPDATE bids SET state = 'active', state_reason = 'none' "
            "WHERE account = ? AND state = 'suspended'");
  if (!lift.ok()) return prep_error(db_, "lifting suspensions");
  MORPH_TRY(lift.bind(1, account).run("lifting suspensions"));
  return tx.commit();
}

namespace {
constexpr const char* kBidUpsert =
    "INSERT INTO bids(id, account, vm, host, resource, tier, quantity, min_fill, max_price, expiry, "
    "submitted, seq, state, state_reason) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT(id) DO UPDATE SET quantity=excluded.quantity, min_fill=excluded.min_fill, "
    "max_price=excluded.max_price, expiry=excluded.expiry, seq=excluded.seq, state=excluded.state, "
    "state_reason=excluded.state_reason";

Status bind_bid(Stmt& q, const market::Bid& b) {
  return q.bind(1, b.id)
      .bind(2, b.account)
      .bind(3, b.vm)
      .bind(4, b.host)
      .bind(5, resource_name(b.resource))
      .bind(6, market::tier_name(b.tier))
      .bind(7, b.quantity)
      .bind(8, b.min_fill)
      .bind(9, b.max_price)
      .bind(10, b.expiry)
      .bind(11, b.submitted)
      .bind(12, b.seq)
      .bind(13, market::bid_state_name(b.state))
      .bind(14, market::failure_reason_name(b.state_reason))
      .run("recording bid");
}
}  // namespace

Status SqliteLedger::upsert_bid(const market::Bid& b) {
  Stmt q(db_, kBidUpsert);
  if (!q.ok()) return prep_error(db_, "bid upsert");
  return bind_bid(q, b);
}

Status SqliteLedger::put_bid(const market::Bid& bid) {
  Transaction tx(db_);
  MORPH_TRY(tx.begin());
  MORPH_TRY(upsert_bid(bid));
  return tx.commit();
}

Status SqliteLedger::commit_tick(const market::TickOutcome& o) {
  Transaction tx(db_);
  MORPH_TRY(tx.begin());
  Tick last = 0;
  {
    Stmt q(db_, "SELECT MAX(tick) FROM ticks");
    if (!q.ok()) return prep_error(db_, "last tick");
    if (q.row() && !q.null(0)) last = static_cast<Tick>(q.i64(0));
  }
  if (o.tick != last + 1)
    return Error(Errc::conflict,
                 "tick " + std::to_string(o.tick) + " refused: last committed tick is " + std::to_string(last));
  Micros sum = 0;
  for (const auto& c : o.charges) sum += c.amount;
  if (sum != o.revenue) return Error(Errc::internal, "tick " + std::to_string(o.tick) + ": revenue != sum of charges");

  Stmt tick(db_,
            "INSERT INTO ticks(tick, revenue, charge_count, allocation_count, failure_count, ts_ns) "
            "VALUES(?,?,?,?,?,?)");
  Stmt debit(db_, "UPDATE accounts SET balance = balance - ? WHERE id = ?");
  // Charges and failures take their journal ids (rowids) from the shared sequence, in commit order.
  Stmt charge(db_, "INSERT INTO charges(rowid, tick, bid_id, account, amount) VALUES(?,?,?,?,?)");
  Stmt alloc(db_,
             "INSERT INTO allocations(tick, bid_id, account, vm, host, resource, tier, quantity, price, since, "
             "notice_until) VALUES(?,?,?,?,?,?,?,?,?,?,?)");
  Stmt fail(db_, "INSERT INTO failures(rowid, tick, bid_id, account, reason, detail) VALUES(?,?,?,?,?,?)");
  Stmt price(db_, "INSERT INTO prices(tick, host, resource, tier, price, sold) VALUES(?,?,?,?,?,?)");
  Stmt bid(db_, kBidUpsert);
  if (!tick.ok() || !debit.ok() || !charge.ok() || !alloc.ok() || !fail.ok() || !price.ok() || !bid.ok())
    return prep_error(db_, "tick statements");
  MORPH_TRY_ASSIGN(int64_t jid, next_journal_id());

  const int64_t t = static_cast<int64_t>(o.tick);
  const int64_t ts = now_ns();
  MORPH_TRY(tick.bind(1, t)
                .bind(2, o.revenue)
                .bind(3, static_cast<int64_t>(o.charges.size()))
                .bind(4, static_cast<int64_t>(o.allocations.size()))
                .bind(5, static_cast<int64_t>(o.failures.size()))
                .bind(6, ts)
                .run("recording tick"));
  for (const auto& c : o.charges) {
    auto st = debit.bind(1, c.amount).bind(2, c.account).run("debiting");
    if (!st.ok())  // CHECK(balance >= 0): the whole tick is refused, never a partial one
      return Error(Errc::insufficient_funds, "tick " + std::to_string(o.tick) + ": account " + c.account +
                                                 " cannot pay " + std::to_string(c.amount) + ": " +
                                                 st.error().message());
    if (sqlite3_changes(db_) != 1) return Error(Errc::not_found, "tick charges unknown account " + c.account);
    MORPH_TRY(charge.bind(1, jid++)
                  .bind(2, t)
                  .bind(3, c.bid_id)
                  .bind(4, c.account)
                  .bind(5, c.amount)
                  .run("recording charge"));
  }
  for (const auto& a : o.allocations)
    MORPH_TRY(alloc.bind(1, t)
                  .bind(2, a.bid_id)
                  .bind(3, a.account)
                  .bind(4, a.vm)
                  .bind(5, a.host)
                  .bind(6, resource_name(a.resource))
                  .bind(7, market::tier_name(a.tier))
                  .bind(8, a.quantity)
                  .bind(9, a.price)
                  .bind(10, a.since)
                  .bind(11, a.notice_until)
                  .run("recording allocation"));
  for (const auto& f : o.failures)
    MORPH_TRY(fail.bind(1, jid++)
                  .bind(2, t)
                  .bind(3, f.bid_id)
                  .bind(4, f.account)
                  .bind(5, market::failure_reason_name(f.reason))
                  .bind(6, f.detail)
                  .run("recording failure"));
  for (const auto& p : o.prices)
    MORPH_TRY(price.bind(1, t)
                  .bind(2, p.host)
                  .bind(3, resource_name(p.resource))
                  .bind(4, market::tier_name(p.tier))
                  .bind(5, p.price)
                  .bind(6, p.sold)
                  .run("recording price"));
  for (const auto& b : o.bid_changes) MORPH_TRY(bind_bid(bid, b));
  return tx.commit();
}

Result<Tick> SqliteLedger::last_tick() {
  Stmt q(db_, "SELECT COALESCE(MAX(tick), 0) FROM ticks");
  if (!q.ok() || !q.row()) return prep_error(db_, "last tick");
  return static_cast<Tick>(q.i64(0));
}

Result<market::MarketSnapshot> SqliteLedger::load() {
  market::MarketSnapshot s;
  MORPH_TRY_ASSIGN(s.last_tick, last_tick());
  {
    Stmt q(db_, "SELECT id, balance FROM accounts ORDER BY id");
    if (!q.ok()) return prep_error(db_, "accounts");
    while (q.row()) s.accounts.push_back({q.text(0), q.i64(1)});
  }
  {
    Stmt q(db_,
           "SELECT id, account, vm, host, resource, tier, quantity, min_fill, max_price, expiry, submitted, "
           "seq, state, state_reason FROM bids WHERE state IN ('active','suspended') ORDER BY id");
    if (!q.ok()) return prep_error(db_, "bids");
    while (q.row()) {
      MORPH_TRY_ASSIGN(auto b, bid_from_row(q));
      s.bids.push_back(std::move(b));
    }
  }
  {
    Stmt q(db_, "SELECT COALESCE(MAX(id), 0) + 1, COALESCE(MAX(seq), 0) + 1 FROM bids");
    if (!q.ok() || !q.row()) return prep_error(db_, "bid counters");
    s.next_bid_id = static_cast<market::BidId>(q.i64(0));
    s.next_seq = static_cast<uint64_t>(q.i64(1));
  }
  {
    Stmt q(db_,
           "SELECT bid_id, account, vm, host, resource, tier, quantity, price, since, notice_until "
           "FROM allocations WHERE tick = ?");
    if (!q.ok()) return prep_error(db_, "allocations");
    q.bind(1, s.last_tick);
    while (q.row()) {
      market::Allocation a;
      a.bid_id = static_cast<market::BidId>(q.i64(0));
      a.account = q.text(1);
      a.vm = q.text(2);
      a.host = q.text(3);
      auto r = market::parse_traded_resource(q.text(4));
      auto t = market::parse_tier(q.text(5));
      if (!r || !t) return Error(Errc::internal, "allocation with bad enum in ledger");
      a.resource = *r;
      a.tier = *t;
      a.quantity = q.i64(6);
      a.price = q.i64(7);
      a.since = static_cast<Tick>(q.i64(8));
      a.notice_until = static_cast<Tick>(q.i64(9));
      s.allocations.push_back(std::move(a));
    }
  }
  return s;
}

Result<AuditReport> SqliteLedger::audit() {
  AuditReport r;
  auto scalar = [&](const char* sql) -> Result<int64_t> {
    Stmt q(db_, sql);
    if (!q.ok()) return prep_error(db_, sql);
    if (!q.row()) return Error(Errc::internal, std::string("no row: ") + sql);
    return q.i64(0);
  };
  MORPH_TRY_ASSIGN(int64_t first, scalar("SELECT COALESCE(MIN(tick), 0) FROM ticks"));
  MORPH_TRY_ASSIGN(int64_t last, scalar("SELECT COALESCE(MAX(tick), 0) FROM ticks"));
  MORPH_TRY_ASSIGN(int64_t count, scalar("SELECT COUNT(*) FROM ticks"));
  r.first_tick = static_cast<Tick>(first);
  r.last_tick = static_cast<Tick>(last);
  r.tick_count = static_cast<uint64_t>(count);
  r.ticks_contiguous = count == 0 || (first == 1 && last - first + 1 == count);
  MORPH_TRY_ASSIGN(r.total_credits, scalar("SELECT COALESCE(SUM(amount), 0) FROM credits"));
  MORPH_TRY_ASSIGN(r.total_charges, scalar("SELECT COALESCE(SUM(amount), 0) FROM charges"));
  MORPH_TRY_ASSIGN(r.total_revenue, scalar("SELECT COALESCE(SUM(revenue), 0) FROM ticks"));
  MORPH_TRY_ASSIGN(r.total_balances, scalar("SELECT COALESCE(SUM(balance), 0) FROM accounts"));
  MORPH_TRY_ASSIGN(r.negative_balances, scalar("SELECT COUNT(*) FROM accounts WHERE balance < 0"));
  MORPH_TRY_ASSIGN(r.accounts_inconsistent,
                   scalar("SELECT COUNT(*) FROM accounts a WHERE a.balance != "
                          "(SELECT COALESCE(SUM(amount), 0) FROM credits c WHERE c.account = a.id) - "
                          "(SELECT COALESCE(SUM(amount), 0) FROM charges d WHERE d.account = a.id)"));
  MORPH_TRY_ASSIGN(r.ticks_revenue_mismatch,
                   scalar("SELECT COUNT(*) FROM ticks t WHERE t.revenue != "
                          "(SELECT COALESCE(SUM(amount), 0) FROM charges c WHERE c.tick = t.tick) "
                          "OR t.charge_count != (SELECT COUNT(*) FROM charges c WHERE c.tick = t.tick)"));
  // The journal is the charges, failures and credits themselves; what can go wrong is its cursor: every id
  // must be unique across the three tables.
  MORPH_TRY_ASSIGN(r.journal_mismatch,
                   scalar("SELECT COUNT(*) - COUNT(DISTINCT id) FROM (SELECT rowid AS id FROM charges"
                          " UNION ALL SELECT rowid FROM failures UNION ALL SELECT id FROM credits)"));
  return r;
}

Status SqliteLedger::put_rescue_bid(const market::Bid& bid, const RescueRecord& r) {
  if (r.bid != bid.id || r.quantity <= 0) return Error(Errc::invalid_argument, "rescue record does not match its bid");
  Transaction tx(db_);
  MORPH_TRY(tx.begin());
  MORPH_TRY(upsert_bid(bid));
  Stmt q(db_, "INSERT OR REPLACE INTO rescue_bids(bid_id, vm, signal, quantity) VALUES(?,?,?,?)");
  if (!q.ok()) return prep_error(db_, "rescue bid");
  MORPH_TRY(q.bind(1, r.bid).bind(2, r.vm).bind(3, r.signal).bind(4, r.quantity).run("recording rescue bid"));
  return tx.commit();
}

Result<std::vector<JournalEntry>> SqliteLedger::journal(const JournalQuery& jq) {
  if (!jq.kind.empty() && jq.kind != "charge" && jq.kind != "deposit" && jq.kind != "failure")
    return Error(Errc::invalid_argument, "ledger kind '" + jq.kind + "' is not one of charge, deposit, failure");
  // Newest first under the cursor, then reversed: the page ends at the newest matching entry. Each kind's
  // table is asked for its own newest `limit` (only the filters given go into its WHERE, so an account's
  // page walks charges_by_account / failures_by_account backwards), and the union is cut to `limit`.
  auto arm = [&](const char* select, const char* id, const char* tick) {
    std::string a = std::string("SELECT * FROM (") + select + " WHERE " + tick + " >= :since";
    if (!jq.account.empty()) a += " AND account = :account";
    if (jq.before_id) a += std::string(" AND ") + id + " < :before";
    return a + " ORDER BY " + id + " DESC LIMIT :limit)";
  };
  std::vector<std::string> arms;
  if (jq.kind.empty() || jq.kind == "charge")
    arms.push_back(
        arm("SELECT c.rowid AS id, c.tick, c.account, 'charge', -c.amount, c.bid_id, '', "
            "(SELECT ts_ns FROM ticks t WHERE t.tick = c.tick) FROM charges c",
            "c.rowid", "c.tick"));
  if (jq.kind.empty() || jq.kind == "failure")
    arms.push_back(
        arm("SELECT f.rowid AS id, f.tick, f.account, 'failure', 0, f.bid_id, f.reason, "
            "(SELECT ts_ns FROM ticks t WHERE t.tick = f.tick) FROM failures f",
            "f.rowid", "f.tick"));
  if (jq.kind.empty() || jq.kind == "deposit")
    arms.push_back(
        arm("SELECT id, after_tick, account, 'deposit', amount, 0, note, ts_ns FROM credits", "id", "after_tick"));
  std::string sql;
  for (const auto& a : arms) sql += (sql.empty() ? "" : " UNION ALL ") + a;
  sql += " ORDER BY 1 DESC LIMIT :limit";
  Stmt q(db_, sql.c_str());
  if (!q.ok()) return prep_error(db_, "journal query");
  q.bind_named(":since", jq.since_tick);
  if (!jq.account.empty()) q.bind_named(":account", jq.account);
  if (jq.before_id) q.bind_named(":before", jq.before_id);
  q.bind_named(":limit", int64_t{jq.limit});
  std::vector<JournalEntry> out;
  while (q.row())
    out.push_back({static_cast<uint64_t>(q.i64(0)), static_cast<Tick>(q.i64(1)), q.text(2), q.text(3), q.i64(4),
                   static_cast<market::BidId>(q.i64(5)), q.text(6), static_cast<uint64_t>(q.i64(7))});
  std::reverse(out.begin(), out.end());
  return out;
}

Status SqliteLedger::put_policy(const PolicyRecord& p) {
  Transaction tx(db_);
  MORPH_TRY(tx.begin());
  Stmt q(db_,
         "INSERT OR REPLACE INTO vm_policies(vm, account, rescue, runq_wait_permille, blk_p99_us, drops_per_s, "
         "breach_intervals, recover_intervals, cpu_step, disk_iops_step, net_kbps_step, max_price, budget_per_hour, "
         "funds_horizon_s, predictive, predictive_horizon_s, predictive_quantile_permille, updated_tick) "
         "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,(SELECT COALESCE(MAX(tick), 0) FROM ticks))");
  if (!q.ok()) return prep_error(db_, "policy");
  MORPH_TRY(q.bind(1, p.vm)
                .bind(2, p.account)
                .bind(3, int64_t{p.rescue})
                .bind(4, int64_t{p.runq_wait_permille})
                .bind(5, p.blk_p99_us)
                .bind(6, p.drops_per_s)
                .bind(7, int64_t{p.breach_intervals})
                .bind(8, int64_t{p.recover_intervals})
                .bind(9, p.cpu_step)
                .bind(10, p.disk_iops_step)
                .bind(11, p.net_kbps_step)
                .bind(12, p.max_price)
                .bind(13, p.budget_per_hour)
                .bind(14, int64_t{p.funds_horizon_s})
                .bind(15, int64_t{p.predictive})
                .bind(16, int64_t{p.predictive_horizon_s})
                .bind(17, int64_t{p.predictive_quantile_permille})
                .run("recording policy"));
  return tx.commit();
}

Status SqliteLedger::put_owner_override(const OwnerOverride& o) {
  Transaction tx(db_);
  MORPH_TRY(tx.begin());
  Stmt q(db_, "INSERT OR REPLACE INTO owner_overrides(vm, account, set_by, set_ns) VALUES(?,?,?,?)");
  if (!q.ok()) return prep_error(db_, "owner override");
  auto st = q.bind(1, o.vm)
                .bind(2, o.account)
                .bind(3, o.set_by)
                .bind(4, o.set_ns ? o.set_ns : static_cast<uint64_t>(now_ns()))
                .run("recording owner override");
  if (!st.ok()) return Error(Errc::not_found, "owner override of " + o.vm + ": " + st.error().message());
  return tx.commit();
}

Result<OperatorState> SqliteLedger::load_operator_state() {
  OperatorState s;
  {
    Stmt q(db_,
           "SELECT a.id, COALESCE(m.display_name, ''), COALESCE(m.created_ns, 0) FROM accounts a "
           "LEFT JOIN account_meta m ON m.account = a.id ORDER BY a.id");
    if (!q.ok()) return prep_error(db_, "account details");
    while (q.row()) s.accounts.push_back({q.text(0), q.text(1), static_cast<uint64_t>(q.i64(2))});
  }
  {
    Stmt q(db_,
           "SELECT vm, account, rescue, runq_wait_permille, blk_p99_us, drops_per_s, breach_intervals, "
           "recover_intervals, cpu_step, disk_iops_step, net_kbps_step, max_price, budget_per_hour, funds_horizon_s, "
           "predictive, predictive_horizon_s, predictive_quantile_permille FROM vm_policies ORDER BY vm");
    if (!q.ok()) return prep_error(db_, "policies");
    while (q.row()) {
      PolicyRecord p;
      p.vm = q.text(0);
      p.account = q.text(1);
      p.rescue = q.i64(2) != 0;
      p.runq_wait_permille = static_cast<uint32_t>(q.i64(3));
      p.blk_p99_us = static_cast<uint64_t>(q.i64(4));
      p.drops_per_s = static_cast<uint64_t>(q.i64(5));
      p.breach_intervals = static_cast<uint32_t>(q.i64(6));
      p.recover_intervals = static_cast<uint32_t>(q.i64(7));
      p.cpu_step = q.i64(8);
      p.disk_iops_step = q.i64(9);
      p.net_kbps_step = q.i64(10);
      p.max_price = q.i64(11);
      p.budget_per_hour = q.i64(12);
      p.funds_horizon_s = static_cast<uint32_t>(q.i64(13));
      p.predictive = q.i64(14) != 0;
      p.predictive_horizon_s = static_cast<uint32_t>(q.i64(15));
      p.predictive_quantile_permille = static_cast<uint32_t>(q.i64(16));
      s.policies.push_back(std::move(p));
    }
  }
  {
    Stmt q(db_, "SELECT vm, account, set_by, set_ns FROM owner_overrides ORDER BY vm");
    if (!q.ok()) return prep_error(db_, "owner overrides");
    while (q.row()) s.owners.push_back({q.text(0), q.text(1), q.text(2), static_cast<uint64_t>(q.i64(3))});
  }
  {
    Stmt q(db_,
           "SELECT r.bid_id, r.vm, r.signal, r.quantity FROM rescue_bids r JOIN bids b ON b.id = r.bid_id "
           "WHERE b.state IN ('active','suspended') ORDER BY r.bid_id");
    if (!q.ok()) return prep_error(db_, "rescue bids");
    while (q.row()) s.rescues.push_back({static_cast<market::BidId>(q.i64(0)), q.text(1), q.text(2), q.i64(3)});
  }
  return s;
}

Result<std::vector<PricePoint>> SqliteLedger::prices_since(Tick since) {
  Stmt q(
      db_,
      "SELECT tick, host, resource, tier, price, sold FROM prices WHERE tick >= ? ORDER BY tick, host, resource, tier");
  if (!q.ok()) return prep_error(db_, "prices");
  q.bind(1, since);
  std::vector<PricePoint> out;
  while (q.row()) {
    auto r = market::parse_traded_resource(q.text(2));
    auto t = market::parse_tier(q.text(3));
    if (!r || !t) return Error(Errc::internal, "price with bad enum in ledger");
    out.push_back({static_cast<Tick>(q.i64(0)), {q.text(1), *r, *t, q.i64(4), q.i64(5)}});
  }
  return out;
}

}  // namespace morph::ledger
