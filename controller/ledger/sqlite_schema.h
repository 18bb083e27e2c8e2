#pragma once
// The SQLite ledger's schema and its migrations: creates the tables of a new file, and brings a file written
// by an older version to the current schema, once, on open (PRAGMA user_version). The tables and each
// version's change are described in docs/market.md, "The ledger". Never reads or writes ledger rows
// outside a migration.

#include <sqlite3.h>

#include "common/error.h"

namespace morph::ledger {

Status apply_schema(sqlite3* db);

}  // namespace morph::ledger
