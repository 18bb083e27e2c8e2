#pragma once
// SqliteLedger: the embedded Ledger. One database file in WAL mode with synchronous=FULL, so a commit
// that returned is on disk and a process killed at any instant leaves either the whole tick or none of
// it. Balances carry CHECK(balance >= 0): a debit that would overdraw aborts the whole tick.
// Not thread-safe: one owner thread (the controller's tick loop) uses it.

#include <sqlite3.h>

#include <memory>
#include <string>

#include "controller/ledger/ledger.h"
#include "controller/ledger/spans.h"

namespace morph::ledger {

class SqliteLedger final : public Ledger {
 public:
  // Opens (creating if needed) the database at path and applies the schema.
  static Result<std::unique_ptr<SqliteLedger>> open(const std::string& path);
  ~SqliteLedger() override;
  SqliteLedger(const SqliteLedger&) = delete;
  SqliteLedger& operator=(const SqliteLedger&) = delete;

  Status create_account(const market::Account& account, const std::string& display_name = {},
                        uint64_t created_ns = 0) override;
  Result<CreditReceipt> credit(const std::string& account, Micros amount, const std::string& note,
                               const std::string& idempotency_key = {}) override;
  Result<std::optional<CreditReceipt>> credit_by_key(const std::string& account,
                                                     const std::string& idempotency_key) override;
  Status put_bid(const market::Bid& bid) override;
  Status commit_tick(const market::TickOutcome& outcome) override;
  Result<Tick> last_tick() override;
  Result<market::MarketSnapshot> load() override;
  Result<AuditReport> audit() override;
  Status put_rescue_bid(const market::Bid& bid, const RescueRecord& rescue) override;
  Result<std::vector<JournalEntry>> journal(const JournalQuery& query) override;
  Status put_policy(const PolicyRecord& policy) override;
  Status put_owner_override(const OwnerOverride& owner) override;
  Result<OperatorState> load_operator_state() override;
  Result<std::vector<PricePoint>> prices_since(Tick since) override;
  Result<RetentionReport> retain(const RetentionPolicy& policy) override;

  sqlite3* handle() { return db_; }  // for inspection in tests and tools

 private:
  explicit SqliteLedger(sqlite3* db) : db_(db) {}
  Status exec(const char* sql);
  Status upsert_bid(const market::Bid& bid);
  Result<int64_t> add_credit(const std::string& account, Micros amount, const std::string& note,
                             const std::string& idempotency_key = {});
  Result<int64_t> next_journal_id();
  Status copy_to_archive(const std::string& path, Tick from, Tick through);
  std::string attached_archive_;  // the archive file attached as "archive", if any
  sqlite3* db_;
  AllocationSpans spans_;  // the open allocation spans, as committed (spans.h)
};

}  // namespace morph::ledger
