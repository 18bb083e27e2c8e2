#pragma once
// Market: the order books of every host and resource, the accounts that bid in them and the
// allocations in force. It validates bids (refusing with errors that say what is wrong), and computes
// each tick's outcome with the rule of clearing.h plus funds: an account that cannot pay what it won is
// suspended and the books it was in are cleared again without it.
//
// clear() has no side effects; apply() makes an outcome the new state and must be called only once the
// ledger has committed that outcome. The market never writes the ledger and never does I/O.

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/error.h"
#include "controller/market/types.h"

namespace morph::market {

struct MarketConfig {
  // reserve[resource][tier], µcredits per unit per second. A bid below it is refused.
  std::array<std::array<Micros, kTierCount>, kMarketResourceCount> reserve{};
  uint32_t tick_ms = 1000;      // billed length of a tick
  uint32_t hold_ticks = 5;      // minimum hold time of an allocation against same/lower tiers
  uint32_t notice_ticks = 3;    // notice before speculative capacity is revoked (0 = none)
  uint32_t hysteresis_pct = 5;  // a challenger must outbid an incumbent by this much to displace it

  // Same reserve for every tier of a resource.
  void set_reserve(Resource r, Micros v) { reserve[static_cast<size_t>(r)].fill(v); }
};

// The config's tick and reserves within the money bounds (money.h); the service checks it before a Market
// is made from it.
Status check_config(const MarketConfig& config);

// What restart needs: read back from the ledger.
struct MarketSnapshot {
  Tick last_tick = 0;
  std::vector<Account> accounts;
  std::vector<Bid> bids;                // active and suspended ones
  std::vector<Allocation> allocations;  // in force after last_tick
  BidId next_bid_id = 1;
  uint64_t next_seq = 1;
};

class Market {
 public:
  explicit Market(MarketConfig config);

  const MarketConfig& config() const { return config_; }

  // Inventory (from host agents) and accounts.
  Status upsert_host(const HostSpec& host);
  Status upsert_vm(const VmSpec& vm);  // also ends the VM's absence (below)
  // A VM its host no longer reports (stopped or gone): its baseline no longer takes supply, and its bids
  // sit out of clearing (failing no_capacity, so its allocations end and are not charged) until upsert_vm
  // reports it again. not_found for a VM never upserted; repeating it changes nothing.
  Status set_vm_absent(const std::string& id);
  Status add_account(const Account& account);
  Status credit(const std::string& account, Micros amount);  // also lifts insufficient-funds suspensions
  // Whether credit() would accept the amount: positive, the balance within kMaxBalance, all balances
  // together within int64 (money.h). Changes nothing.
  Status check_credit(const std::string& account, Micros amount) const;
  Result<Micros> balance(const std::string& account) const;

  // Bids. check_* validate and return the bid as it would be stored without changing the market;
  // put_bid then makes it current (after the ledger has recorded it).
  Result<Bid> check_submit(const BidRequest& request, Tick now) const;
  Result<Bid> check_amend(const std::string& account, BidId id, const BidAmendment& change) const;
  Result<Bid> check_cancel(const std::string& account, BidId id) const;
  void put_bid(const Bid& bid);
  std::vector<Bid> list_bids(const std::string& account) const;
  const Bid* find_bid(BidId id) const;

  // One tick.
  TickOutcome clear(Tick tick) const;
  void apply(const TickOutcome& outcome);

  Tick last_tick() const { return last_tick_; }
  const std::unordered_map<BidId, Allocation>& allocations() const { return holdings_; }
  // Every active and suspended bid, unordered (list_bids for one account's, by id).
  const std::unordered_map<BidId, Bid>& bids() const { return bids_; }
  int64_t supply(const std::string& host, Resource r) const;
  // What a new bid of this VM on r may still ask for under its ceiling: ceiling - baseline - its live
  // bids. 0 for a VM the market does not know.
  int64_t room(const std::string& vm, Resource r) const;

  void restore(const MarketSnapshot& snap);

 private:
  // One order book entry: what clearing needs of a bid, copied in, plus its current holding, so a tick
  // walks contiguous memory instead of chasing every bid through hash maps. Kept in step by book().
  struct BookEntry {
    const Bid* bid;  // into bids_ (node-based: stable until the bid is re-put or dropped)
    BidId id;
    uint64_t seq;
    Micros max_price;
    int64_t quantity, min_fill;
    Tick expiry;
    uint32_t account;       // index into account_names_/balances_
    const std::string* vm;  // key of vms_ (VMs are never erased), or bid->vm before the VM reported in
    Tier tier;
    BidState state;
    int64_t held = 0;
    Tick since = 0;
    Tick notice_until = 0;
  };
  struct HostBooks {
    HostSpec spec;
    ResourceVector baseline_sum{};  // of the VMs on this host
    std::array<std::vector<BookEntry>, kMarketResourceCount> books;
  };
  Status validate_shape(const Bid& bid, const VmSpec& vm, BidId ignore) const;
  Status check_total(Micros amount) const;
  void unbook(const Bid& bid);
  void book(const Bid& bid);
  void mirror_holding(BookEntry& e) const;

  MarketConfig config_;
  std::map<std::string, HostBooks> hosts_;
  std::unordered_map<std::string, VmSpec> vms_;
  std::unordered_set<std::string> absent_;  // VMs of vms_ their host does not report now
  std::unordered_map<std::string, uint32_t> account_ix_;
  std::vector<std::string> account_names_;
  std::vector<Micros> balances_;
  std::unordered_map<BidId, Bid> bids_;  // active and suspended
  std::unordered_map<BidId, Allocation> holdings_;
  std::vector<BidId> orphans_;  // bids whose host has not reported in yet
  // "unknown VM", or unavailable (retry) when a restored bid names the VM and its host has not reported yet.
  Error unknown_vm(const std::string& vm) const;
  Tick last_tick_ = 0;
  BidId next_bid_id_ = 1;
  uint64_t next_seq_ = 1;
};

}  // namespace morph::market
