#pragma once
// Exchange: the market bound to its ledger — the seam the api request handler calls. Every change is
// written to the ledger first and applied to the in-memory market only once the ledger has it, so after
// a crash Exchange::recover() rebuilds exactly the committed state: no committed tick lost, none
// charged twice (the ledger refuses a tick number it already has).

#include <cstdint>

#include "controller/ledger/ledger.h"
#include "controller/market/market.h"

namespace morph::ledger {

// Where the last run_tick spent its time (monotonic wall time, ns): clearing (Market::clear), the ledger's
// transaction (Ledger::commit_tick, fsync included) and making the committed outcome current (Market::apply).
// Observed by the controller's metrics and the tick benchmark; decides nothing.
struct TickPhases {
  uint64_t clear_ns = 0, commit_ns = 0, apply_ns = 0;
};

class Exchange {
 public:
  Exchange(market::Market& market, Ledger& ledger) : market_(market), ledger_(ledger) {}

  // Loads accounts, live bids, the last tick and its allocations from the ledger into the market.
  Status recover();

  Status open_account(const market::Account& account, const std::string& display_name = {}, uint64_t created_ns = 0);
  // `reference` is kept with the credit (the journal's reason); empty: "deposit". With an idempotency key a
  // retry (same key, same amount) is answered from the first deposit, credited once (Ledger::credit).
  Result<CreditReceipt> deposit(const std::string& account, Micros amount, const std::string& reference = {},
                                const std::string& idempotency_key = {});

  Result<market::Bid> submit(const market::BidRequest& request);
  // A rescue bid: recorded with its rescue record (vm, signal, quantity) in one ledger transaction.
  Result<market::Bid> submit_rescue(const market::BidRequest& request, const std::string& signal);
  Result<market::Bid> amend(const std::string& account, market::BidId id, const market::BidAmendment& change);
  Status cancel(const std::string& account, market::BidId id);
  std::vector<market::Bid> list(const std::string& account) const { return market_.list_bids(account); }

  // Clears tick last+1, commits it as one ledger transaction, then applies it to the market.
  Result<market::TickOutcome> run_tick();
  // The phases of the last run_tick (of the commit that failed, if the last one did: apply_ns 0 then).
  const TickPhases& last_phases() const { return phases_; }

  market::Market& market() { return market_; }

 private:
  market::Market& market_;
  Ledger& ledger_;
  TickPhases phases_;
};

}  // namespace morph::ledger
