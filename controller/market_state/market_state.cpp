#include "controller/market_state/market_state.h"

namespace morph::controller {

MarketState::MarketState(MarketServiceConfig cfg, std::unique_ptr<ledger::Ledger> ledger, Clock& clock)
    : cfg_(std::move(cfg)),
      clock_(clock),
      ledger_(std::move(ledger)),
      market_(cfg_.market),
      exchange_(market_, *ledger_) {}

Result<std::unique_ptr<MarketState>> MarketState::recover(MarketServiceConfig cfg,
                                                          std::unique_ptr<ledger::Ledger> ledger, Clock& clock,
                                                          ledger::OperatorState& operator_state) {
  cfg.market.tick_ms = static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::milliseconds>(cfg.tick).count());
  MORPH_TRY_ASSIGN(auto snap, ledger->load());
  std::unique_ptr<MarketState> s(new MarketState(std::move(cfg), std::move(ledger), clock));
  MORPH_TRY(s->exchange_.recover());
  for (auto& a : snap.accounts) s->accounts_[a.id] = {};
  MORPH_TRY_ASSIGN(operator_state, s->ledger_->load_operator_state());
  for (auto& a : operator_state.accounts) s->accounts_[a.account] = {a.display_name, a.created_ns};
  for (auto& r : operator_state.rescues)
    (r.signal == ledger::kPredictiveSignal ? s->predictive_ids_ : s->rescue_ids_).insert(r.bid);
  const market::Tick last = s->market_.last_tick();
  const size_t keep = s->cfg_.price_history;
  const market::Tick from = last >= keep ? last - keep + 1 : 0;
  MORPH_TRY_ASSIGN(auto hist, s->ledger_->prices_since(from));
  for (auto& p : hist)
    s->record_price({p.quote.host, p.quote.resource, p.quote.tier}, {p.tick, p.quote.price, p.quote.sold});
  return s;
}

void MarketState::record_price(const PriceKey& key, PricePoint p) {
  auto& h = prices_[key];
  h.push_back(p);
  while (h.size() > cfg_.price_history) h.pop_front();
}

}  // namespace morph::controller
