#pragma once
// Ledger: the durable record of the market — accounts and their credits, bids, and per tick the
// charges, allocations, failures and prices, each tick in exactly one transaction keyed by its tick
// number. A tick is either wholly committed or absent; committing a tick number twice is refused
// (Errc::conflict), which is what makes a restarted or killed controller never charge twice.
//
// The interface is what a PostgreSQL backend implements for multi-controller deployments; SqliteLedger
// is the embedded one. A ledger never decides anything about the market: it records outcomes.

#include <cstdint>
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
  bool ticks_contiguous = true;   // every tick number first..last present exactly once
  Micros total_credits = 0;       // sum of all credits (initial funding included)
  Micros total_charges = 0;       // sum of all debits
  Micros total_revenue = 0;       // sum of the per-tick revenue recorded with each tick
  Micros total_balances = 0;
  int64_t negative_balances = 0;
  int64_t accounts_inconsistent = 0;  // accounts where credits - charges != balance
  int64_t ticks_revenue_mismatch = 0; // ticks whose recorded revenue != sum of their charges

  bool ok() const {
    return ticks_contiguous && total_charges == total_revenue && negative_balances == 0 &&
           accounts_inconsistent == 0 && ticks_revenue_mismatch == 0 &&
           total_credits - total_charges == total_balances;
  }
  std::string describe() const;
};

class Ledger {
 public:
  virtual ~Ledger() = default;

  // Creates an account with an initial credit (recorded as a credit, so the audit balances).
  virtual Status create_account(const market::Account& account) = 0;
  // Credits an account and, in the same transaction, reactivates its suspended bids (as Market::credit).
  virtual Status credit(const std::string& account, Micros amount, const std::string& note) = 0;
  // Records a bid as submitted, amended or cancelled (upsert by id).
  virtual Status put_bid(const market::Bid& bid) = 0;
  // One transaction: the tick row, its charges (debiting balances, never below zero), allocations,
  // failures, prices and bid state changes. Refuses a tick that is not last_tick()+1.
  virtual Status commit_tick(const market::TickOutcome& outcome) = 0;

  virtual Result<Tick> last_tick() = 0;
  // Everything a restarting market needs (see Market::restore).
  virtual Result<market::MarketSnapshot> load() = 0;
  virtual Result<AuditReport> audit() = 0;
};

}  // namespace morph::ledger
