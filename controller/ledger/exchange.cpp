#include "controller/ledger/exchange.h"

#include <spdlog/spdlog.h>

#include <chrono>

namespace morph::ledger {

Status Exchange::recover() {
  MORPH_TRY_ASSIGN(auto snap, ledger_.load());
  market_.restore(snap);
  spdlog::info("market recovered at tick {}: {} accounts, {} live bids, {} allocations", snap.last_tick,
               snap.accounts.size(), snap.bids.size(), snap.allocations.size());
  return {};
}

Status Exchange::open_account(const market::Account& account, const std::string& display_name, uint64_t created_ns) {
  MORPH_TRY(ledger_.create_account(account, display_name, created_ns));
  return market_.add_account(account);
}

Result<CreditReceipt> Exchange::deposit(const std::string& account, Micros amount, const std::string& reference,
                                        const std::string& idempotency_key) {
  MORPH_TRY(market_.balance(account));
  // A retry is answered before the bounds are checked again: the first deposit may have filled the balance.
  // The ledger answers it (the same amount) or refuses it (another amount).
  MORPH_TRY_ASSIGN(auto prior, ledger_.credit_by_key(account, idempotency_key));
  const std::string note = reference.empty() ? "deposit" : reference;
  if (prior) return ledger_.credit(account, amount, note, idempotency_key);
  MORPH_TRY(market_.check_credit(account, amount));  // the market's bounds refuse before the ledger records it
  MORPH_TRY_ASSIGN(auto receipt, ledger_.credit(account, amount, note, idempotency_key));
  if (!receipt.replayed) MORPH_TRY(market_.credit(account, amount));
  return receipt;
}

Result<market::Bid> Exchange::submit(const market::BidRequest& request) {
  MORPH_TRY_ASSIGN(auto bid, market_.check_submit(request, market_.last_tick()));
  MORPH_TRY(ledger_.put_bid(bid));
  market_.put_bid(bid);
  spdlog::debug("bid={} vm={} submitted: {} {} x{} at {}", bid.id, bid.vm, market::tier_name(bid.tier),
                resource_name(bid.resource), bid.quantity, bid.max_price);
  return bid;
}

Result<market::Bid> Exchange::submit_rescue(const market::BidRequest& request, const std::string& signal) {
  MORPH_TRY_ASSIGN(auto bid, market_.check_submit(request, market_.last_tick()));
  MORPH_TRY(ledger_.put_rescue_bid(bid, {bid.id, bid.vm, signal, bid.quantity}));
  market_.put_bid(bid);
  return bid;
}

Result<market::Bid> Exchange::amend(const std::string& account, market::BidId id, const market::BidAmendment& change) {
  MORPH_TRY_ASSIGN(auto bid, market_.check_amend(account, id, change));
  MORPH_TRY(ledger_.put_bid(bid));
  market_.put_bid(bid);
  return bid;
}

Status Exchange::cancel(const std::string& account, market::BidId id) {
  MORPH_TRY_ASSIGN(auto bid, market_.check_cancel(account, id));
  MORPH_TRY(ledger_.put_bid(bid));
  market_.put_bid(bid);
  return {};
}

namespace {
uint64_t since_ns(std::chrono::steady_clock::time_point t0) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
}
}  // namespace

Result<market::TickOutcome> Exchange::run_tick() {
  phases_ = {};
  auto t0 = std::chrono::steady_clock::now();
  market::TickOutcome out = market_.clear(market_.last_tick() + 1);
  phases_.clear_ns = since_ns(t0);
  t0 = std::chrono::steady_clock::now();
  auto committed = ledger_.commit_tick(out);
  phases_.commit_ns = since_ns(t0);
  MORPH_TRY(committed);
  t0 = std::chrono::steady_clock::now();
  market_.apply(out);
  phases_.apply_ns = since_ns(t0);
  return out;
}

}  // namespace morph::ledger
