#pragma once
// The SQLite helpers of the ledger's own files (not a public header): a prepared statement that finalizes
// itself, a transaction that rolls back unless committed, and the errors they raise; and the one reading of
// the placement columns bid and allocation rows share. Nothing here knows the ledger's tables.

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "common/error.h"
#include "controller/market/types.h"

namespace morph::ledger::sqlite {

inline int64_t now_ns() {
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

inline Error prep_error(sqlite3* db, const char* what) {
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

// Runs statements that return no rows.
inline Status exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db);
    sqlite3_free(err);
    return Error(Errc::io, std::string("ledger: ") + msg);
  }
  return {};
}

// A bid's or an allocation's placement (account, vm, host, resource, tier) from columns at..at+4 of q's row;
// false if the resource or tier is not one this version knows.
template <class Row>
bool read_placement(Stmt& q, int at, Row& row) {
  row.account = q.text(at);
  row.vm = q.text(at + 1);
  row.host = q.text(at + 2);
  auto r = market::parse_traded_resource(q.text(at + 3));
  auto t = market::parse_tier(q.text(at + 4));
  if (!r || !t) return false;
  row.resource = *r;
  row.tier = *t;
  return true;
}

}  // namespace morph::ledger::sqlite
