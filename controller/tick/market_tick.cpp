#include "controller/tick/market_tick.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <optional>

namespace morph::controller {

MarketTick::MarketTick(MarketState& state, MarketViews& views, ShiftDispatch& shifts, metrics::Registry* metrics)
    : state_(state), views_(views), shifts_(shifts) {
  if (!metrics) return;
  m_ticks_ = metrics->counter("morph_market_ticks_total", "Market ticks cleared and committed").with({});
  m_tick_errors_ = metrics->counter("morph_market_tick_errors_total", "Ticks that failed to clear or commit").with({});
  m_revenue_ = metrics->counter("morph_market_revenue_ucredits_total", "Charges collected, micro-credits").with({});
  m_clear_s_ = metrics
                   ->histogram("morph_market_clearing_seconds", "Time to clear and commit one tick", {},
                               {0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1})
                   .with({});
  // The two parts of it, each on its own (Exchange::last_phases): what grows with the fleet is told apart.
  const std::vector<double> phase_buckets{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
  m_clear_only_s_ =
      metrics->histogram("morph_market_clear_seconds", "Time to clear one tick (Market::clear)", {}, phase_buckets)
          .with({});
  m_commit_s_ = metrics
                    ->histogram("morph_ledger_commit_seconds", "Time of one tick's ledger transaction, fsync included",
                                {}, phase_buckets)
                    .with({});
  auto& g = metrics->gauge("morph_market_bids", "Live bids by tier", {"tier"});
  for (int t = 0; t < market::kTierCount; ++t) m_bids_[t] = g.with({market::tier_name(static_cast<market::Tier>(t))});
}

void MarketTick::recovered() {
  std::vector<market::Allocation> held;
  held.reserve(state_.market().allocations().size());
  for (auto& [id, a] : state_.market().allocations()) held.push_back(a);
  std::sort(held.begin(), held.end(), [](auto& x, auto& y) { return x.bid_id < y.bid_id; });
  keep_allocations(std::move(held));
}

void MarketTick::keep_allocations(std::vector<market::Allocation> allocations) {
  last_allocs_ = std::move(allocations);
  last_ix_.clear();
  last_ix_.reserve(last_allocs_.size());
  for (size_t i = 0; i < last_allocs_.size(); ++i) last_ix_.emplace(last_allocs_[i].bid_id, i);
}

namespace {
auto by_bid(const std::vector<market::Allocation>& v) {
  return [&v](size_t x, size_t y) { return v[x].bid_id < v[y].bid_id; };
}
}  // namespace

Status MarketTick::run() {
  const uint64_t t0 = state_.clock().mono_ns();
  auto res = state_.exchange().run_tick();
  const double secs = static_cast<double>(state_.clock().mono_ns() - t0) / 1e9;
  if (m_commit_s_) {
    m_clear_only_s_->observe(static_cast<double>(state_.exchange().last_phases().clear_ns) / 1e9);
    m_commit_s_->observe(static_cast<double>(state_.exchange().last_phases().commit_ns) / 1e9);
  }
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
  std::vector<size_t> ended;
  for (size_t j = 0; j < last_allocs_.size(); ++j)
    if (!kept[j]) ended.push_back(j);
  std::sort(ended.begin(), ended.end(), by_bid(last_allocs_));
  publish(out, prev, ended);
  // Log search (docs/operations.md "Logs"): each step of a bid's story carries bid=<id> and vm=<uuid>.
  auto sent = shifts_.dispatch(out.allocations);
  log_bid_steps(out, prev, sent, ended);
  prev.clear();  // points into last_allocs_
  keep_allocations(std::move(out.allocations));
  if (m_bids_[0]) {
    std::array<int, market::kTierCount> n{};
    for (auto& [id, b] : state_.market().bids()) ++n[static_cast<size_t>(b.tier)];
    for (int t = 0; t < market::kTierCount; ++t) m_bids_[t]->set(n[t]);
  }
  spdlog::debug("market tick {}: {} allocations, {} failures, revenue {}", out.tick, out.allocations.size(),
                out.failures.size(), out.revenue);
  retain();
  return {};
}

void MarketTick::retain() {
  const ledger::RetentionPolicy& policy = state_.config().retention;
  if (policy.keep_ticks == 0) return;
  // A failed batch is retried after the next tick; the tick itself is committed and stands.
  auto r = state_.ledger().retain(policy);
  if (!r) {
    spdlog::warn("ledger retention: {}", r.error().what());
    return;
  }
  if (r->rows > 0)
    spdlog::debug("ledger retention: archived through tick {} ({} rows{})", r->through, r->rows,
                  policy.archive_path.empty() ? ", summed and deleted" : " to " + policy.archive_path);
}

void MarketTick::publish(const market::TickOutcome& out, const std::vector<const market::Allocation*>& prev,
                         const std::vector<size_t>& ended) {
  // Price history and price.<host> events.
  std::map<std::string, std::vector<market::PriceQuote>> by_host;
  for (auto& p : out.prices) {
    state_.record_price({p.host, p.resource, p.tier}, {out.tick, p.price, p.sold});
    by_host[p.host].push_back(p);
  }
  if (!state_.link()) return;
  for (auto& [host, ps] : by_host) views_.publish_prices(host, out.tick, ps);
  // alloc.<host> and bid.<account>: fills that are new or changed, and allocations that ended.
  const market::Market& market = state_.market();
  std::vector<size_t> moved;  // new, or a changed quantity
  for (size_t i = 0; i < out.allocations.size(); ++i)
    if (!prev[i] || prev[i]->quantity != out.allocations[i].quantity) moved.push_back(i);
  std::sort(moved.begin(), moved.end(), by_bid(out.allocations));
  for (size_t i : moved) {
    const market::Allocation& a = out.allocations[i];
    views_.publish_allocation(a, true, prev[i] ? "changed" : "granted");
    if (const auto* b = market.find_bid(a.bid_id))
      views_.publish_bid(*b, b->state, a.quantity < b->quantity ? "partial" : "filled",
                         "tick " + std::to_string(out.tick) + " at " + std::to_string(a.price) + " ucredits/unit-s");
  }
  for (size_t j : ended) {
    market::Allocation gone = last_allocs_[j];
    gone.quantity = 0;
    views_.publish_allocation(gone, false, "ended");
  }
  for (auto& f : out.failures) {
    if (const auto* b = market.find_bid(f.bid_id))
      views_.publish_bid(
          *b, b->state, "failed",
          std::string(market::failure_reason_name(f.reason)) + (f.detail.empty() ? "" : ": " + f.detail));
  }
  for (auto& b : out.bid_changes)
    views_.publish_bid(b, b.state, market::bid_state_name(b.state), market::failure_reason_name(b.state_reason));
}

void MarketTick::log_bid_steps(const market::TickOutcome& out, const std::vector<const market::Allocation*>& prev,
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
      if (uint64_t command = shifts_.command_of(a.vm))
        spdlog::info("bid={} vm={} host={} shift command {} sent for its allocation", a.bid_id, a.vm, a.host, command);
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

}  // namespace morph::controller
