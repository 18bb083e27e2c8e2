#include "controller/market_service/market_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <tuple>
#include <utility>

#include "common/cadence.h"
#include "common/msg/socket.h"
#include "common/msg/wire.h"
#include "controller/ledger/sqlite_ledger.h"
#include "controller/market/clearing.h"

namespace morph::controller {

namespace {
using market::Tier;

std::string_view sv(const flatbuffers::String* s) {
  return s ? s->string_view() : std::string_view();
}
// Every resource the market sells travels on the wire (common/resource.h), so this never fails.
v1::Resource wire(Resource r) {
  return to_wire(r).value();
}
v1::BidTier wire(Tier t) {
  return static_cast<v1::BidTier>(t);
}
// PolicySet's detection counts and step sizes (rescue::RescueEvaluator::set_policy's step bound, and a
// count bound that keeps a breach or recovery within minutes at any sane interval).
constexpr uint32_t kMinIntervals = 1, kMaxIntervals = 100;
constexpr int64_t kMaxStep = int64_t{1} << 20;

// The market resource a wire value names; nullopt for one the market does not sell.
std::optional<Resource> traded_from_wire(v1::Resource w) {
  auto r = from_wire(w);
  if (!r || !traded(*r)) return std::nullopt;
  return *r;
}
const char* tier_text(v1::BidTier t) {
  switch (t) {
    case v1::BidTier::sla_critical:
      return "sla";
    case v1::BidTier::improvement:
      return "improve";
    case v1::BidTier::speculative:
      return "speculative";
  }
  return "?";
}
v1::BidState wire(market::BidState s) {
  switch (s) {
    case market::BidState::active:
      return v1::BidState::active;
    case market::BidState::suspended:
      return v1::BidState::suspended;
    case market::BidState::cancelled:
      return v1::BidState::cancelled;
    case market::BidState::expired:
      return v1::BidState::expired;
  }
  return v1::BidState::active;
}
Error refuse(Errc c, std::string m) {
  return Error(c, std::move(m));
}
}  // namespace

Result<std::shared_ptr<MarketService>> MarketService::open(MarketServiceConfig cfg, metrics::Registry* metrics) {
  if (cfg.tick < std::chrono::milliseconds(100))
    return Error(Errc::invalid_argument, "controller.tick must be >= 100ms");
  if (cfg.tick_offset < std::chrono::nanoseconds(0) || cfg.tick_offset >= cfg.tick)
    return Error(Errc::invalid_argument, "controller.tick_offset must be at least 0 and shorter than controller.tick");
  cfg.market.tick_ms = static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::milliseconds>(cfg.tick).count());
  MORPH_TRY_ASSIGN(auto ledger, ledger::SqliteLedger::open(cfg.ledger_path));
  MORPH_TRY_ASSIGN(auto snap, ledger->load());
  std::shared_ptr<MarketService> s(new MarketService(std::move(cfg), std::move(ledger), metrics));
  MORPH_TRY(s->exchange_.recover());
  {
    // The recovered allocations are the last tick's: the first tick tells its changes apart against them.
    std::vector<market::Allocation> held;
    held.reserve(s->market_.allocations().size());
    for (auto& [id, a] : s->market_.allocations()) held.push_back(a);
    std::sort(held.begin(), held.end(), [](auto& x, auto& y) { return x.bid_id < y.bid_id; });
    s->keep_allocations(std::move(held));
  }
  for (auto& a : snap.accounts) s->accounts_[a.id] = {};
  MORPH_TRY(s->restore_operator_state());
  s->next_command_ = msg::now_ns();
  spdlog::info("market: ledger {} recovered at tick {}, {} accounts, {} live bids", s->cfg_.ledger_path,
               s->market_.last_tick(), snap.accounts.size(), snap.bids.size());
  return s;
}

MarketService::MarketService(MarketServiceConfig cfg, std::unique_ptr<ledger::Ledger> ledger,
                             metrics::Registry* metrics)
    : cfg_(std::move(cfg)), ledger_(std::move(ledger)), market_(cfg_.market), exchange_(market_, *ledger_) {
  if (!metrics) return;
  m_ticks_ = metrics->counter("morph_market_ticks_total", "Market ticks cleared and committed").with({});
  m_tick_errors_ = metrics->counter("morph_market_tick_errors_total", "Ticks that failed to clear or commit").with({});
  m_revenue_ = metrics->counter("morph_market_revenue_ucredits_total", "Charges collected, micro-credits").with({});
  m_shifts_ =
      metrics->counter("morph_market_shift_commands_total", "ShiftCommands sent for allocation changes").with({});
  m_clear_s_ = metrics
                   ->histogram("morph_market_clearing_seconds", "Time to clear and commit one tick", {},
                               {0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1})
                   .with({});
  auto& g = metrics->gauge("morph_market_bids", "Live bids by tier", {"tier"});
  for (int t = 0; t < market::kTierCount; ++t) m_bids_[t] = g.with({market::tier_name(static_cast<Tier>(t))});
}

MarketService::~MarketService() {
  stop();
}

void MarketService::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { loop(); });
}

void MarketService::stop() {
  {
    std::lock_guard lk(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void MarketService::loop() {
  // Ticks fall on wall-clock multiples of the tick plus tick_offset (common/cadence.h): agents end their KPI
  // intervals on the same multiples, so a rescue raised by the reports of the interval just ended is cleared
  // tick_offset later rather than up to a tick later. Two ticks are at least half a tick apart on the
  // monotonic clock, so a wall clock stepped back cannot clear (and charge) twice in a row.
  using namespace std::chrono;
  const auto period = static_cast<uint64_t>(cfg_.tick.count());
  const auto offset = static_cast<uint64_t>(cfg_.tick_offset.count());
  std::optional<steady_clock::time_point> last;
  std::unique_lock lk(stop_mu_);
  for (;;) {
    const auto mono = steady_clock::now();
    const auto wall = static_cast<uint64_t>(duration_cast<nanoseconds>(system_clock::now().time_since_epoch()).count());
    uint64_t gap = 0;
    if (last && *last + cfg_.tick / 2 > mono)
      gap = static_cast<uint64_t>(duration_cast<nanoseconds>(*last + cfg_.tick / 2 - mono).count());
    const auto at = mono + nanoseconds(next_aligned_ns(wall, period, offset, gap) - wall);
    if (stop_cv_.wait_until(lk, at, [this] { return stopping_; })) break;
    last = steady_clock::now();
    lk.unlock();
    if (auto st = tick_once(); !st) spdlog::error("market tick failed: {}", st.error().what());
    lk.lock();
  }
}

std::string MarketService::owner_of(const std::string& vm) const {
  if (auto o = owner_override_.find(vm); o != owner_override_.end()) return o->second;
  if (auto v = vms_.find(vm); v != vms_.end()) return v->second.owner_meta;
  return {};
}

void MarketService::feed_inventory() {
  for (auto& [id, h] : hosts_) feed_host(id);
}

void MarketService::feed_host(const std::string& host) {
  auto hit = hosts_.find(host);
  if (hit == hosts_.end()) return;
  // A host that is down (silent for 3 s) offers nothing: nothing there can be applied, so nothing there is
  // sold or charged; its bids stay and fail for want of capacity until it is back.
  const HostEntry& h = hit->second;
  if (auto st = market_.upsert_host({host, h.up ? h.capacity : market::ResourceVector{}}); !st)
    spdlog::warn("host={} market: {}", host, st.error().what());
  auto listed = host_vms_.find(host);
  if (listed == host_vms_.end()) return;
  for (const std::string& id : listed->second) {
    auto vit = vms_.find(id);
    if (vit == vms_.end() || vit->second.host != host) continue;  // gone, or reported by another host since
    const VmEntry& v = vit->second;
    market::VmSpec spec{id, owner_of(id), v.host, v.baseline, {}};
    // The ceiling: the host's capacity, or less where the agent says the VM cannot use more (a 1-vCPU VM
    // gains nothing above 1000 mc, and the agent would refuse the shift).
    for (Resource r : kMarketResources) {
      int64_t cap = hit == hosts_.end() ? 0 : market::at(hit->second.capacity, r);
      if (int64_t own = market::at(v.ceiling, r); own > 0) cap = std::min(cap, own);
      market::at(spec.ceiling, r) = std::max(market::at(v.baseline, r), cap);
    }
    if (spec.owner.empty() || !accounts_.contains(spec.owner)) {
      if (unfed_vms_.insert(id).second)
        spdlog::info("vm={} not in the market: owner '{}' has no account", id, spec.owner);
      continue;
    }
    unfed_vms_.erase(id);
    if (auto st = market_.upsert_vm(spec); !st) spdlog::warn("vm={} market: {}", id, st.error().what());
  }
}

Status MarketService::tick_once() {
  std::lock_guard lk(mu_);
  return tick_locked();
}

Status MarketService::tick_locked() {
  // Every other inventory change (a HostHello, an account, an owner override) feeds the market at once; a
  // host going down or coming back is fed here.
  if (std::exchange(hosts_changed_, false)) feed_inventory();
  auto t0 = std::chrono::steady_clock::now();
  auto res = exchange_.run_tick();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!res) {
    if (m_tick_errors_) m_tick_errors_->inc();
    return res.error();
  }
  market::TickOutcome& out = *res;
  if (m_ticks_) {
    m_ticks_->inc();
    m_revenue_->inc(static_cast<double>(out.revenue));
    m_clear_s_->observe(secs);
  }
  // One pass over this tick's allocations against the last tick's (last_allocs_): each one's previous
  // holding (null: new). What the last tick held and this one does not has ended, whether its bid lost, ran
  // out, was cancelled or its VM left in between. Both in bid order, as events and log lines go out.
  const size_t n_alloc = out.allocations.size();
  std::vector<const market::Allocation*> prev(n_alloc, nullptr);
  std::vector<uint8_t> kept(last_allocs_.size(), 0);
  for (size_t i = 0; i < n_alloc; ++i) {
    auto it = last_ix_.find(out.allocations[i].bid_id);
    if (it == last_ix_.end()) continue;
    prev[i] = &last_allocs_[it->second];
    kept[it->second] = 1;
  }
  auto by_bid = [](const std::vector<market::Allocation>& v) {
    return [&v](size_t x, size_t y) { return v[x].bid_id < v[y].bid_id; };
  };
  std::vector<size_t> ended;
  for (size_t j = 0; j < last_allocs_.size(); ++j)
    if (!kept[j]) ended.push_back(j);
  std::sort(ended.begin(), ended.end(), by_bid(last_allocs_));
  // Price history and price.<host> events.
  std::map<std::string, std::vector<market::PriceQuote>> by_host;
  for (auto& p : out.prices) {
    auto& h = prices_[{p.host, p.resource, p.tier}];
    h.push_back({out.tick, p.price, p.sold});
    while (h.size() > cfg_.price_history) h.pop_front();
    by_host[p.host].push_back(p);
  }
  if (link_) {
    for (auto& [host, ps] : by_host) {
      auto tick = out.tick;
      std::vector<std::pair<market::PriceQuote, int64_t>> rows;
      for (auto& p : ps) rows.push_back({p, market_.supply(host, p.resource)});
      link_->publish_event("price." + host, v1::MarketEventBody::PriceUpdate,
                           [rows, tick](flatbuffers::FlatBufferBuilder& b) {
                             std::vector<flatbuffers::Offset<v1::PriceInfo>> v;
                             for (auto& [p, supply] : rows)
                               v.push_back(v1::CreatePriceInfoDirect(b, p.host.c_str(), wire(p.resource), wire(p.tier),
                                                                     p.price, supply, p.sold, tick));
                             return v1::CreatePriceUpdateDirect(b, &v).Union();
                           });
    }
    // alloc.<host> and bid.<account>: fills that are new or changed, and allocations that ended.
    auto alloc_event = [&](const market::Allocation& a, bool granted, std::string reason) {
      link_->publish_event("alloc." + a.host, v1::MarketEventBody::AllocationChange,
                           [a, granted, reason, this](flatbuffers::FlatBufferBuilder& b) {
                             std::lock_guard lk2(mu_);  // alloc_info reads the market (messaging thread)
                             auto info = alloc_info(b, a);
                             return v1::CreateAllocationChangeDirect(b, info, granted, reason.c_str()).Union();
                           });
    };
    std::vector<size_t> moved;  // new, or a changed quantity
    for (size_t i = 0; i < n_alloc; ++i)
      if (!prev[i] || prev[i]->quantity != out.allocations[i].quantity) moved.push_back(i);
    std::sort(moved.begin(), moved.end(), by_bid(out.allocations));
    for (size_t i : moved) {
      const market::Allocation& a = out.allocations[i];
      alloc_event(a, true, prev[i] ? "changed" : "granted");
      if (const auto* b = market_.find_bid(a.bid_id))
        publish_bid(*b, b->state, a.quantity < b->quantity ? "partial" : "filled",
                    "tick " + std::to_string(out.tick) + " at " + std::to_string(a.price) + " ucredits/unit-s");
    }
    for (size_t j : ended) {
      market::Allocation gone = last_allocs_[j];
      gone.quantity = 0;
      alloc_event(gone, false, "ended");
    }
    for (auto& f : out.failures) {
      if (const auto* b = market_.find_bid(f.bid_id))
        publish_bid(*b, b->state, "failed",
                    std::string(market::failure_reason_name(f.reason)) + (f.detail.empty() ? "" : ": " + f.detail));
    }
    for (auto& b : out.bid_changes)
      publish_bid(b, b.state, market::bid_state_name(b.state), market::failure_reason_name(b.state_reason));
  }
  // Log search (docs/operations.md "Logs"): each step of a bid's story carries bid=<id> and vm=<uuid>.
  auto sent = send_targets(out);
  log_bid_steps(out, prev, sent, ended);
  prev.clear();  // points into last_allocs_
  keep_allocations(std::move(out.allocations));
  if (m_bids_[0]) {
    std::array<int, market::kTierCount> n{};
    for (auto& [id, b] : market_.bids()) ++n[static_cast<size_t>(b.tier)];
    for (int t = 0; t < market::kTierCount; ++t) m_bids_[t]->set(n[t]);
  }
  spdlog::debug("market tick {}: {} allocations, {} failures, revenue {}", out.tick, out.allocations.size(),
                out.failures.size(), out.revenue);
  return {};
}

std::vector<std::string> MarketService::send_targets(const market::TickOutcome& out) {
  // This tick's increment per VM, summed in place into targets_ (a VM new to it is added, marked fresh).
  for (auto& [vm, t] : targets_) {
    t.next = {};
    t.held = false;
  }
  for (auto& a : out.allocations) {
    auto it = targets_.find(a.vm);
    if (it == targets_.end()) {
      it = targets_.emplace(a.vm, VmTarget{}).first;
      it->second.fresh = true;
    }
    auto& t = it->second;
    t.host = a.host;
    t.held = true;
    market::at(t.next, a.resource) += a.quantity;
  }
  const uint64_t lease = static_cast<uint64_t>(cfg_.lease.count());
  // `was`: the increment in force until now (a new VM: none).
  auto order_for = [&](const std::string& vm, const market::ResourceVector& was, const market::ResourceVector& inc) {
    msg::ShiftOrder o;
    o.command_id = ++next_command_;
    o.vm_uuid = vm;
    o.lease_ns = lease;
    o.issued_ns = msg::now_ns();
    auto v = vms_.find(vm);
    for (Resource r : kMarketResources) {
      int64_t base = v == vms_.end() ? 0 : market::at(v->second.baseline, r);
      // Only resources the market moved (now or before) are set; the rest stay as the agent has them.
      bool touched = market::at(inc, r) != 0 || market::at(was, r) != 0;
      if (touched) o.adjustments.push_back({wire(r), base + market::at(inc, r), {}});
    }
    return o;
  };
  auto send = [&](const std::string& host, msg::ShiftOrder o) {
    shifts_.push_back({host, o.command_id, o.vm_uuid, o.adjustments, "sent", v1::ErrorCode::ok, {}, o.issued_ns});
    while (shifts_.size() > 500) shifts_.pop_front();
    if (m_shifts_) m_shifts_->inc();
    spdlog::info("vm={} host={} shift command {} sent ({} settings)", o.vm_uuid, host, o.command_id,
                 o.adjustments.size());
    if (!link_) return;
    // The messaging layer publishes shift.<host> "sent" once the command is on its way.
    link_->send_shift(host, std::move(o));
  };
  std::vector<std::string> sent;
  for (auto& [vm, t] : targets_) {
    if (!t.held) continue;
    if (!t.fresh && t.increment == t.next) {
      if (link_) link_->renew_lease(t.host, {vm, {t.command_id}, lease});
      continue;
    }
    auto o = order_for(vm, t.fresh ? market::ResourceVector{} : t.increment, t.next);
    t.command_id = o.command_id;
    t.increment = t.next;
    t.fresh = false;
    send(t.host, std::move(o));
    sent.push_back(vm);
  }
  // Then the VMs that hold nothing any more: back to the baseline.
  for (auto it = targets_.begin(); it != targets_.end();) {
    if (it->second.held) {
      ++it;
      continue;
    }
    send(it->second.host, order_for(it->first, it->second.increment, {}));
    it = targets_.erase(it);
  }
  return sent;
}

void MarketService::keep_allocations(std::vector<market::Allocation> allocations) {
  last_allocs_ = std::move(allocations);
  last_ix_.clear();
  last_ix_.reserve(last_allocs_.size());
  for (size_t i = 0; i < last_allocs_.size(); ++i) last_ix_.emplace(last_allocs_[i].bid_id, i);
}

// What the ledger holds besides money: account details, policies, owner overrides, the rescue bids in
// force, and recent prices for `quote`. Runs once, before the service is shared.
Status MarketService::restore_operator_state() {
  MORPH_TRY_ASSIGN(auto st, ledger_->load_operator_state());
  for (auto& a : st.accounts) accounts_[a.account] = {a.display_name, a.created_ns};
  for (auto& o : st.owners) owner_override_[o.vm] = o.account;
  for (auto& r : st.policies) {
    rescue::SlaPolicy p;
    p.vm = r.vm;
    p.account = r.account;
    p.rescue = r.rescue;
    p.runq_wait_permille = r.runq_wait_permille;
    p.blk_p99_us = r.blk_p99_us;
    p.drops_per_s = r.drops_per_s;
    p.breach_intervals = r.breach_intervals;
    p.recover_intervals = r.recover_intervals;
    p.cpu_step = r.cpu_step;
    p.disk_iops_step = r.disk_iops_step;
    p.net_kbps_step = r.net_kbps_step;
    p.max_price = r.max_price;
    p.budget_per_hour = r.budget_per_hour;
    p.funds_horizon_s = r.funds_horizon_s;
    if (auto ok = rescue_.set_policy(p); !ok) {
      spdlog::warn("vm={} stored policy not restored: {}", r.vm, ok.error().what());
      continue;
    }
    policies_[r.vm] = p;
  }
  for (auto& r : st.rescues) {
    auto sig = rescue::parse_signal(r.signal);
    rescue_ids_.insert(r.bid);
    if (!sig) {
      spdlog::warn("vm={} bid={} rescue with unknown signal '{}'", r.vm, r.bid, r.signal);
      continue;
    }
    rescue_bid_[{r.vm, static_cast<int>(*sig)}] = r.bid;
    if (auto ok = rescue_.restore_rescue(r.vm, *sig, r.quantity); !ok)
      spdlog::warn("vm={} bid={} rescue not re-armed: {}", r.vm, r.bid, ok.error().what());
  }
  const market::Tick last = market_.last_tick();
  const market::Tick from = last >= cfg_.price_history ? last - cfg_.price_history + 1 : 0;
  MORPH_TRY_ASSIGN(auto hist, ledger_->prices_since(from));
  for (auto& p : hist) {
    auto& h = prices_[{p.quote.host, p.quote.resource, p.quote.tier}];
    h.push_back({p.tick, p.quote.price, p.quote.sold});
    while (h.size() > cfg_.price_history) h.pop_front();
  }
  spdlog::info("market: restored {} policies, {} owner overrides, {} rescue bids, {} price points", policies_.size(),
               owner_override_.size(), st.rescues.size(), hist.size());
  return {};
}

std::vector<market::Bid> MarketService::all_bids() const {
  // By account, then id: one pass over the book (list_bids per account was a pass per account).
  std::vector<market::Bid> out;
  out.reserve(market_.bids().size());
  for (auto& [id, b] : market_.bids())
    if (accounts_.contains(b.account)) out.push_back(b);
  std::sort(out.begin(), out.end(), [](const market::Bid& a, const market::Bid& b) {
    return std::tie(a.account, a.id) < std::tie(b.account, b.id);
  });
  return out;
}

flatbuffers::Offset<v1::BidInfo> MarketService::bid_info(flatbuffers::FlatBufferBuilder& fbb, const market::Bid& b,
                                                         market::BidState state) const {
  int64_t filled = 0;
  if (auto it = market_.allocations().find(b.id); it != market_.allocations().end()) filled = it->second.quantity;
  uint64_t expires = 0;
  if (b.expiry > market_.last_tick()) expires = msg::now_ns() + (b.expiry - market_.last_tick()) * tick_ns();
  return v1::CreateBidInfoDirect(fbb, b.id, b.account.c_str(), b.vm.c_str(), wire(b.resource), b.quantity, b.min_fill,
                                 b.max_price, wire(b.tier), wire(state), expires, 0, filled, rescue_ids_.contains(b.id),
                                 b.host.c_str());
}

flatbuffers::Offset<v1::AccountInfo> MarketService::account_info(flatbuffers::FlatBufferBuilder& fbb,
                                                                 const std::string& a) const {
  auto bal = market_.balance(a);
  int64_t reserved = 0;
  for (auto& [id, al] : market_.allocations())
    if (al.account == a)
      reserved += static_cast<int64_t>(static_cast<market::Wide>(al.quantity) * al.price * cfg_.market.tick_ms / 1000);
  auto it = accounts_.find(a);
  return v1::CreateAccountInfoDirect(fbb, a.c_str(), it == accounts_.end() ? nullptr : it->second.display_name.c_str(),
                                     bal ? *bal : 0, reserved, it == accounts_.end() ? 0 : it->second.created_ns);
}

flatbuffers::Offset<v1::AllocationInfo> MarketService::alloc_info(flatbuffers::FlatBufferBuilder& fbb,
                                                                  const market::Allocation& a) const {
  uint64_t now = msg::now_ns();
  market::Tick last = market_.last_tick();
  auto at_tick = [&](market::Tick t) -> uint64_t {
    if (t == 0) return 0;
    return t >= last ? now + (t - last) * tick_ns() : now - std::min<uint64_t>(now, (last - t) * tick_ns());
  };
  return v1::CreateAllocationInfoDirect(fbb, a.host.c_str(), a.vm.c_str(), a.account.c_str(), a.bid_id,
                                        wire(a.resource), a.quantity, a.price, at_tick(a.since),
                                        at_tick(a.since + cfg_.market.hold_ticks), at_tick(a.notice_until));
}

void MarketService::log_bid_steps(const market::TickOutcome& out, const std::vector<const market::Allocation*>& prev,
                                  const std::vector<std::string>& sent, const std::vector<size_t>& ended) {
  // Each allocation's charge. Market::clear emits them in the order of the allocations (at most one each,
  // none when nothing is due), so they are matched by walking both; in any other order, by bid.
  const size_t n = out.allocations.size();
  std::vector<std::optional<market::Micros>> charged(n);
  size_t c = 0;
  for (size_t i = 0; i < n && c < out.charges.size(); ++i)
    for (; c < out.charges.size() && out.charges[c].bid_id == out.allocations[i].bid_id; ++c)
      charged[i] = charged[i].value_or(0) + out.charges[c].amount;
  if (c != out.charges.size()) {
    std::unordered_map<market::BidId, market::Micros> by_bid;
    for (auto& ch : out.charges) by_bid[ch.bid_id] += ch.amount;
    for (size_t i = 0; i < n; ++i) {
      auto it = by_bid.find(out.allocations[i].bid_id);
      charged[i] = it == by_bid.end() ? std::nullopt : std::optional<market::Micros>(it->second);
    }
  }
  for (size_t i = 0; i < n; ++i) {
    const market::Allocation& a = out.allocations[i];
    const market::Allocation* old = prev[i];
    bool changed = !old || old->quantity != a.quantity || old->price != a.price;
    if (std::binary_search(sent.begin(), sent.end(), a.vm))
      if (auto t = targets_.find(a.vm); t != targets_.end())
        spdlog::info("bid={} vm={} host={} shift command {} sent for its allocation", a.bid_id, a.vm, a.host,
                     t->second.command_id);
    // A charge is logged at info when the allocation starts or changes; every tick's charge at debug.
    if (charged[i]) {
      if (changed)
        spdlog::info(
            "bid={} vm={} account={} charged {} ucredits at tick {} ({} x {} ucredits/unit-s; charged every tick "
            "while allocated)",
            a.bid_id, a.vm, a.account, *charged[i], out.tick, a.quantity, a.price);
      else
        spdlog::debug("bid={} vm={} account={} charged {} ucredits at tick {}", a.bid_id, a.vm, a.account, *charged[i],
                      out.tick);
    }
  }
  // Ended since the last tick (a cancel drops the bid's holding from the market at once; it ends here).
  for (size_t j : ended) {
    const market::Allocation& a = last_allocs_[j];
    spdlog::info(
        "bid={} vm={} account={} allocation ended at tick {} (the VM returns to its baseline unless other bids "
        "hold it)",
        a.bid_id, a.vm, a.account, out.tick);
  }
}

void MarketService::publish_bid(const market::Bid& b, market::BidState state, std::string outcome, std::string reason) {
  // Each outcome once at info; the same failure repeated tick after tick at debug.
  bool repeated = false;
  if (outcome == "failed") {
    auto& last = failure_logged_[b.id];
    repeated = last == reason;
    last = reason;
    if (failure_logged_.size() > 100000) failure_logged_.clear();
  } else {
    failure_logged_.erase(b.id);
  }
  const std::string why = reason.empty() ? "" : ": " + reason;
  if (repeated || outcome == "submitted")
    spdlog::debug("bid={} vm={} account={} {}{}", b.id, b.vm, b.account, outcome, why);
  else
    spdlog::info("bid={} vm={} account={} {}{}", b.id, b.vm, b.account, outcome, why);
  if (!link_) return;
  link_->publish_event("bid." + b.account, v1::MarketEventBody::BidOutcome,
                       [this, b, state, outcome, reason](flatbuffers::FlatBufferBuilder& fbb) {
                         std::lock_guard lk(mu_);  // bid_info reads the market (runs on the messaging thread)
                         auto info = bid_info(fbb, b, state);
                         return v1::CreateBidOutcomeDirect(fbb, info, outcome.c_str(), reason.c_str()).Union();
                       });
}

Result<ReplyBody> MarketService::policy_reply(const std::string& vm, flatbuffers::FlatBufferBuilder& fbb) const {
  rescue::SlaPolicy p;
  if (auto it = policies_.find(vm); it != policies_.end())
    p = it->second;
  else
    p.rescue = false;    // no policy set: no rescue
  market::BidId rb = 0;  // the newest rescue in force for the VM, whichever signal raised it
  for (auto it = rescue_bid_.lower_bound({vm, 0}); it != rescue_bid_.end() && it->first.first == vm; ++it)
    rb = std::max(rb, it->second);
  std::string owner = owner_of(vm);
  auto pol = v1::CreateVmPolicyDirect(fbb, vm.c_str(), owner.c_str(), p.rescue, p.runq_wait_permille, p.blk_p99_us,
                                      p.drops_per_s, p.max_price, p.budget_per_hour, rb);
  return ReplyBody{v1::ApiReplyBody::PolicyReply,
                   v1::CreatePolicyReply(fbb, pol, p.breach_intervals, p.recover_intervals, p.cpu_step,
                                         p.disk_iops_step, p.net_kbps_step)
                       .Union()};
}

Result<ReplyBody> MarketService::quote(const v1::QuoteQuery& q, flatbuffers::FlatBufferBuilder& fbb) const {
  std::string host(sv(q.host()));
  if (q.vm_uuid() && q.vm_uuid()->size()) {
    auto v = vms_.find(std::string(sv(q.vm_uuid())));
    if (v == vms_.end()) return refuse(Errc::not_found, "unknown VM " + std::string(sv(q.vm_uuid())));
    host = v->second.host;
  }
  if (host.empty()) return refuse(Errc::invalid_argument, "quote needs a VM or a host");
  if (!hosts_.contains(host)) return refuse(Errc::not_found, "unknown host " + host);
  auto r = traded_from_wire(q.resource());
  if (!r)
    return refuse(Errc::invalid_argument,
                  "resource " + std::string(v1::EnumNameResource(q.resource())) + " is not traded");
  auto tier = market::parse_tier(tier_text(q.tier()));
  if (!tier) return refuse(Errc::invalid_argument, "unknown tier");
  int64_t qty = q.quantity() > 0 ? q.quantity() : 1;
  // The book as it stands now, plus a hypothetical bid for qty at any price, cleared by the rule.
  market::BookParams params;
  params.supply = market_.supply(host, *r);
  for (int t = 0; t < market::kTierCount; ++t) params.reserve[t] = cfg_.market.reserve[static_cast<size_t>(*r)][t];
  params.hysteresis_pct = cfg_.market.hysteresis_pct;
  params.give_notice = cfg_.market.notice_ticks > 0;
  std::vector<market::BookBid> book;
  uint64_t max_seq = 0;
  market::Tick last = market_.last_tick();
  for (auto& [id, b] : market_.bids()) {
    if (b.host != host || b.resource != *r || b.state != market::BidState::active) continue;
    market::BookBid bb{b.id, b.tier, b.max_price, b.quantity, b.min_fill ? b.min_fill : b.quantity, b.seq};
    if (auto it = market_.allocations().find(b.id); it != market_.allocations().end()) {
      bb.held = it->second.quantity;
      bb.pinned = it->second.since + cfg_.market.hold_ticks > last + 1;
    }
    max_seq = std::max(max_seq, b.seq);
    book.push_back(bb);
  }
  market::BookBid probe{0, *tier, std::numeric_limits<market::Micros>::max() / 4, qty, 1, max_seq + 1};
  book.push_back(probe);
  auto res = market::clear_book(params, book);
  int64_t got = res.fills.back().quantity;
  market::Micros price = res.price[static_cast<size_t>(*tier)];
  std::vector<flatbuffers::Offset<v1::PriceInfo>> hist;
  if (auto it = prices_.find({host, *r, *tier}); it != prices_.end()) {
    size_t n = std::min<size_t>(it->second.size(), q.history());
    for (auto p = it->second.end() - static_cast<std::ptrdiff_t>(n); p != it->second.end(); ++p)
      hist.push_back(v1::CreatePriceInfoDirect(fbb, host.c_str(), wire(*r), wire(*tier), p->price, params.supply,
                                               p->sold, p->tick));
  }
  auto cost = static_cast<int64_t>(static_cast<market::Wide>(price) * got * cfg_.market.tick_ms / 1000);
  auto body = v1::CreateQuoteReplyDirect(fbb, host.c_str(), wire(*r), wire(*tier), qty, price, got, cost,
                                         cfg_.market.tick_ms, &hist);
  return ReplyBody{v1::ApiReplyBody::QuoteReply, body.Union()};
}

Result<ReplyBody> MarketService::handle(const Caller& caller, const v1::ApiRequest& request,
                                        flatbuffers::FlatBufferBuilder& fbb) {
  std::lock_guard lk(mu_);
  auto deny = [&](const std::string& acct) {
    return refuse(Errc::permission_denied,
                  (caller.name.empty() ? std::string("caller") : caller.name) + " may not act on account " + acct);
  };
  auto admin_only = [&](const char* what) {
    return refuse(Errc::permission_denied, std::string(what) + " is for admins only");
  };
  auto bid_list_reply = [&](const std::vector<market::Bid>& bids) {
    std::vector<flatbuffers::Offset<v1::BidInfo>> v;
    for (auto& b : bids) v.push_back(bid_info(fbb, b, b.state));
    return ReplyBody{v1::ApiReplyBody::BidListReply, v1::CreateBidListReplyDirect(fbb, &v).Union()};
  };
  switch (request.body_type()) {
    case v1::ApiRequestBody::AccountCreate: {
      auto* r = request.body_as_AccountCreate();
      if (caller.role != msg::Role::admin) return admin_only("creating an account");
      std::string id(sv(r->account()));
      if (!msg::valid_name(id))
        return refuse(Errc::invalid_argument,
                      "account name '" + id + "' is not valid (letters, digits, '-', '_', '.')");
      const uint64_t created = msg::now_ns();
      MORPH_TRY(exchange_.open_account({id, 0}, std::string(sv(r->display_name())), created));
      accounts_[id] = {std::string(sv(r->display_name())), created};
      feed_inventory();  // its VMs can be bid for at once, not only after the next tick
      spdlog::info("account {} created by {}", id, caller.name.empty() ? "local admin" : caller.name);
      return ReplyBody{v1::ApiReplyBody::AccountReply, v1::CreateAccountReply(fbb, account_info(fbb, id)).Union()};
    }
    case v1::ApiRequestBody::AccountGet: {
      std::string id(sv(request.body_as_AccountGet()->account()));
      if (!caller.may_act_on(id)) return deny(id);
      if (!accounts_.contains(id)) return refuse(Errc::not_found, "unknown account " + id);
      return ReplyBody{v1::ApiReplyBody::AccountReply, v1::CreateAccountReply(fbb, account_info(fbb, id)).Union()};
    }
    case v1::ApiRequestBody::AccountList: {
      std::vector<flatbuffers::Offset<v1::AccountInfo>> v;
      for (auto& [id, m] : accounts_)
        if (caller.may_act_on(id)) v.push_back(account_info(fbb, id));
      return ReplyBody{v1::ApiReplyBody::AccountListReply, v1::CreateAccountListReplyDirect(fbb, &v).Union()};
    }
    case v1::ApiRequestBody::AccountDeposit: {
      auto* r = request.body_as_AccountDeposit();
      if (caller.role != msg::Role::admin) return admin_only("depositing");
      std::string id(sv(r->account()));
      if (r->amount_ucredits() <= 0) return refuse(Errc::invalid_argument, "deposit amount must be positive");
      MORPH_TRY(exchange_.deposit(id, r->amount_ucredits(), std::string(sv(r->reference()))));
      return ReplyBody{v1::ApiReplyBody::AccountReply, v1::CreateAccountReply(fbb, account_info(fbb, id)).Union()};
    }
    case v1::ApiRequestBody::BidSubmit: {
      auto* r = request.body_as_BidSubmit();
      std::string acct(sv(r->account()));
      if (!caller.may_act_on(acct)) return deny(acct);
      auto res = traded_from_wire(r->resource());
      if (!res)
        return refuse(Errc::invalid_argument,
                      std::string("resource ") + v1::EnumNameResource(r->resource()) + " is not traded on the market");
      market::BidRequest req{acct,
                             std::string(sv(r->vm_uuid())),
                             *res,
                             tier_text(r->tier()),
                             r->quantity(),
                             r->min_quantity(),
                             r->max_price_ucredits(),
                             0};
      if (r->tier() > v1::BidTier::MAX) req.tier = std::to_string(static_cast<int>(r->tier()));
      if (r->expires_ns()) {
        uint64_t now = msg::now_ns();
        if (r->expires_ns() <= now) return refuse(Errc::invalid_argument, "expires_ns is in the past");
        req.expiry = market_.last_tick() + std::max<uint64_t>(1, (r->expires_ns() - now + tick_ns() - 1) / tick_ns());
      }
      MORPH_TRY_ASSIGN(auto bid, exchange_.submit(req));
      spdlog::info("bid={} vm={} account={} submitted: {} {} x{} at <= {}", bid.id, bid.vm, bid.account,
                   market::tier_name(bid.tier), resource_name(bid.resource), bid.quantity, bid.max_price);
      publish_bid(bid, bid.state, "submitted", std::string(sv(r->client_ref())));
      return ReplyBody{v1::ApiReplyBody::BidReply, v1::CreateBidReply(fbb, bid_info(fbb, bid, bid.state)).Union()};
    }
    case v1::ApiRequestBody::BidAmend: {
      auto* r = request.body_as_BidAmend();
      const auto* b = market_.find_bid(r->bid_id());
      if (!b) return refuse(Errc::not_found, "unknown or closed bid " + std::to_string(r->bid_id()));
      std::string acct = b->account;
      if (!caller.may_act_on(acct)) return deny(acct);
      market::BidAmendment ch;
      if (r->quantity()) ch.quantity = *r->quantity();
      if (r->min_quantity()) ch.min_fill = *r->min_quantity();
      if (r->max_price_ucredits()) ch.max_price = *r->max_price_ucredits();
      if (r->expires_ns()) {
        uint64_t now = msg::now_ns();
        ch.expiry = *r->expires_ns() == 0
                        ? 0
                        : market_.last_tick() +
                              std::max<uint64_t>(1, (*r->expires_ns() > now ? *r->expires_ns() - now : 0) / tick_ns());
      }
      MORPH_TRY_ASSIGN(auto bid, exchange_.amend(acct, r->bid_id(), ch));
      publish_bid(bid, bid.state, "amended", "");
      return ReplyBody{v1::ApiReplyBody::BidReply, v1::CreateBidReply(fbb, bid_info(fbb, bid, bid.state)).Union()};
    }
    case v1::ApiRequestBody::BidCancel: {
      auto id = request.body_as_BidCancel()->bid_id();
      const auto* b = market_.find_bid(id);
      if (!b) return refuse(Errc::not_found, "unknown or closed bid " + std::to_string(id));
      market::Bid copy = *b;
      if (!caller.may_act_on(copy.account)) return deny(copy.account);
      MORPH_TRY(exchange_.cancel(copy.account, id));
      rescue_ids_.erase(id);
      publish_bid(copy, market::BidState::cancelled, "cancelled", "");
      return ReplyBody{v1::ApiReplyBody::BidReply,
                       v1::CreateBidReply(fbb, bid_info(fbb, copy, market::BidState::cancelled)).Union()};
    }
    case v1::ApiRequestBody::BidList: {
      auto* r = request.body_as_BidList();
      std::string acct(sv(r->account())), vm(sv(r->vm_uuid()));
      if (!acct.empty() && !caller.may_act_on(acct)) return deny(acct);
      std::vector<market::Bid> out;
      for (auto& b : all_bids())
        if ((acct.empty() || b.account == acct) && (vm.empty() || b.vm == vm) && caller.may_act_on(b.account))
          out.push_back(b);
      return bid_list_reply(out);
    }
    case v1::ApiRequestBody::PricesQuery: {
      std::string host(sv(request.body_as_PricesQuery()->host()));
      std::vector<flatbuffers::Offset<v1::PriceInfo>> v;
      for (auto& [k, h] : prices_) {
        auto& [hh, r, t] = k;
        if ((!host.empty() && hh != host) || h.empty()) continue;
        v.push_back(v1::CreatePriceInfoDirect(fbb, hh.c_str(), wire(r), wire(t), h.back().price, market_.supply(hh, r),
                                              h.back().sold, h.back().tick));
      }
      return ReplyBody{v1::ApiReplyBody::PricesReply, v1::CreatePricesReplyDirect(fbb, &v).Union()};
    }
    case v1::ApiRequestBody::AllocationsQuery: {
      auto* r = request.body_as_AllocationsQuery();
      std::string host(sv(r->host())), vm(sv(r->vm_uuid())), acct(sv(r->account()));
      std::vector<flatbuffers::Offset<v1::AllocationInfo>> v;
      std::map<market::BidId, market::Allocation> sorted(market_.allocations().begin(), market_.allocations().end());
      for (auto& [id, a] : sorted) {
        if ((!host.empty() && a.host != host) || (!vm.empty() && a.vm != vm) || (!acct.empty() && a.account != acct))
          continue;
        if (!caller.may_act_on(a.account)) continue;
        v.push_back(alloc_info(fbb, a));
      }
      return ReplyBody{v1::ApiReplyBody::AllocationsReply, v1::CreateAllocationsReplyDirect(fbb, &v).Union()};
    }
    case v1::ApiRequestBody::LedgerQuery: {
      // Served from the ledger's journal (SQLite): the durable history, across restarts.
      auto* r = request.body_as_LedgerQuery();
      ledger::JournalQuery jq;
      jq.account = std::string(sv(r->account()));
      if (!jq.account.empty() && !caller.may_act_on(jq.account)) return deny(jq.account);
      if (caller.role != msg::Role::admin) {  // a tenant sees only its own account, whatever it asked for
        if (caller.account.empty()) return deny("(any)");
        jq.account = caller.account;
      }
      jq.since_tick = r->since_tick();
      jq.kind = std::string(sv(r->kind()));
      jq.before_id = r->before_entry();
      jq.limit = r->limit() + 1;  // one more than asked: tells whether an older page exists
      MORPH_TRY_ASSIGN(auto rows, ledger_->journal(jq));
      uint64_t next = 0;  // the cursor for the page before this one: its oldest entry's id
      if (rows.size() > r->limit()) {
        rows.erase(rows.begin());
        next = rows.front().id;
      }
      std::vector<flatbuffers::Offset<v1::LedgerEntry>> v;
      for (auto& e : rows)
        v.push_back(v1::CreateLedgerEntryDirect(fbb, e.id, e.tick, e.account.c_str(), e.kind.c_str(), e.amount, e.bid,
                                                e.reason.c_str(), e.ts_ns));
      return ReplyBody{v1::ApiReplyBody::LedgerReply, v1::CreateLedgerReplyDirect(fbb, &v, next).Union()};
    }
    case v1::ApiRequestBody::PolicyGet: {
      std::string vm(sv(request.body_as_PolicyGet()->vm_uuid()));
      if (!vms_.contains(vm)) return refuse(Errc::not_found, "unknown VM " + vm);
      if (!caller.may_act_on(owner_of(vm))) return deny(owner_of(vm));
      return policy_reply(vm, fbb);
    }
    case v1::ApiRequestBody::PolicySet: {
      auto* r = request.body_as_PolicySet();
      std::string vm(sv(r->vm_uuid()));
      if (!vms_.contains(vm)) return refuse(Errc::not_found, "unknown VM " + vm);
      std::string owner = owner_of(vm);
      if (owner.empty()) return refuse(Errc::invalid_argument, "VM " + vm + " has no owner account");
      if (!caller.may_act_on(owner)) return deny(owner);
      rescue::SlaPolicy p;
      if (auto it = policies_.find(vm); it != policies_.end()) p = it->second;
      p.vm = vm;
      p.account = owner;
      if (r->rescue()) p.rescue = *r->rescue();
      if (r->runq_wait_permille()) p.runq_wait_permille = *r->runq_wait_permille();
      if (r->blk_p99_us()) p.blk_p99_us = *r->blk_p99_us();
      if (r->drops_per_s()) p.drops_per_s = *r->drops_per_s();
      if (r->max_price_ucredits()) p.max_price = *r->max_price_ucredits();
      if (r->budget_ucredits_per_hour()) p.budget_per_hour = *r->budget_ucredits_per_hour();
      // Detection counts and step sizes: each named in the refusal, with its range (docs/market.md).
      auto count_in = [](const auto& v) { return !v || (*v >= kMinIntervals && *v <= kMaxIntervals); };
      auto step_in = [](const auto& v) { return !v || (*v >= 1 && *v <= kMaxStep); };
      for (auto [name, v] :
           {std::pair{"breach_intervals", r->breach_intervals()}, {"recover_intervals", r->recover_intervals()}})
        if (!count_in(v))
          return refuse(Errc::invalid_argument, std::string(name) + " " + std::to_string(*v) + " out of range (" +
                                                    std::to_string(kMinIntervals) + ".." +
                                                    std::to_string(kMaxIntervals) + ")");
      for (auto [name, v] : {std::pair{"cpu_step", r->cpu_step()},
                             {"disk_iops_step", r->disk_iops_step()},
                             {"net_kbps_step", r->net_kbps_step()}})
        if (!step_in(v))
          return refuse(Errc::invalid_argument, std::string(name) + " " + std::to_string(*v) + " out of range (1.." +
                                                    std::to_string(kMaxStep) + ")");
      if (r->breach_intervals()) p.breach_intervals = *r->breach_intervals();
      if (r->recover_intervals()) p.recover_intervals = *r->recover_intervals();
      if (r->cpu_step()) p.cpu_step = *r->cpu_step();
      if (r->disk_iops_step()) p.disk_iops_step = *r->disk_iops_step();
      if (r->net_kbps_step()) p.net_kbps_step = *r->net_kbps_step();
      if (p.rescue && p.max_price <= 0)
        return refuse(Errc::invalid_argument, "rescue needs a max price (max_price_ucredits > 0)");
      {
        rescue::RescueEvaluator check;  // validate before it is stored
        MORPH_TRY(check.set_policy(p));
      }
      MORPH_TRY(ledger_->put_policy({p.vm, p.account, p.rescue, p.runq_wait_permille, p.blk_p99_us, p.drops_per_s,
                                     p.breach_intervals, p.recover_intervals, p.cpu_step, p.disk_iops_step,
                                     p.net_kbps_step, p.max_price, p.budget_per_hour, p.funds_horizon_s}));
      MORPH_TRY(rescue_.set_policy(p));
      policies_[vm] = p;
      spdlog::info(
          "vm={} policy set: rescue {}, runq wait > {} permille, max price {}, budget {}/h, breach {} "
          "recover {} intervals, steps cpu {} mc disk {} iops net {} kbps",
          vm, p.rescue, p.runq_wait_permille, p.max_price, p.budget_per_hour, p.breach_intervals, p.recover_intervals,
          p.cpu_step, p.disk_iops_step, p.net_kbps_step);
      return policy_reply(vm, fbb);
    }
    case v1::ApiRequestBody::QuoteQuery:
      return quote(*request.body_as_QuoteQuery(), fbb);
    case v1::ApiRequestBody::ShiftsQuery: {
      auto* r = request.body_as_ShiftsQuery();
      std::string host(sv(r->host()));
      std::vector<const ShiftRow*> rows;
      for (auto it = shifts_.rbegin(); it != shifts_.rend() && rows.size() < r->limit(); ++it) {
        if (!host.empty() && it->host != host) continue;
        if (caller.role != msg::Role::admin && !caller.may_act_on(owner_of(it->vm))) continue;
        rows.push_back(&*it);
      }
      std::reverse(rows.begin(), rows.end());
      std::vector<flatbuffers::Offset<v1::ShiftRecord>> v;
      for (auto* s : rows) {
        std::vector<flatbuffers::Offset<v1::Adjustment>> adj;
        for (auto& a : s->adjustments)
          adj.push_back(v1::CreateAdjustment(fbb, a.resource, a.value, fbb.CreateString(a.target)));
        auto err = v1::CreateErrorDirect(fbb, s->error, s->message.c_str());
        v.push_back(v1::CreateShiftRecordDirect(fbb, s->host.c_str(), s->command_id, s->vm.c_str(), &adj,
                                                s->phase.c_str(), err, s->ts));
      }
      return ReplyBody{v1::ApiReplyBody::ShiftsReply, v1::CreateShiftsReplyDirect(fbb, &v).Union()};
    }
    case v1::ApiRequestBody::VmOwnerSet: {
      auto* r = request.body_as_VmOwnerSet();
      if (caller.role != msg::Role::admin) return admin_only("setting a VM's owner");
      std::string vm(sv(r->vm_uuid())), acct(sv(r->account()));
      if (!vms_.contains(vm)) return refuse(Errc::not_found, "unknown VM " + vm);
      if (!accounts_.contains(acct)) return refuse(Errc::not_found, "unknown account " + acct);
      MORPH_TRY(
          ledger_->put_owner_override({vm, acct, caller.name.empty() ? "local admin" : caller.name, msg::now_ns()}));
      owner_override_[vm] = acct;
      feed_inventory();
      spdlog::info("vm={} owner set to {} by admin", vm, acct);
      return policy_reply(vm, fbb);
    }
    default:
      return refuse(Errc::invalid_argument,
                    std::string(v1::EnumNameApiRequestBody(request.body_type())) + ": not a market request");
  }
}

void MarketService::snapshot(flatbuffers::FlatBufferBuilder& fbb,
                             std::vector<flatbuffers::Offset<v1::PriceInfo>>& prices,
                             std::vector<flatbuffers::Offset<v1::AllocationInfo>>& allocations) {
  std::lock_guard lk(mu_);
  for (auto& [k, h] : prices_) {
    if (h.empty()) continue;
    auto& [host, r, t] = k;
    prices.push_back(v1::CreatePriceInfoDirect(fbb, host.c_str(), wire(r), wire(t), h.back().price,
                                               market_.supply(host, r), h.back().sold, h.back().tick));
  }
  for (auto& [id, a] : market_.allocations()) allocations.push_back(alloc_info(fbb, a));
}

void MarketService::on_shift_result(const std::string& host, const msg::ShiftOutcome& r) {
  std::lock_guard lk(mu_);
  std::string phase = r.phase();
  shifts_.push_back({host, r.command_id, r.vm_uuid, r.in_force, phase, r.error, r.error_message, msg::now_ns()});
  while (shifts_.size() > 500) shifts_.pop_front();
  if (r.error != v1::ErrorCode::ok)
    spdlog::warn("vm={} host={} shift command {} {}: {}", r.vm_uuid, host, r.command_id, phase, r.error_message);
}

void MarketService::on_host_change(const std::string& host, bool up) {
  std::lock_guard lk(mu_);
  auto it = hosts_.find(host);
  if (it == hosts_.end() || it->second.up == up) return;
  it->second.up = up;
  hosts_changed_ = true;
  if (up)
    spdlog::info("host={} market: back up; it offers its capacity again from the next tick", host);
  else
    spdlog::warn(
        "host={} market: down; it offers nothing until it is back, so its allocations end at the next tick and are no "
        "longer charged",
        host);
}

void MarketService::on_host_hello(const v1::HostHello& hello) {
  std::lock_guard lk(mu_);
  std::string host(sv(hello.host()));
  HostEntry h;
  if (hello.capacity())
    for (const auto* c : *hello.capacity())
      if (auto r = traded_from_wire(c->resource())) market::at(h.capacity, *r) = c->amount();
  hosts_[host] = h;
  // The VMs this host reported until now (one another host reports since is that host's).
  std::vector<std::string> before = std::move(host_vms_[host]);
  host_vms_[host].clear();
  std::erase_if(before, [&](const std::string& id) {
    auto v = vms_.find(id);
    return v == vms_.end() || v->second.host != host;
  });
  for (auto& id : before) vms_.erase(id);
  if (hello.vms())
    for (const auto* v : *hello.vms()) {
      VmEntry e{host, std::string(sv(v->owner())), {}};
      if (v->baseline())
        for (const auto* b : *v->baseline())
          if (auto r = traded_from_wire(b->resource())) market::at(e.baseline, *r) = b->amount();
      if (v->ceiling())
        for (const auto* c : *v->ceiling())
          if (auto r = traded_from_wire(c->resource())) market::at(e.ceiling, *r) = c->amount();
      std::string id(sv(v->uuid()));
      if (auto old = vms_.find(id); old == vms_.end() || old->second.host != host) host_vms_[host].push_back(id);
      vms_[id] = e;
    }
  // A VM the host no longer reports (stopped, gone; one that moved is reported by its new host) can have
  // nothing applied: its bids sit out of clearing, so its allocations end and are not charged, until it is
  // reported again (feed_inventory upserts it).
  for (auto& id : before)
    if (!vms_.contains(id) && market_.set_vm_absent(id).ok())
      spdlog::info("vm={} host={} market: no longer reported by its host; its bids sit out until it is back", id, host);
  feed_host(host);  // this host only: feeding the whole fleet on each hello made bringing up N hosts O(N²)
}

void MarketService::on_kpi_report(const v1::KpiReport& report, uint64_t /*received_ns*/) {
  if (!report.vms()) return;
  std::lock_guard lk(mu_);
  if (policies_.empty()) return;
  for (const auto* vk : *report.vms()) {
    std::string vm(sv(vk->uuid()));
    if (!policies_.contains(vm)) continue;
    auto owner = owner_of(vm);
    auto bal = market_.balance(owner);
    auto actions = rescue_.observe(msg::to_vm_kpis(*vk), bal ? *bal : 0);
    for (auto& a : actions) {
      switch (a.kind) {
        case rescue::RescueAction::Kind::raise: {
          a.bid.account = owner;
          // The step shrinks to what the VM can still use under its ceiling (a 1-vCPU VM at 750 mc has 250
          // left); with nothing left the rescue cannot help and is not raised.
          if (int64_t room = market_.room(vm, a.bid.resource); room < a.bid.quantity) {
            if (room <= 0) {
              rescue_.abandon(vm, a.signal);
              spdlog::warn("vm={} rescue not raised: no {} left under the VM's ceiling ({})", vm,
                           resource_name(a.bid.resource), a.why);
              continue;
            }
            a.bid.quantity = room;
            a.bid.min_fill = std::min(a.bid.min_fill, room);
          }
          auto bid = exchange_.submit_rescue(a.bid, rescue::signal_name(a.signal));
          if (!bid) {
            rescue_.abandon(vm, a.signal);
            spdlog::warn("vm={} rescue bid refused: {} ({})", vm, bid.error().what(), a.why);
            continue;
          }
          rescue_bid_[{vm, static_cast<int>(a.signal)}] = bid->id;
          rescue_ids_.insert(bid->id);
          spdlog::info("vm={} bid={} rescue raised: {}", vm, bid->id, a.why);
          publish_bid(*bid, bid->state, "rescue_raised", a.why);
          break;
        }
        case rescue::RescueAction::Kind::retire: {
          auto it = rescue_bid_.find({vm, static_cast<int>(a.signal)});
          if (it == rescue_bid_.end()) continue;
          const auto* b = market_.find_bid(it->second);
          if (b) {
            market::Bid copy = *b;
            if (auto st = exchange_.cancel(copy.account, copy.id); !st)
              spdlog::warn("vm={} bid={} rescue retire: {}", vm, copy.id, st.error().what());
            else
              publish_bid(copy, market::BidState::cancelled, "rescue_retired", a.why);
          }
          spdlog::info("vm={} bid={} rescue retired: {}", vm, it->second, a.why);
          rescue_ids_.erase(it->second);
          rescue_bid_.erase(it);
          break;
        }
        case rescue::RescueAction::Kind::refused: {
          spdlog::warn("vm={} rescue refused: {}", vm, a.why);
          if (link_) {
            market::Bid probe;
            probe.account = owner;
            probe.vm = vm;
            probe.tier = Tier::sla;
            probe.resource = a.bid.resource;
            probe.quantity = a.bid.quantity;
            probe.max_price = a.bid.max_price;
            std::string why = a.why;
            link_->publish_event("bid." + owner, v1::MarketEventBody::BidOutcome,
                                 [this, probe, why](flatbuffers::FlatBufferBuilder& fbb) {
                                   std::lock_guard lk2(mu_);
                                   auto info = bid_info(fbb, probe, market::BidState::cancelled);
                                   return v1::CreateBidOutcomeDirect(fbb, info, "rescue_refused", why.c_str()).Union();
                                 });
          }
          break;
        }
      }
    }
  }
}

}  // namespace morph::controller
