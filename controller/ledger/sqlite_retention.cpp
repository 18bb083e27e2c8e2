// SqliteLedger::retain: ledger retention (docs/operations.md, "Ledger retention"), generic over the
// per-tick tables listed in kRetained.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "controller/ledger/sqlite_ledger.h"
#include "controller/ledger/sqlite_support.h"

namespace morph::ledger {
namespace {

using namespace sqlite;  // Stmt, Transaction, exec, prep_error

// A table whose rows belong to one tick (column `tick`). Summed per account when it has an account
// column, with its money column when it has one; `journal`: its rowids are journal ids (the largest is kept
// so new ids stay above every archived one). `keep`: rows to keep whatever their age (an SQL condition;
// a table written change-only, where a live row may be old, says which rows are still in force).
struct RetainedTable {
  const char* name;
  const char* account;  // nullptr: no per-account totals
  const char* amount;   // nullptr: rows are counted only
  bool journal;
  const char* keep;  // nullptr: none
};
// The tick rows last: the others refer to them. Not allocations: since issue #17 they are spans written
// only when terms change (a WITHOUT ROWID table without a tick column), no longer a per-tick growth.
constexpr RetainedTable kRetained[] = {
    {"charges", "account", "amount", true, nullptr},
    {"failures", "account", nullptr, true, nullptr},
    {"prices", nullptr, nullptr, false, nullptr},
    {"ticks", nullptr, "revenue", false, nullptr},
};

std::string rows_of(const RetainedTable& t, bool from_main = true) {
  std::string w =
      std::string(" FROM ") + (from_main ? "main." : "") + t.name + " WHERE tick > :from AND tick <= :through";
  if (t.keep) w += std::string(" AND NOT (") + t.keep + ")";
  return w;
}

// Runs `sql` over the ticks in (from, through] (its :from and :through).
Status run_range(sqlite3* db, const std::string& sql, Tick from, Tick through, const char* what) {
  Stmt q(db, sql.c_str());
  if (!q.ok()) return prep_error(db, what);
  q.bind_named(":from", from).bind_named(":through", through);
  return q.run(what);
}

}  // namespace

Status SqliteLedger::copy_to_archive(const std::string& path, Tick from, Tick through) {
  if (attached_archive_ != path) {
    if (!attached_archive_.empty()) MORPH_TRY(exec("DETACH DATABASE archive"));
    attached_archive_.clear();
    Stmt a(db_, "ATTACH DATABASE ? AS archive");
    if (!a.ok()) return prep_error(db_, "attaching the archive");
    MORPH_TRY(a.bind(1, path).run(("attaching the archive " + path).c_str()));
    attached_archive_ = path;
    MORPH_TRY(exec("PRAGMA archive.journal_mode=WAL"));
    for (const auto& t : kRetained) {
      // The archive's tables take the ledger's columns plus row_id (the rowid: a journal id for charges and
      // failures); the unique row_id makes a copy repeated after a crash harmless.
      const std::string n = t.name;
      MORPH_TRY(exec(("CREATE TABLE IF NOT EXISTS archive." + n + " AS SELECT rowid AS row_id, * FROM main." + n +
                      " WHERE 0; CREATE UNIQUE INDEX IF NOT EXISTS archive." + n + "_row_id ON " + n + "(row_id)")
                         .c_str()));
    }
  }
  // Its own transaction, committed before the ledger's rows are deleted: after a crash in between the rows
  // are in both, and the next copy skips them (row_id), so none is lost or doubled.
  Transaction tx(db_);
  MORPH_TRY(tx.begin());
  for (const auto& t : kRetained)
    MORPH_TRY(run_range(db_, "INSERT OR IGNORE INTO archive." + std::string(t.name) + " SELECT rowid, *" + rows_of(t),
                        from, through, "copying to the archive"));
  return tx.commit();
}

Result<RetentionReport> SqliteLedger::retain(const RetentionPolicy& p) {
  RetentionReport r;
  {
    Stmt q(db_, "SELECT COALESCE((SELECT through_tick FROM retention_state WHERE tbl = 'ticks'), 0)");
    if (!q.ok() || !q.row()) return prep_error(db_, "retention state");
    r.through = static_cast<Tick>(q.i64(0));
  }
  if (p.keep_ticks == 0) return r;
  MORPH_TRY_ASSIGN(const Tick last, last_tick());
  if (last <= p.keep_ticks || last - p.keep_ticks <= r.through) return r;
  const Tick from = r.through;
  const Tick through = std::min(last - p.keep_ticks, from + std::max<Tick>(p.batch_ticks, 1));
  if (!p.archive_path.empty()) MORPH_TRY(copy_to_archive(p.archive_path, from, through));

  Transaction tx(db_);
  MORPH_TRY(tx.begin());
  for (const auto& t : kRetained) {
    const std::string amount = t.amount ? std::string("COALESCE(SUM(") + t.amount + "), 0)" : "0";
    if (t.account)
      MORPH_TRY(run_range(db_,
                          "INSERT INTO archived_totals(account, tbl, rows, amount) SELECT " + std::string(t.account) +
                              ", '" + t.name + "', COUNT(*), " + amount + rows_of(t) + " GROUP BY " + t.account +
                              " ON CONFLICT(account, tbl) DO UPDATE SET rows = rows + excluded.rows, amount = amount "
                              "+ excluded.amount",
                          from, through, "summing archived rows per account"));
    MORPH_TRY(run_range(db_,
                        "INSERT INTO retention_state(tbl, through_tick, rows, amount, max_id) SELECT '" +
                            std::string(t.name) + "', :through, COUNT(*), " + amount + ", " +
                            (t.journal ? "COALESCE(MAX(rowid), 0)" : "0") + rows_of(t) +
                            " ON CONFLICT(tbl) DO UPDATE SET through_tick = excluded.through_tick, rows = rows + "
                            "excluded.rows, amount = amount + excluded.amount, max_id = MAX(max_id, excluded.max_id)",
                        from, through, "summing archived rows"));
    MORPH_TRY(run_range(db_, "DELETE" + rows_of(t, false), from, through, "deleting archived rows"));
    r.rows += static_cast<uint64_t>(sqlite3_changes(db_));
  }
  MORPH_TRY(tx.commit());
  r.through = through;
  return r;
}

}  // namespace morph::ledger
