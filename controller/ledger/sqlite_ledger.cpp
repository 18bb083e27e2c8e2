#include "controller/ledger/sqlite_ledger.h"

#include <spdlog/spdlog.h>

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
  after_tick INTEGER NOT NULL
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
  committed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
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
CREATE TABLE IF NOT EXISTS prices(
  tick INTEGER NOT NULL REFERENCES ticks(tick),
  host TEXT NOT NULL,
  resource TEXT NOT NULL,
  tier TEXT NOT NULL,
  price INTEGER NOT NULL,
  sold INTEGER NOT NULL,
  PRIMARY KEY (tick, host, resource, tier)
);
)sql";

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
  Stmt& bind(int i, int64_t v) { sqlite3_bind_int64(s_, i, v); return *this; }
  Stmt& bind(int i, uint64_t v) { sqlite3_bind_int64(s_, i, static_cast<int64_t>(v)); return *this; }
  Stmt& bind(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, const char* v) { sqlite3_bind_text(s_, i, v, -1, SQLITE_STATIC); return *this; }
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
  auto r = market::parse_resource(q.text(4));
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
    << " inconsistent_accounts=" << accounts_inconsistent << " tick_revenue_mismatch=" << ticks_revenue_mismatch;
  return o.str();
}

Result<std::unique_ptr<SqliteLedger>> SqliteLedger::open(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
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
  MORPH_TRY(l->exec(kSchema));
  Stmt q(db, "PRAGMA journal_mode");
  if (!q.ok() || !q.row() || q.text(0) != "wal")
    return Error(Errc::io, "ledger " + path + ": WAL mode not available");
  return l;
}

SqliteLedger::~SqliteLedger() { sqlite3_close(db_); }

Status SqliteLedger::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    return Error(Errc::io, std::string("ledger: ") + msg);
  }
  return {};
}

Status SqliteLedger::create_account(const market::Account& a) {
  if (a.balance < 0) return Error(Errc::invalid_argument, "account " + a.id + ": negative opening balance");
  Transaction tx(db_);
  MORPH_TRY(tx.begin());
  Stmt ins(db_, "INSERT INTO accounts(id, balance) VALUES(?, 0)");
  if (!ins.ok()) return prep_error(db_, "account insert");
  auto st = ins.bind(1, a.id).run("creating account");
  if (!st.ok()) return Error(Errc::already_exists, "account " + a.id + ": " + st.error().message());
  if (a.balance > 0) MORPH_TRY(add_credit(a.id, a.balance, "opening balance"));
  return tx.commit();
}

Status SqliteLedger::add_credit(const std::string& account, Micros amount, const std::string& note) {
  Stmt up(db_, "UPDATE accounts SET balance = balance + ? WHERE id = ?");
  Stmt ins(db_, "INSERT INTO credits(account, amount, note, after_tick) "
                "VALUES(?, ?, ?, (SELECT COALESCE(MAX(tick), 0) FROM ticks))");
  if (!up.ok() || !ins.ok()) return prep_error(db_, "credit");
  MORPH_TRY(up.bind(1, amount).bind(2, account).run("crediting"));
  if (sqlite3_changes(db_) != 1) return Error(Errc::not_found, "unknown account " + account);
  return ins.bind(1, account).bind(2, amount).bind(3, note).run("recording credit");
}

Status SqliteLedger::credit(const std::string& account, Micros amount, const std::string& note) {
  if (amount <= 0) return Error(Errc::invalid_argument, "a credit must be positive");
  Transaction tx(db_);
  MORPH_TRY(tx.begin());
  MORPH_TRY(add_credit(account, amount, note));
  // Same rule as Market::credit, in the same transaction: a credit lifts funds suspensions.
  Stmt lift(db_, "UPDATE bids SET state = 'active', state_reason = 'none' "
                 "WHERE account = ? AND state = 'suspended'");
  if (!lift.ok()) return prep_error(db_, "lifting suspensions");
  MORPH_TRY(lift.bind(1, account).run("lifting suspensions"));
  return tx.commit();
}

Status SqliteLedger::upsert_bid(const market::Bid& b) {
  Stmt q(db_,
         "INSERT INTO bids(id, account, vm, host, resource, tier, quantity, min_fill, max_price, expiry, "
         "submitted, seq, state, state_reason) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
         "ON CONFLICT(id) DO UPDATE SET quantity=excluded.quantity, min_fill=excluded.min_fill, "
         "max_price=excluded.max_price, expiry=excluded.expiry, seq=excluded.seq, state=excluded.state, "
         "state_reason=excluded.state_reason");
  if (!q.ok()) return prep_error(db_, "bid upsert");
  return q.bind(1, b.id).bind(2, b.account).bind(3, b.vm).bind(4, b.host)
      .bind(5, market::resource_name(b.resource)).bind(6, market::tier_name(b.tier))
      .bind(7, b.quantity).bind(8, b.min_fill).bind(9, b.max_price).bind(10, b.expiry)
      .bind(11, b.submitted).bind(12, b.seq).bind(13, market::bid_state_name(b.state))
      .bind(14, market::failure_reason_name(b.state_reason))
      .run("recording bid");
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
    return Error(Errc::conflict, "tick " + std::to_string(o.tick) + " refused: last committed tick is " +
                                     std::to_string(last));
  Micros sum = 0;
  for (const auto& c : o.charges) sum += c.amount;
  if (sum != o.revenue)
    return Error(Errc::internal, "tick " + std::to_string(o.tick) + ": revenue != sum of charges");

  Stmt tick(db_, "INSERT INTO ticks(tick, revenue, charge_count, allocation_count, failure_count) VALUES(?,?,?,?,?)");
  Stmt debit(db_, "UPDATE accounts SET balance = balance - ? WHERE id = ?");
  Stmt charge(db_, "INSERT INTO charges(tick, bid_id, account, amount) VALUES(?,?,?,?)");
  Stmt alloc(db_, "INSERT INTO allocations(tick, bid_id, account, vm, host, resource, tier, quantity, price, since, "
                  "notice_until) VALUES(?,?,?,?,?,?,?,?,?,?,?)");
  Stmt fail(db_, "INSERT INTO failures(tick, bid_id, account, reason, detail) VALUES(?,?,?,?,?)");
  Stmt price(db_, "INSERT INTO prices(tick, host, resource, tier, price, sold) VALUES(?,?,?,?,?,?)");
  if (!tick.ok() || !debit.ok() || !charge.ok() || !alloc.ok() || !fail.ok() || !price.ok())
    return prep_error(db_, "tick statements");

  const int64_t t = static_cast<int64_t>(o.tick);
  MORPH_TRY(tick.bind(1, t).bind(2, o.revenue).bind(3, static_cast<int64_t>(o.charges.size()))
                .bind(4, static_cast<int64_t>(o.allocations.size())).bind(5, static_cast<int64_t>(o.failures.size()))
                .run("recording tick"));
  for (const auto& c : o.charges) {
    auto st = debit.bind(1, c.amount).bind(2, c.account).run("debiting");
    if (!st.ok())  // CHECK(balance >= 0): the whole tick is refused, never a partial one
      return Error(Errc::insufficient_funds, "tick " + std::to_string(o.tick) + ": account " + c.account +
                                                 " cannot pay " + std::to_string(c.amount) + ": " + st.error().message());
    if (sqlite3_changes(db_) != 1) return Error(Errc::not_found, "tick charges unknown account " + c.account);
    MORPH_TRY(charge.bind(1, t).bind(2, c.bid_id).bind(3, c.account).bind(4, c.amount).run("recording charge"));
  }
  for (const auto& a : o.allocations)
    MORPH_TRY(alloc.bind(1, t).bind(2, a.bid_id).bind(3, a.account).bind(4, a.vm).bind(5, a.host)
                  .bind(6, market::resource_name(a.resource)).bind(7, market::tier_name(a.tier))
                  .bind(8, a.quantity).bind(9, a.price).bind(10, a.since).bind(11, a.notice_until)
                  .run("recording allocation"));
  for (const auto& f : o.failures)
    MORPH_TRY(fail.bind(1, t).bind(2, f.bid_id).bind(3, f.account).bind(4, market::failure_reason_name(f.reason))
                  .bind(5, f.detail).run("recording failure"));
  for (const auto& p : o.prices)
    MORPH_TRY(price.bind(1, t).bind(2, p.host).bind(3, market::resource_name(p.resource))
                  .bind(4, market::tier_name(p.tier)).bind(5, p.price).bind(6, p.sold).run("recording price"));
  for (const auto& b : o.bid_changes) MORPH_TRY(upsert_bid(b));
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
    Stmt q(db_, "SELECT id, account, vm, host, resource, tier, quantity, min_fill, max_price, expiry, submitted, "
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
    Stmt q(db_, "SELECT bid_id, account, vm, host, resource, tier, quantity, price, since, notice_until "
                "FROM allocations WHERE tick = ?");
    if (!q.ok()) return prep_error(db_, "allocations");
    q.bind(1, s.last_tick);
    while (q.row()) {
      market::Allocation a;
      a.bid_id = static_cast<market::BidId>(q.i64(0));
      a.account = q.text(1);
      a.vm = q.text(2);
      a.host = q.text(3);
      auto r = market::parse_resource(q.text(4));
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
  return r;
}

}  // namespace morph::ledger
