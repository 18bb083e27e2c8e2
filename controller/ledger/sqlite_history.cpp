// SqliteLedger's reads of committed history: the journal `morphctl ledger show` pages through (charges,
// failures and deposits) and the cleared prices since a tick. Read only: nothing here writes the file.
#include <algorithm>

#include "controller/ledger/sqlite_ledger.h"
#include "controller/ledger/sqlite_support.h"

namespace morph::ledger {

using sqlite::prep_error;
using sqlite::Stmt;

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
