#pragma once
// Ledger: the durable record of the market — accounts and their credits, bids, and per tick the
// charges, allocations, failures and prices, each tick in exactly one transaction keyed by its tick
// number. A tick is either wholly committed or absent; committing a tick number twice is refused
// (Errc::conflict), which is what makes a restarted or killed controller never charge twice.
//
// The interface is what a PostgreSQL backend implements for multi-controller deployments; SqliteLedger
// is the embedded one. A ledger never decides anything about the market: it records outcomes.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "controller/market/market.h"
#include "controller/market/types.h"

namespace morph::ledger {

using market::Micros;
using market::Tick;

// The invariants a ledger must hold, as measured on its stored data.
struct AuditReport {
  Tick first_tick = 0, last_tick = 0;
  uint64_t tick_count = 0;
  bool ticks_contiguous = true;  // every tick number first..last present exactly once
  Micros total_credits = 0;      // sum of all credits (initial funding included)
  Micros total_charges = 0;      // sum of all debits
  Micros total_revenue = 0;      // sum of the per-tick revenue recorded with each tick
  Micros total_balances = 0;
  int64_t negative_balances = 0;
  int64_t accounts_inconsistent = 0;   // accounts where credits - charges != balance
  int64_t ticks_revenue_mismatch = 0;  // ticks whose recorded revenue != sum of their charges
  int64_t journal_mismatch = 0;        // journal ids (the paging cursor) shared by two charges/failures/credits
  Tick archived_through = 0;           // retention: ticks up to this one are archived (their sums kept)

  bool ok() const {
    return ticks_contiguous && total_charges == total_revenue && negative_balances == 0 && accounts_inconsistent == 0 &&
           ticks_revenue_mismatch == 0 && journal_mismatch == 0 && total_credits - total_charges == total_balances;
  }
  std::string describe() const;
};

// One row of the ledger's journal: what `morphctl ledger show` lists. It is the committed charge, failure or
// credit itself (no second copy), so it is exactly the committed history.
struct JournalEntry {
  uint64_t id = 0;  // increasing; the paging cursor
  Tick tick = 0;    // the tick charged, or for a deposit the last tick committed before it
  std::string account;
  std::string kind;   // "charge", "deposit", "failure"
  Micros amount = 0;  // signed: charges are negative, failures 0
  market::BidId bid = 0;
  std::string reason;  // failure reason, or a deposit's reference
  uint64_t ts_ns = 0;  // wall clock at commit
};
struct JournalQuery {
  std::string account;     // empty: every account
  Tick since_tick = 0;     // only ticks >= this
  std::string kind;        // empty: every kind
  uint64_t before_id = 0;  // paging: only entries older than this id (0: from the newest)
  uint32_t limit = 100;    // the newest `limit` matching entries, returned oldest first
};

// A credit as recorded: its journal entry. `replayed`: the credit had been made before with the same
// idempotency key and amount, and was not made again.
struct CreditReceipt {
  uint64_t entry = 0;
  Micros amount = 0;
  bool replayed = false;
};

// Operator state that is not money but must survive a restart: account details, per-VM SLA/rescue
// policies, admin owner overrides and the rescue bids the controller raised (so a restarted controller
// still knows them as rescues and retires them on recovery).
struct AccountMeta {
  std::string account, display_name;
  uint64_t created_ns = 0;
};
struct PolicyRecord {
  std::string vm, account;
  bool rescue = false;
  uint32_t runq_wait_permille = 0;
  uint64_t blk_p99_us = 0, drops_per_s = 0;
  uint32_t breach_intervals = 0, recover_intervals = 0;
  int64_t cpu_step = 0, disk_iops_step = 0, net_kbps_step = 0;
  Micros max_price = 0, budget_per_hour = 0;
  uint32_t funds_horizon_s = 0;
  bool predictive = false;  // predictive bids (controller/predict/)
  uint32_t predictive_horizon_s = 300, predictive_quantile_permille = 900;
};
struct OwnerOverride {
  std::string vm, account, set_by;
  uint64_t set_ns = 0;
};
// A rescue record whose signal is this is a predictive bid (controller/predict/), kept like a rescue so a
// restarted controller still knows it as predictive and amends or cancels it.
inline constexpr const char* kPredictiveSignal = "predictive";
struct RescueRecord {
  market::BidId bid = 0;
  std::string vm;
  std::string signal;
  int64_t quantity = 0;
};
struct OperatorState {
  std::vector<AccountMeta> accounts;
  std::vector<PolicyRecord> policies;
  std::vector<OwnerOverride> owners;
  std::vector<RescueRecord> rescues;  // only those whose bid is still active or suspended
};
struct PricePoint {
  Tick tick = 0;
  market::PriceQuote quote;
};

// Retention (docs/operations.md, "Ledger retention"): the per-tick rows (charges, failures, allocations,
// prices, the tick rows themselves) of ticks older than the newest `keep_ticks` are moved to an archive file
// or deleted, after being summed per account (rows and amounts) and per table into the ledger, so
// deposits - charges = balance still holds for every account. Credits, bids and operator state are kept.
struct RetentionPolicy {
  Tick keep_ticks = 0;       // 0: keep everything
  std::string archive_path;  // empty: delete once summed
  Tick batch_ticks = 10;     // at most this many ticks archived per call (bounded work per tick)
};
struct RetentionReport {
  Tick through = 0;   // every tick <= this is archived (0: none yet)
  uint64_t rows = 0;  // rows moved or deleted by this call
};

class Ledger {
 public:
  virtual ~Ledger() = default;

  // Creates an account with an initial credit (recorded as a credit, so the audit balances), and its
  // details in the same transaction.
  virtual Status create_account(const market::Account& account, const std::string& display_name = {},
                                uint64_t created_ns = 0) = 0;
  // Credits an account and, in the same transaction, reactivates its suspended bids (as Market::credit).
  // With an idempotency key (unique per account, kept with the credit): a credit already made with that
  // key is not made again; the same amount returns its receipt (replayed), another amount is refused
  // (Errc::conflict, naming both).
  virtual Result<CreditReceipt> credit(const std::string& account, Micros amount, const std::string& note,
                                       const std::string& idempotency_key = {}) = 0;
  // The credit made to `account` with `idempotency_key`, if there is one.
  virtual Result<std::optional<CreditReceipt>> credit_by_key(const std::string& account,
                                                             const std::string& idempotency_key) = 0;
  // Records a bid as submitted, amended or cancelled (upsert by id).
  virtual Status put_bid(const market::Bid& bid) = 0;
  // A rescue bid raised on the owner's behalf: the bid and its rescue record in one transaction.
  virtual Status put_rescue_bid(const market::Bid& bid, const RescueRecord& rescue) = 0;
  // One transaction: the tick row, its charges (debiting balances, never below zero), allocations,
  // failures, prices and bid state changes. Refuses a tick that is not last_tick()+1.
  virtual Status commit_tick(const market::TickOutcome& outcome) = 0;

  virtual Result<Tick> last_tick() = 0;
  // Everything a restarting market needs (see Market::restore).
  virtual Result<market::MarketSnapshot> load() = 0;
  virtual Result<AuditReport> audit() = 0;

  // The journal, newest first up to the limit, returned oldest first.
  virtual Result<std::vector<JournalEntry>> journal(const JournalQuery& query) = 0;

  // Operator state (each put is one transaction; a put replaces the VM's or account's row).
  virtual Status put_policy(const PolicyRecord& policy) = 0;
  virtual Status put_owner_override(const OwnerOverride& owner) = 0;
  virtual Result<OperatorState> load_operator_state() = 0;
  // Cleared prices of ticks >= since (for `quote` history after a restart), oldest first.
  virtual Result<std::vector<PricePoint>> prices_since(Tick since) = 0;
  // One step of retention: archives the next ticks (at most batch_ticks) older than the newest keep_ticks.
  virtual Result<RetentionReport> retain(const RetentionPolicy& policy) = 0;
};

}  // namespace morph::ledger
