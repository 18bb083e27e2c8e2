#include "controller/ledger/sqlite_allocations.h"

#include <string>

#include "controller/ledger/sqlite_support.h"

namespace morph::ledger::sqlite {

// No foreign key from from_tick to ticks: a span open since a tick that retention has archived still holds.
// WITHOUT ROWID: the primary key is the row's only address (closing a span looks it up by it).
const char* const kAllocationSpansTable = R"sql(
CREATE TABLE IF NOT EXISTS allocations(
  bid_id INTEGER NOT NULL,
  from_tick INTEGER NOT NULL,
  to_tick INTEGER,
  account TEXT NOT NULL,
  vm TEXT NOT NULL,
  host TEXT NOT NULL,
  resource TEXT NOT NULL,
  tier TEXT NOT NULL,
  quantity INTEGER NOT NULL CHECK (quantity > 0),
  price INTEGER NOT NULL CHECK (price >= 0),
  since INTEGER NOT NULL,
  notice_until INTEGER NOT NULL,
  PRIMARY KEY (bid_id, from_tick),
  CHECK (to_tick IS NULL OR to_tick >= from_tick)
) WITHOUT ROWID;
)sql";

namespace {

// What a restart reads: only the open spans, through their own (partial) index.
constexpr const char* kOpenIndex =
    "CREATE INDEX IF NOT EXISTS allocations_open ON allocations(bid_id) WHERE to_tick IS NULL";

constexpr const char* kTerms = "account, vm, host, resource, tier, quantity, price, since, notice_until";

}  // namespace

Result<bool> to_spans(sqlite3* db) {
  bool snapshots = false;
  {
    Stmt q(db, "SELECT COUNT(*) FROM pragma_table_info('allocations') WHERE name = 'tick'");
    if (!q.ok() || !q.row()) return prep_error(db, "allocations layout");
    snapshots = q.i64(0) > 0;
  }
  if (snapshots) {
    // Gaps and islands: within one bid's rows of identical terms, tick - ROW_NUMBER() is constant exactly over
    // a run of consecutive ticks.
    const std::string t = kTerms;
    MORPH_TRY(exec(db, ("ALTER TABLE allocations RENAME TO allocations_by_tick;" + std::string(kAllocationSpansTable) +
                        "INSERT INTO allocations(bid_id, from_tick, to_tick, " + t +
                        ") SELECT bid_id, MIN(tick), CASE WHEN MAX(tick) = (SELECT MAX(tick) FROM ticks) THEN NULL "
                        "ELSE MAX(tick) END, " +
                        t + " FROM (SELECT *, tick - ROW_NUMBER() OVER (PARTITION BY bid_id, " + t +
                        " ORDER BY tick) AS run FROM allocations_by_tick) GROUP BY bid_id, run, " + t +
                        ";"
                        "DROP TABLE allocations_by_tick;")
                           .c_str()));
  }
  MORPH_TRY(exec(db, kOpenIndex));
  return snapshots;
}

Status read_open_spans(sqlite3* db, std::vector<market::Allocation>* allocations,
                       std::vector<AllocationSpans::Open>* spans) {
  Stmt q(db,
         "SELECT bid_id, from_tick, account, vm, host, resource, tier, quantity, price, since, notice_until "
         "FROM allocations WHERE to_tick IS NULL ORDER BY bid_id");
  if (!q.ok()) return prep_error(db, "allocations");
  while (q.row()) {
    market::Allocation a;
    a.bid_id = static_cast<market::BidId>(q.i64(0));
    if (!read_placement(q, 2, a))
      return Error(Errc::internal, "allocation of bid " + std::to_string(a.bid_id) + ": bad enum in ledger");
    a.quantity = q.i64(7);
    a.price = q.i64(8);
    a.since = static_cast<market::Tick>(q.i64(9));
    a.notice_until = static_cast<market::Tick>(q.i64(10));
    if (spans) spans->push_back({a.bid_id, static_cast<market::Tick>(q.i64(1)), allocation_terms(a)});
    if (allocations) allocations->push_back(std::move(a));
  }
  return {};
}

Status write_span_changes(sqlite3* db, const AllocationChanges& c) {
  Stmt close(db, "UPDATE allocations SET to_tick = ? WHERE bid_id = ? AND from_tick = ? AND to_tick IS NULL");
  Stmt open(db,
            "INSERT INTO allocations(bid_id, from_tick, account, vm, host, resource, tier, quantity, price, since, "
            "notice_until) VALUES(?,?,?,?,?,?,?,?,?,?,?)");
  if (!close.ok() || !open.ok()) return prep_error(db, "allocation statements");
  const auto t = static_cast<int64_t>(c.tick);
  for (const AllocationSpans::Open& s : c.closed) {
    MORPH_TRY(close.bind(1, t - 1).bind(2, s.key).bind(3, s.from).run("closing an allocation"));
    // The open spans kept in memory are the ledger's own; a mismatch means the file changed under it.
    if (sqlite3_changes(db) != 1)
      return Error(Errc::internal, "tick " + std::to_string(c.tick) + ": the allocation of bid " +
                                       std::to_string(s.key) + " from tick " + std::to_string(s.from) +
                                       " is not open in the ledger");
  }
  for (const market::Allocation* a : c.opened)
    MORPH_TRY(open.bind(1, a->bid_id)
                  .bind(2, t)
                  .bind(3, a->account)
                  .bind(4, a->vm)
                  .bind(5, a->host)
                  .bind(6, resource_name(a->resource))
                  .bind(7, market::tier_name(a->tier))
                  .bind(8, a->quantity)
                  .bind(9, a->price)
                  .bind(10, a->since)
                  .bind(11, a->notice_until)
                  .run("recording allocation"));
  return {};
}

}  // namespace morph::ledger::sqlite
