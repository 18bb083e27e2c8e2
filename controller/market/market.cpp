#include "controller/market/market.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>

#include "controller/market/clearing.h"
#include "controller/market/money.h"

namespace morph::market {
namespace {

std::string bid_tag(BidId id) {
  return "bid " + std::to_string(id);
}

}  // namespace

Status check_config(const MarketConfig& c) {
  if (c.tick_ms == 0 || c.tick_ms > kMaxTickMs)
    return Error(Errc::invalid_argument,
                 "tick of " + std::to_string(c.tick_ms) + " ms is outside 1.." + std::to_string(kMaxTickMs) + " ms");
  for (Resource r : kMarketResources)
    for (int t = 0; t < kTierCount; ++t)
      if (Micros v = c.reserve[static_cast<size_t>(r)][static_cast<size_t>(t)]; v < 0 || v > kMaxPrice)
        return Error(Errc::invalid_argument, std::string("reserve of ") + resource_name(r) + " tier " +
                                                 tier_name(static_cast<Tier>(t)) + " is " + std::to_string(v) +
                                                 ", outside 0.." + std::to_string(kMaxPrice));
  return {};
}

Market::Market(MarketConfig config) : config_(config) {
  // Keeps rank prices (max_price * (100 + pct)) inside int64 for any accepted max_price.
  config_.hysteresis_pct = std::min<uint32_t>(config_.hysteresis_pct, 100);
}

Status Market::upsert_host(const HostSpec& host) {
  if (host.id.empty()) return Error(Errc::invalid_argument, "host id is empty");
  for (Resource r : kMarketResources)
    if (int64_t c = at(host.capacity, r); c < 0 || c > kMaxQuantity)
      return Error(Errc::invalid_argument, "host " + host.id + ": " + resource_name(r) + " capacity " +
                                               std::to_string(c) + " is outside 0.." + std::to_string(kMaxQuantity));
  bool fresh = !hosts_.contains(host.id);
  hosts_[host.id].spec = host;
  if (fresh && !orphans_.empty()) {  // bids restored before their host reported in join its books now
    std::vector<BidId> still;
    for (BidId id : orphans_) {
      auto it = bids_.find(id);
      if (it == bids_.end()) continue;
      if (it->second.host == host.id)
        book(it->second);
      else
        still.push_back(id);
    }
    orphans_.swap(still);
  }
  return {};
}

Status Market::upsert_vm(const VmSpec& vm) {
  if (vm.id.empty()) return Error(Errc::invalid_argument, "VM id is empty");
  if (!hosts_.contains(vm.host)) return Error(Errc::not_found, "VM " + vm.id + ": unknown host " + vm.host);
  if (!account_ix_.contains(vm.owner))
    return Error(Errc::not_found, "VM " + vm.id + ": unknown owner account " + vm.owner);
  for (Resource r : kMarketResources)
    if (at(vm.baseline, r) < 0 || at(vm.ceiling, r) < at(vm.baseline, r) || at(vm.ceiling, r) > kMaxQuantity)
      return Error(Errc::invalid_argument, "VM " + vm.id + ": " + resource_name(r) +
                                               " needs 0 <= baseline <= ceiling <= " + std::to_string(kMaxQuantity));
  // An absent VM's baseline was taken out of its host's sum when it went absent.
  if (auto old = vms_.find(vm.id); old != vms_.end() && absent_.erase(vm.id) == 0)
    for (Resource r : kMarketResources) at(hosts_[old->second.host].baseline_sum, r) -= at(old->second.baseline, r);
  for (Resource r : kMarketResources) at(hosts_[vm.host].baseline_sum, r) += at(vm.baseline, r);
  vms_[vm.id] = vm;
  return {};
}

Status Market::set_vm_absent(const std::string& id) {
  auto v = vms_.find(id);
  if (v == vms_.end()) return Error(Errc::not_found, "unknown VM " + id);
  if (!absent_.insert(id).second) return {};
  for (Resource r : kMarketResources) at(hosts_[v->second.host].baseline_sum, r) -= at(v->second.baseline, r);
  return {};
}

Status Market::add_account(const Account& account) {
  if (account.id.empty()) return Error(Errc::invalid_argument, "account id is empty");
  if (account.balance < 0 || account.balance > kMaxBalance)
    return Error(Errc::invalid_argument, "account " + account.id + ": balance " + std::to_string(account.balance) +
                                             " is outside 0.." + std::to_string(kMaxBalance));
  if (account_ix_.contains(account.id)) return Error(Errc::already_exists, "account " + account.id + " exists");
  MORPH_TRY(check_total(account.balance));
  account_ix_[account.id] = static_cast<uint32_t>(account_names_.size());
  account_names_.push_back(account.id);
  balances_.push_back(account.balance);
  return {};
}

Status Market::credit(const std::string& account, Micros amount) {
  auto it = account_ix_.find(account);
  if (it == account_ix_.end()) return Error(Errc::not_found, "unknown account " + account);
  MORPH_TRY(check_credit(account, amount));
  balances_[it->second] += amount;
  std::vector<Bid> lifted;
  for (const auto& [id, b] : bids_)
    if (b.account == account && b.state == BidState::suspended) lifted.push_back(b);
  for (Bid& b : lifted) {
    b.state = BidState::active;
    b.state_reason = FailureReason::none;
    put_bid(b);
  }
  return {};
}

Status Market::check_total(Micros amount) const {
  // Every charge of a tick is at most its payer's balance, so a tick's revenue fits when the balances do.
  Micros total = 0;
  for (Micros b : balances_) total = saturating_add(total, b);
  if (!checked_add(total, amount))
    return Error(Errc::invalid_argument, "a credit of " + std::to_string(amount) +
                                             " would take the balances of all accounts together past int64");
  return {};
}

Status Market::check_credit(const std::string& account, Micros amount) const {
  auto it = account_ix_.find(account);
  if (it == account_ix_.end()) return Error(Errc::not_found, "unknown account " + account);
  if (amount <= 0) return Error(Errc::invalid_argument, "a credit must be positive");
  const Micros balance = balances_[it->second];
  if (amount > kMaxBalance - balance)
    return Error(Errc::invalid_argument, "a credit of " + std::to_string(amount) + " to account " + account +
                                             " (balance " + std::to_string(balance) +
                                             ") would exceed the balance bound " + std::to_string(kMaxBalance) +
                                             " ucredits");
  return check_total(amount);
}

Result<Micros> Market::balance(const std::string& account) const {
  auto it = account_ix_.find(account);
  if (it == account_ix_.end()) return Error(Errc::not_found, "unknown account " + account);
  return balances_[it->second];
}

int64_t Market::supply(const std::string& host, Resource r) const {
  auto it = hosts_.find(host);
  if (it == hosts_.end()) return 0;
  return std::max<int64_t>(at(it->second.spec.capacity, r) - at(it->second.baseline_sum, r), 0);
}

int64_t Market::room(const std::string& vm, Resource r) const {
  auto v = vms_.find(vm);
  if (v == vms_.end()) return 0;
  int64_t left = at(v->second.ceiling, r) - at(v->second.baseline, r);
  if (auto h = hosts_.find(v->second.host); h != hosts_.end())
    for (const BookEntry& e : h->second.books[static_cast<size_t>(r)])
      if (e.bid->vm == vm) left -= e.quantity;
  return std::max<int64_t>(left, 0);
}

Status Market::validate_shape(const Bid& bid, const VmSpec& vm, BidId ignore) const {
  if (bid.quantity <= 0 || bid.quantity > kMaxQuantity)
    return Error(Errc::invalid_argument,
                 "quantity " + std::to_string(bid.quantity) + " must be in 1.." + std::to_string(kMaxQuantity));
  if (bid.min_fill < 1 || bid.min_fill > bid.quantity)
    return Error(Errc::invalid_argument, "min_fill " + std::to_string(bid.min_fill) + " must be in 1..quantity (" +
                                             std::to_string(bid.quantity) + ")");
  if (bid.max_price <= 0 || bid.max_price > kMaxPrice)
    return Error(Errc::invalid_argument,
                 "max_price " + std::to_string(bid.max_price) + " must be in 1.." + std::to_string(kMaxPrice));
  const Micros reserve = config_.reserve[static_cast<size_t>(bid.resource)][static_cast<size_t>(bid.tier)];
  if (auto problem = bid_cost_problem(bid.quantity, bid.max_price)) return Error(Errc::invalid_argument, *problem);
  if (bid.max_price < reserve)
    return Error(Errc::invalid_argument, "max_price " + std::to_string(bid.max_price) + " is below the reserve " +
                                             std::to_string(reserve) + " for " + resource_name(bid.resource) +
                                             " tier " + tier_name(bid.tier));
  // The VM's live bids on this resource together must fit under its ceiling.
  int64_t room = at(vm.ceiling, bid.resource) - at(vm.baseline, bid.resource);
  int64_t others = 0;
  if (auto h = hosts_.find(vm.host); h != hosts_.end())
    for (const BookEntry& e : h->second.books[static_cast<size_t>(bid.resource)])
      if (e.id != ignore && e.bid->vm == vm.id) others = saturating_add(others, e.quantity);
  if (saturating_add(others, bid.quantity) > room)
    return Error(Errc::invalid_argument, "quantity " + std::to_string(bid.quantity) + " of " +
                                             resource_name(bid.resource) + " for VM " + vm.id +
                                             " exceeds its ceiling: room above baseline is " + std::to_string(room) +
                                             ", " + std::to_string(others) + " already bid");
  return {};
}

Error Market::unknown_vm(const std::string& vm) const {
  // After a restart the bids come back from the ledger before the hosts report their VMs (a heartbeat or
  // so): a VM a restored bid names is known, only not yet described, so the client is told to retry
  // (unavailable) rather than that the VM does not exist.
  for (BidId id : orphans_)
    if (auto it = bids_.find(id); it != bids_.end() && it->second.vm == vm)
      return Error(Errc::unavailable, "VM " + vm + " is not described yet: its host " + it->second.host +
                                          " has not reported since the controller started; retry shortly");
  return Error(Errc::not_found, "unknown VM " + vm);
}

Result<Bid> Market::check_submit(const BidRequest& req, Tick now) const {
  if (!account_ix_.contains(req.account)) return Error(Errc::not_found, "unknown account " + req.account);
  auto vm = vms_.find(req.vm);
  if (vm == vms_.end()) return unknown_vm(req.vm);
  if (vm->second.owner != req.account)
    return Error(Errc::permission_denied, "VM " + req.vm + " is not owned by account " + req.account);
  auto tier = parse_tier(req.tier);
  if (!tier) return Error(Errc::invalid_argument, "unknown tier '" + req.tier + "' (sla, improve, speculative)");
  if (!traded(req.resource))
    return Error(Errc::invalid_argument, std::string("resource ") + resource_name(req.resource) + " is not traded");
  if (req.expiry != 0 && req.expiry <= now)
    return Error(Errc::invalid_argument,
                 "expiry tick " + std::to_string(req.expiry) + " is not after tick " + std::to_string(now));
  Bid b;
  b.id = next_bid_id_;
  b.account = req.account;
  b.vm = req.vm;
  b.host = vm->second.host;
  b.resource = req.resource;
  b.tier = *tier;
  b.quantity = req.quantity;
  b.min_fill = req.min_fill == 0 ? req.quantity : req.min_fill;
  b.max_price = req.max_price;
  b.expiry = req.expiry;
  b.submitted = now;
  b.seq = next_seq_;
  MORPH_TRY(validate_shape(b, vm->second, 0));
  return b;
}

Result<Bid> Market::check_amend(const std::string& account, BidId id, const BidAmendment& change) const {
  auto it = bids_.find(id);
  if (it == bids_.end()) return Error(Errc::not_found, "unknown or closed " + bid_tag(id));
  if (it->second.account != account)
    return Error(Errc::permission_denied, bid_tag(id) + " does not belong to account " + account);
  Bid b = it->second;
  if (change.quantity) {
    // Keep an all-or-nothing bid all-or-nothing unless the caller says otherwise.
    bool aon = b.min_fill == b.quantity;
    b.quantity = *change.quantity;
    if (aon && !change.min_fill) b.min_fill = b.quantity;
  }
  if (change.min_fill) b.min_fill = *change.min_fill == 0 ? b.quantity : *change.min_fill;
  if (change.max_price) b.max_price = *change.max_price;
  if (change.expiry) b.expiry = *change.expiry;
  auto vm = vms_.find(b.vm);
  if (vm == vms_.end()) return unknown_vm(b.vm);
  MORPH_TRY(validate_shape(b, vm->second, id));
  // Asking for more (price or quantity) is a new bid in the queue; asking for less keeps its place.
  if (b.quantity > it->second.quantity || b.max_price > it->second.max_price) b.seq = next_seq_;
  return b;
}

Result<Bid> Market::check_cancel(const std::string& account, BidId id) const {
  auto it = bids_.find(id);
  if (it == bids_.end()) return Error(Errc::not_found, "unknown or closed " + bid_tag(id));
  if (it->second.account != account)
    return Error(Errc::permission_denied, bid_tag(id) + " does not belong to account " + account);
  Bid b = it->second;
  b.state = BidState::cancelled;
  return b;
}

void Market::mirror_holding(BookEntry& e) const {
  auto held = holdings_.find(e.id);
  if (held == holdings_.end()) {
    e.held = 0;
    e.since = e.notice_until = 0;
  } else {
    e.held = held->second.quantity;
    e.since = held->second.since;
    e.notice_until = held->second.notice_until;
  }
}

void Market::book(const Bid& bid) {
  auto h = hosts_.find(bid.host);
  if (h == hosts_.end()) {
    orphans_.push_back(bid.id);
    return;
  }
  const Bid& stored = bids_.at(bid.id);
  auto vm = vms_.find(stored.vm);
  BookEntry e{&stored,
              stored.id,
              stored.seq,
              stored.max_price,
              stored.quantity,
              stored.min_fill,
              stored.expiry,
              account_ix_.at(stored.account),
              vm != vms_.end() ? &vm->first : &stored.vm,
              stored.tier,
              stored.state};
  mirror_holding(e);
  h->second.books[static_cast<size_t>(bid.resource)].push_back(e);
}

void Market::unbook(const Bid& bid) {
  auto h = hosts_.find(bid.host);
  if (h == hosts_.end()) return;
  auto& v = h->second.books[static_cast<size_t>(bid.resource)];
  v.erase(std::remove_if(v.begin(), v.end(), [&](const BookEntry& e) { return e.id == bid.id; }), v.end());
}

void Market::put_bid(const Bid& bid) {
  next_bid_id_ = std::max(next_bid_id_, bid.id + 1);
  next_seq_ = std::max(next_seq_, bid.seq + 1);
  auto it = bids_.find(bid.id);
  if (it != bids_.end()) {
    unbook(it->second);
    bids_.erase(it);
  }
  if ((bid.state == BidState::active || bid.state == BidState::suspended) && account_ix_.contains(bid.account)) {
    bids_[bid.id] = bid;
    book(bid);
  } else {
    holdings_.erase(bid.id);
  }
}

std::vector<Bid> Market::list_bids(const std::string& account) const {
  std::vector<Bid> out;
  for (const auto& [id, b] : bids_)
    if (b.account == account) out.push_back(b);
  std::sort(out.begin(), out.end(), [](const Bid& a, const Bid& b) { return a.id < b.id; });
  return out;
}

const Bid* Market::find_bid(BidId id) const {
  auto it = bids_.find(id);
  return it == bids_.end() ? nullptr : &it->second;
}

TickOutcome Market::clear(Tick tick) const {
  TickOutcome out;
  out.tick = tick;

  // The books to clear: (host, resource) with their eligible entries, all in one flat array (a book's
  // entries are [first, first + count)); one allocation per tick instead of one per book.
  struct BookWork {
    const HostBooks* host;
    Resource resource;
    int64_t supply;
    size_t first, count;
    BookResult result;
  };
  size_t total = 0, books = 0;
  for (const auto& [hid, hb] : hosts_)
    for (const auto& book : hb.books) {
      total += book.size();
      books += !book.empty();
    }
  std::vector<BookWork> work;
  work.reserve(books);
  std::vector<const BookEntry*> flat;
  flat.reserve(total);
  for (const auto& [hid, hb] : hosts_) {
    for (Resource r : kMarketResources) {
      const auto& book = hb.books[static_cast<size_t>(r)];
      if (book.empty()) continue;
      const size_t first = flat.size();
      for (const BookEntry& e : book) {
        if (e.expiry != 0 && tick > e.expiry) {
          Bid changed = *e.bid;
          changed.state = BidState::expired;
          out.bid_changes.push_back(changed);
          continue;
        }
        if (e.state == BidState::suspended) {
          out.failures.push_back({e.id, e.bid->account, FailureReason::suspended,
                                  std::string("suspended: ") + failure_reason_name(e.bid->state_reason)});
          continue;
        }
        if (!absent_.empty() && absent_.contains(e.bid->vm)) {
          out.failures.push_back(
              {e.id, e.bid->account, FailureReason::no_capacity, "VM " + e.bid->vm + " is not running on host " + hid});
          continue;
        }
        flat.push_back(&e);
      }
      if (flat.size() == first) continue;
      work.push_back({&hb,
                      r,
                      std::max<int64_t>(at(hb.spec.capacity, r) - at(hb.baseline_sum, r), 0),
                      first,
                      flat.size() - first,
                      {}});
    }
  }

  std::vector<uint8_t> broke(balances_.size(), 0);  // accounts that cannot pay this tick
  bool any_broke = false;
  std::vector<BookBid> in;
  auto clear_one = [&](BookWork& w) {
    in.clear();
    for (size_t i = w.first; i < w.first + w.count; ++i) {
      const BookEntry* e = flat[i];
      if (i + 16 < flat.size()) __builtin_prefetch(flat[i + 16]);
      if (any_broke && broke[e->account]) continue;
      BookBid bb{e->id, e->tier, e->max_price, e->quantity, e->min_fill, e->seq};
      if (e->held > 0) {
        bb.held = e->held;
        bb.pinned = tick < e->since + config_.hold_ticks;
        if (e->notice_until != 0) bb.notice = tick < e->notice_until ? Notice::active : Notice::expired;
      }
      in.push_back(bb);
    }
    BookParams p{w.supply, config_.reserve[static_cast<size_t>(w.resource)], config_.hysteresis_pct,
                 config_.notice_ticks > 0};
    clear_book(p, in, w.result);
  };
  for (auto& w : work) clear_one(w);

  // Funds: anyone whose winnings this tick exceed their balance is suspended and the books they were in
  // cleared again without them, until everyone left can pay.
  std::vector<Micros> due(balances_.size());
  for (;;) {
    std::fill(due.begin(), due.end(), 0);
    for (const auto& w : work) {
      size_t k = 0;
      for (size_t i = w.first; i < w.first + w.count; ++i) {
        const BookEntry* e = flat[i];
        if (i + 16 < flat.size()) __builtin_prefetch(flat[i + 16]);
        if (any_broke && broke[e->account]) continue;
        const BookFill& f = w.result.fills[k++];
        if (f.quantity == 0) continue;
        // A charge past int64 (only a bid from before the bounds can make one) is more than anyone can pay.
        auto c = charge_for(f.quantity, w.result.price[static_cast<size_t>(e->tier)], config_.tick_ms);
        due[e->account] = saturating_add(due[e->account], c.value_or(std::numeric_limits<Micros>::max()));
      }
    }
    std::vector<uint8_t> fresh(balances_.size(), 0);
    bool more = false;
    for (size_t a = 0; a < due.size(); ++a)
      if (!broke[a] && (due[a] > balances_[a] || due[a] == std::numeric_limits<Micros>::max()))
        fresh[a] = broke[a] = 1, more = true;
    if (!more) break;
    any_broke = true;
    for (auto& w : work)
      if (std::any_of(flat.begin() + static_cast<std::ptrdiff_t>(w.first),
                      flat.begin() + static_cast<std::ptrdiff_t>(w.first + w.count),
                      [&](const BookEntry* e) { return fresh[e->account] != 0; }))
        clear_one(w);
  }

  // At most one allocation, charge or failure per entry: reserve once rather than grow (and move) them.
  out.allocations.reserve(flat.size());
  out.charges.reserve(flat.size());
  out.failures.reserve(out.failures.size() + flat.size() / 4);
  out.prices.reserve(work.size() * kTierCount);
  for (const auto& w : work) {
    const std::string& host = w.host->spec.id;
    for (int t = 0; t < kTierCount; ++t) {
      out.prices.push_back({host, w.resource, static_cast<Tier>(t), w.result.price[t], w.result.sold[t]});
    }
    size_t k = 0;
    for (size_t i = w.first; i < w.first + w.count; ++i) {
      const BookEntry* e = flat[i];
      // Copying the VM id into the allocation reads a hash node: a cache miss per allocation at 100,000
      // bids unless fetched ahead (measured: docs/benchmarks.md, "Clearing time").
      if (i + 16 < flat.size()) __builtin_prefetch(flat[i + 16]);
      if (i + 8 < flat.size()) __builtin_prefetch(flat[i + 8]->vm);
      if (any_broke && broke[e->account]) {
        const Bid* b = e->bid;
        Bid changed = *b;
        changed.state = BidState::suspended;
        changed.state_reason = FailureReason::insufficient_funds;
        out.bid_changes.push_back(changed);
        out.failures.push_back({b->id, b->account, FailureReason::insufficient_funds,
                                "balance cannot pay this tick; bid suspended until a credit"});
        continue;
      }
      const BookFill& f = w.result.fills[k++];
      const Micros price = w.result.price[static_cast<size_t>(e->tier)];
      if (f.quantity == 0) {
        out.failures.push_back({e->id, account_names_[e->account], f.reason,
                                f.reason == FailureReason::price_below_market
                                    ? "max_price " + std::to_string(e->max_price) + " < market " + std::to_string(price)
                                    : "no capacity left for " + std::string(tier_name(e->tier))});
        continue;
      }
      const std::string& account = account_names_[e->account];
      Allocation a{e->id, account, *e->vm, host, w.resource, e->tier, f.quantity, price, tick, 0};
      if (e->held > 0) {
        a.since = e->since;  // continuous holding keeps its start
        if (e->notice_until != 0 && tick < e->notice_until) a.notice_until = e->notice_until;
      }
      if (f.notice_given) a.notice_until = tick + config_.notice_ticks;
      // Fits: the funds pass above found this account able to pay the sum of its charges.
      const Micros amount = *charge_for(f.quantity, price, config_.tick_ms);
      if (amount > 0) {
        out.charges.push_back({e->id, account, amount});
        out.revenue += amount;  // at most the sum of the payers' balances, which check_total keeps in int64
      }
      out.allocations.push_back(std::move(a));
    }
  }
  return out;
}

void Market::apply(const TickOutcome& o) {
  for (const Charge& c : o.charges) balances_[account_ix_.at(c.account)] -= c.amount;
  holdings_.clear();
  holdings_.reserve(o.allocations.size());
  for (const Allocation& a : o.allocations) holdings_[a.bid_id] = a;
  for (auto& [hid, hb] : hosts_)
    for (auto& book : hb.books)
      for (BookEntry& e : book) mirror_holding(e);
  for (const Bid& b : o.bid_changes) put_bid(b);
  last_tick_ = o.tick;
}

void Market::restore(const MarketSnapshot& snap) {
  account_ix_.clear();
  account_names_.clear();
  balances_.clear();
  bids_.clear();
  holdings_.clear();
  orphans_.clear();
  for (auto& [id, hb] : hosts_)
    for (auto& v : hb.books) v.clear();
  // As the ledger has them, bounds or not: a balance is never dropped (credits to it are bounded).
  for (const Account& a : snap.accounts) {
    if (a.id.empty() || account_ix_.contains(a.id)) continue;
    account_ix_[a.id] = static_cast<uint32_t>(account_names_.size());
    account_names_.push_back(a.id);
    balances_.push_back(std::max<Micros>(a.balance, 0));
  }
  next_bid_id_ = snap.next_bid_id;
  next_seq_ = snap.next_seq;
  for (const Allocation& a : snap.allocations) holdings_[a.bid_id] = a;  // before booking: entries copy them
  for (const Bid& b : snap.bids) put_bid(b);
  last_tick_ = snap.last_tick;
}

}  // namespace morph::market
