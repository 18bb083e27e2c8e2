#pragma once
// The SQLite ledger's allocation spans (spans.h: one row per stretch of ticks an allocation held on
// unchanged terms): the table, bringing a file of per-tick snapshots to it, reading the open spans, and
// writing one tick's changes inside the caller's transaction. Never decides what changed (AllocationSpans
// does) and never begins or commits a transaction.

#include <sqlite3.h>

#include <vector>

#include "common/error.h"
#include "controller/ledger/spans.h"
#include "controller/market/types.h"

namespace morph::ledger::sqlite {

// The table of a new file (the per-tick snapshot table of older files is converted by to_spans).
extern const char* const kAllocationSpansTable;

// Converts an `allocations` table of per-tick snapshots (schema 2 and older: one row per tick and bid) into
// spans, in the caller's transaction: each run of consecutive ticks in which a bid held the same terms becomes
// one span, open if the run reaches the last committed tick. Does nothing to a table already of spans.
// Creates the index of the open spans either way. Returns whether it converted anything.
Result<bool> to_spans(sqlite3* db);

// The allocations in force after the last committed tick (the open spans), as allocations and as spans.
Status read_open_spans(sqlite3* db, std::vector<market::Allocation>* allocations,
                       std::vector<AllocationSpans::Open>* spans);

// Closes the spans that ended at changes.tick - 1 and opens those from changes.tick.
Status write_span_changes(sqlite3* db, const AllocationChanges& changes);

}  // namespace morph::ledger::sqlite
