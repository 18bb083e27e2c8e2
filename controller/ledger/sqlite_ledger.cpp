#include "controller/ledger/sqlite_ledger.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <sstream>
#include <string_view>
#include <unordered_map>

#include "controller/ledger/sqlite_allocations.h"
#include "controller/ledger/sqlite_schema.h"
#include "controller/ledger/sqlite_support.h"
#include "controller/market/money.h"

namespace morph::ledger {
namespace {

using sqlite::now_ns;
using sqlite::prep_error;
using sqlite::Stmt;
using sqlite::Transaction;

Result<market::Bid> bid_from_row(Stmt& q) {
  market::Bid b;
  b.id = static_cast<market::BidId>(q.i64(0));
  auto st = market::parse_bid_state(q.text(12));
  auto why = market::parse_failure_reason(q.text(13));
  if (!sqlite::read_placement(q, 1, b) || !st || !why)
    return Error(Errc::internal, "bid " + std::to_string(b.id) + ": bad enum in ledger");
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
    << " journal_mismatch=" << journal_mismatch << " archived_through=" << archived_through;
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
  // A tick of 100k allocations dirties tens of MB of table and index pages; with SQLite's 2 MiB default
  // cache they spill and are re-read within the one transaction (commit 1.2-1.6x slower at 100k-300k,
  // docs/benchmarks.md "Ledger commit per tick"). 64 MiB is a ceiling, allocated only as pages are used.
  MORPH_TRY(l->exec("PRAGMA cache_size=-65536"));
  MORPH_TRY(apply_schema(db));  // before foreign keys are enforced: a migration may rebuild a table
  MORPH_TRY(l->exec("PRAGMA foreign_keys=ON"));
  Stmt q(db, "PRAGMA journal_mode");
  if (!q.ok() || !q.row() || q.text(0) != "wal") return Error(Errc::io, "ledger " + path + ": WAL mode not available");
  return l;
}

SqliteLedger::~SqliteLedger() {
  sqlite3_close(db_);
}

// The next journal id: one past the largest of charges, failures and credits (each an index's last key).
Result<int64_t> SqliteLedger::next_journal_id() {
  Stmt q(db_,
         "SELECT MAX(COALESCE((SELECT MAX(rowid) FROM charges), 0), COALESCE((SELECT MAX(rowid) FROM failures), 0),"
         " COALESCE((SELECT MAX(id) FROM credits), 0), COALESCE((SELECT MAX(max_id) FROM retention_state), 0)) + 1");
  if (!q.ok() || !q.row()) return prep_error(db_, "journal id");
  return q.i64(0);
}

Status SqliteLedger::exec(const char* sql) {
  return sqlite::exec(db_, sql);
}

Status SqliteLedger::create_account(const market::Account& a, const std::string& display_name, uint64_t created_ns) {
  if (a.balance < 0) return Error(Errc::invalid_argument, "account " + a.id + ": negative opening balance");
  Transaction tx(db_);
  MORPH_TRY(tx.begin());
  Stmt ins(db_, "INSERT INTO accounts(id, balance) VALUES(?, 0)");
  if (!ins.ok()) return prep_error(db_, "account insert");
  auto st = ins.bind(1, a.id).run("creating account");
  if (!st.ok()) return Error(Errc::already_exists, "account " + a.id + ": " + st.error().message());
  if (a.balance > 0) MORPH_TRY(add_credit(a.id, a.balance, "opening balance"));  // (the entry is not needed)
  Stmt meta(db_, "INSERT INTO account_meta(account, display_name, created_ns) VALUES(?, ?, ?)");
  if (!meta.ok()) return prep_error(db_, "account details");
  MORPH_TRY(meta.bind(1, a.id)
                .bind(2, display_name)
                .bind(3, created_ns ? created_ns : static_cast<uint64_t>(now_ns()))
                .run("recording account details"));
  return tx.commit();
}

Result<int64_t> SqliteLedger::add_credit(const std::string& account, Micros amount, const std::string& note,
                                         const std::string& idempotency_key) {
  // The money bounds (docs/market.md): a balance stays within kMaxBalance, and every credit ever made sums
  // within int64, so every SUM the audit takes fits (charges never exceed the credits that paid them).
  {
    Stmt q(db_, "SELECT balance, (SELECT COALESCE(SUM(amount), 0) FROM credits) FROM accounts WHERE id = ?");
    if (!q.ok()) return prep_error(db_, "credit bounds");
    q.bind(1, account);
    if (!q.row()) return Error(Errc::not_found, "unknown account " + account);
    const Micros balance = q.i64(0), credited = q.i64(1);
    if (amount > market::kMaxBalance - balance)
      return Error(Errc::invalid_argument, "a credit of " + std::to_string(amount) + " to account " + account +
                                               " (balance " + std::to_string(balance) +
                                               ") would exceed the balance bound " +
                                               std::to_string(market::kMaxBalance) + " ucredits");
    if (!market::checked_add(credited, amount))
      return Error(Errc::invalid_argument,
                   "a credit of " + std::to_string(amount) + " would take the ledger's credits ever made past int64");
  }
  Stmt up(db_, "UPDATE accounts SET balance = balance + ? WHERE id = ?");
  Stmt ins(db_,
           "INSERT INTO credits(id, account, amount, note, after_tick, ts_ns, idempotency_key) "
           "VALUES(?, ?, ?, ?, (SELECT COALESCE(MAX(tick), 0) FROM ticks), ?, NULLIF(?, ''))");
  if (!up.ok() || !ins.ok()) return prep_error(db_, "credit");
  MORPH_TRY(up.bind(1, amount).bind(2, account).run("crediting"));
  if (sqlite3_changes(db_) != 1) return Error(Errc::not_found, "unknown account " + account);
  MORPH_TRY_ASSIGN(int64_t id, next_journal_id());
  MORPH_TRY(ins.bind(1, id)
                .bind(2, account)
                .bind(3, amount)
                .bind(4, note)
                .bind(5, now_ns())
                .bind(6, idempotency_key)
                .run("recording credit"));
  return id;
}

Result<std::optional<CreditReceipt>> SqliteLedger::credit_by_key(const std::string& account,
                                                                 const std::string& idempotency_key) {
  if (idempotency_key.empty()) return std::optional<CreditReceipt>{};
  Stmt q(db_, "SELECT id, amount FROM credits WHERE account = ? AND idempotency_key = ?");
  if (!q.ok()) return prep_error(db_, "credit by key");
  q.bind(1, account).bind(2, idempotency_key);
  if (!q.row()) return std::optional<CreditReceipt>{};
  return std::optional<CreditReceipt>{CreditReceipt{static_cast<uint64_t>(q.i64(0)), q.i64(1), true}};
}

Result<CreditReceipt> SqliteLedger::credit(const std::string& account, Micros amount, const std::string& note,
                                           const std::string& idempotency_key) {
  if (amount <= 0) return Error(Errc::invalid_argument, "a credit must be positive");
  Transaction tx(db_);
  MORPH_TRY(tx.begin());
  // Looked up inside the transaction, so two writers cannot both miss it (the unique index backs this up).
  MORPH_TRY_ASSIGN(auto prior, credit_by_key(account, idempotency_key));
  if (prior) {
    if (prior->amount != amount)
      return Error(Errc::conflict, "idempotency key " + idempotency_key + " was used for a deposit of " +
                                       std::to_string(prior->amount) + " to account " + account + " (ledger entry " +
                                       std::to_string(prior->entry) + "), not " + std::to_string(amount));
    return *prior;
  }
  MORPH_TRY_ASSIGN(const int64_t entry, add_credit(account, amount, note, idempotency_key));
  // Same rule as Market::credit, in the same transaction: a credit lifts funds suspensions.
  Stmt lift(db_,
            "UPDATE bids SET state = 'active', state_reason = 'none' "
            "WHERE account = ? AND state = 'suspended'");
  if (!lift.ok()) return prep_error(db_, "lifting suspensions");
  MORPH_TRY(lift.bind(1, account).run("lifting suspensions"));
  MORPH_TRY(tx.commit());
  return CreditReceipt{static_cast<uint64_t>(entry), amount, false};
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
  for (const auto& c : o.charges) sum = market::saturating_add(sum, c.amount);
  if (sum != o.revenue) return Error(Errc::internal, "tick " + std::to_string(o.tick) + ": revenue != sum of charges");
  if (!spans_.known()) {  // the first commit after open, or after one whose outcome was unknown
    std::vector<AllocationSpans::Open> open;
    MORPH_TRY(sqlite::read_open_spans(db_, nullptr, &open));
    spans_.reset(std::move(open));
  }
  MORPH_TRY_ASSIGN(AllocationChanges changes,
                   spans_.diff(o.tick, o.allocations, allocation_key, allocation_terms, "allocation"));

  Stmt tick(db_,
            "INSERT INTO ticks(tick, revenue, charge_count, allocation_count, failure_count, ts_ns) "
            "VALUES(?,?,?,?,?,?)");
  Stmt debit(db_, "UPDATE accounts SET balance = balance - ? WHERE id = ?");
  // Charges and failures take their journal ids (rowids) from the shared sequence, in commit order.
  Stmt charge(db_, "INSERT INTO charges(rowid, tick, bid_id, account, amount) VALUES(?,?,?,?,?)");
  Stmt fail(db_, "INSERT INTO failures(rowid, tick, bid_id, account, reason, detail) VALUES(?,?,?,?,?,?)");
  Stmt price(db_, "INSERT INTO prices(tick, host, resource, tier, price, sold) VALUES(?,?,?,?,?,?)");
  Stmt bid(db_, kBidUpsert);
  if (!tick.ok() || !debit.ok() || !charge.ok() || !fail.ok() || !price.ok() || !bid.ok())
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
  // One debit per account, not per charge: all debits of a tick land in one transaction, so the total is
  // what CHECK(balance >= 0) must allow (a few hundred updates instead of one per allocation).
  std::unordered_map<std::string_view, Micros> due;
  for (const auto& c : o.charges) {
    due[c.account] += c.amount;
    MORPH_TRY(charge.bind(1, jid++)
                  .bind(2, t)
                  .bind(3, c.bid_id)
                  .bind(4, c.account)
                  .bind(5, c.amount)
                  .run("recording charge"));
  }
  for (const auto& [account, amount] : due) {
    const std::string name(account);
    auto st = debit.bind(1, amount).bind(2, name).run("debiting");
    if (!st.ok())  // CHECK(balance >= 0): the whole tick is refused, never a partial one
      return Error(Errc::insufficient_funds, "tick " + std::to_string(o.tick) + ": account " + name + " cannot pay " +
                                                 std::to_string(amount) + ": " + st.error().message());
    if (sqlite3_changes(db_) != 1) return Error(Errc::not_found, "tick charges unknown account " + name);
  }
  MORPH_TRY(sqlite::write_span_changes(db_, changes));
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
  if (auto st = tx.commit(); !st) {
    spans_.forget();  // whatever happened to the file, the next commit reads the open spans from it
    return st;
  }
  spans_.committed(std::move(changes));
  return {};
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
  // The allocations in force after the last tick: the open spans. Kept as the spans a next commit tells its
  // allocations apart against (the same rows, read once).
  std::vector<AllocationSpans::Open> open;
  MORPH_TRY(sqlite::read_open_spans(db_, &s.allocations, &open));
  spans_.reset(std::move(open));
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
  // Archived ticks (retention) count by their sums: the ticks left start right after them.
  MORPH_TRY_ASSIGN(int64_t archived,
                   scalar("SELECT COALESCE((SELECT through_tick FROM retention_state WHERE tbl = 'ticks'), 0)"));
  r.archived_through = static_cast<Tick>(archived);
  r.ticks_contiguous = count == 0 || (first == archived + 1 && last - first + 1 == count);
  MORPH_TRY_ASSIGN(r.total_credits, scalar("SELECT COALESCE(SUM(amount), 0) FROM credits"));
  MORPH_TRY_ASSIGN(r.total_charges,
                   scalar("SELECT COALESCE(SUM(amount), 0) + (SELECT COALESCE(SUM(amount), 0) FROM retention_state "
                          "WHERE tbl = 'charges') FROM charges"));
  MORPH_TRY_ASSIGN(r.total_revenue,
                   scalar("SELECT COALESCE(SUM(revenue), 0) + (SELECT COALESCE(SUM(amount), 0) FROM retention_state "
                          "WHERE tbl = 'ticks') FROM ticks"));
  MORPH_TRY_ASSIGN(r.total_balances, scalar("SELECT COALESCE(SUM(balance), 0) FROM accounts"));
  MORPH_TRY_ASSIGN(r.negative_balances, scalar("SELECT COUNT(*) FROM accounts WHERE balance < 0"));
  MORPH_TRY_ASSIGN(r.accounts_inconsistent,
                   scalar("SELECT COUNT(*) FROM accounts a WHERE a.balance != "
                          "(SELECT COALESCE(SUM(amount), 0) FROM credits c WHERE c.account = a.id) - "
                          "(SELECT COALESCE(SUM(amount), 0) FROM charges d WHERE d.account = a.id) - "
                          "(SELECT COALESCE(SUM(amount), 0) FROM archived_totals x WHERE x.account = a.id AND "
                          "x.tbl = 'charges')"));
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
}  // namespace morph::ledger
