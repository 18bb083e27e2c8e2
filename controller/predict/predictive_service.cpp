#include "controller/predict/predictive_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/msg/wire.h"
#include "controller/predict/predictive_plan.h"

namespace morph::controller {

namespace {
constexpr uint64_t kHourNs = 3'600'000'000'000ULL;
}

void PredictiveService::restore(const ledger::OperatorState& st) {
  for (auto& r : st.rescues)
    if (r.signal == ledger::kPredictiveSignal) bids_[r.vm] = r.bid;
}

int PredictiveService::horizon_steps(uint32_t horizon_s) const {
  const uint64_t step = static_cast<uint64_t>(forecasts_->config().step.count());
  return static_cast<int>((uint64_t{horizon_s} * 1'000'000'000ULL + step - 1) / step);
}

Status PredictiveService::check(const rescue::SlaPolicy& p) const {
  if (!p.predictive) return {};
  if (!forecasts_) return Error(Errc::unavailable, "predictive bids need the demand forecaster, which is not running");
  const auto& c = forecasts_->config();
  const uint64_t reach_s =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(c.step * c.max_horizon).count());
  if (horizon_steps(p.predictive_horizon_s) > c.max_horizon)
    return Error(Errc::invalid_argument, "predictive_horizon_s " + std::to_string(p.predictive_horizon_s) +
                                             " out of range (1.." + std::to_string(reach_s) +
                                             ": the forecaster's reach, forecast.step x " +
                                             std::to_string(c.max_horizon) + ")");
  return {};
}

std::optional<VmDemandForecast> PredictiveService::usable(const std::string& vm, std::string& why) const {
  if (!forecasts_) {
    why = "no forecaster running";
    return std::nullopt;
  }
  const uint32_t need = forecasts_->config().min_steps;
  auto f = forecasts_->forecast(vm);
  const uint64_t have = f ? f->steps : 0;
  if (have < need) {
    why = "too little history: " + std::to_string(have) + " of " + std::to_string(need) + " forecast steps of " +
          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(forecasts_->config().step).count()) +
          " s; no predictive bid yet";
    return std::nullopt;
  }
  return f;
}

market::BidId PredictiveService::bid(const std::string& vm) const {
  auto it = bids_.find(vm);
  if (it == bids_.end() || !state_.market().find_bid(it->second)) return 0;
  return it->second;
}

std::string PredictiveService::status(const std::string& vm) const {
  const auto* p = rescue_.find_policy(vm);
  if (!p || !p->predictive) return "off";
  if (auto it = status_.find(vm); it != status_.end()) return it->second;
  std::string why;
  if (!usable(vm, why)) return why;
  return "waiting for the VM's next report";
}

void PredictiveService::on_kpi_report(const v1::KpiReport& report) {
  if (!report.vms() || !forecasts_) return;
  for (const auto* vk : *report.vms()) {
    std::string vm(msg::sv(vk->uuid()));
    const auto* p = rescue_.find_policy(vm);
    if (p && p->predictive) evaluate(vm, *p);
  }
}

void PredictiveService::policy_changed(const std::string& vm) {
  const auto* p = rescue_.find_policy(vm);
  if (p && p->predictive) return;
  status_.erase(vm);
  if (bid(vm)) cancel(vm, "predictive bidding turned off");
}

void PredictiveService::cancel(const std::string& vm, const std::string& why) {
  auto it = bids_.find(vm);
  if (it == bids_.end()) return;
  if (const auto* b = state_.market().find_bid(it->second)) {
    market::Bid copy = *b;
    if (auto st = state_.exchange().cancel(copy.account, copy.id); !st) {
      spdlog::warn("vm={} bid={} predictive cancel: {}", vm, copy.id, st.error().what());
      return;
    }
    views_.publish_bid(copy, market::BidState::cancelled, "predictive_cancelled", why);
    spdlog::info("vm={} bid={} predictive bid cancelled: {}", vm, copy.id, why);
  }
  state_.untag_predictive(it->second);
  bids_.erase(it);
}

void PredictiveService::evaluate(const std::string& vm, const rescue::SlaPolicy& p) {
  std::string why;
  auto f = usable(vm, why);
  const VmRecord* rec = vms_.find_vm(vm);
  if (!f || !rec) {
    status_[vm] = rec ? why : "the VM is not in the market's inventory";
    if (bid(vm)) cancel(vm, status_[vm]);
    return;
  }
  const market::BidId current_id = bid(vm);
  if (!current_id) bids_.erase(vm);  // cancelled or expired elsewhere
  const market::Bid* current = current_id ? state_.market().find_bid(current_id) : nullptr;

  predict::PlanInput in;
  in.ahead = f->ahead;
  in.horizon_steps = horizon_steps(p.predictive_horizon_s);
  in.quantile = p.predictive_quantile_permille / 1000.0;
  in.baseline_mc = market::at(rec->baseline, Resource::cpu);
  in.room_mc = state_.market().room(vm, Resource::cpu) + (current ? current->quantity : 0);
  in.max_price = p.max_price;
  in.budget_per_hour = p.budget_per_hour;
  for (auto& [id, b] : state_.market().bids())
    if (b.vm == vm && state_.is_rescue(id) && b.state == market::BidState::active)
      in.committed_per_hour += b.quantity * b.max_price * 3600;
  in.current = current ? current->quantity : 0;
  const predict::PlanStep step = predict::plan_predictive(in);
  const std::string owner = vms_.owner_of(vm);

  switch (step.kind) {
    case predict::PlanStep::Kind::keep:
      status_[vm] =
          (current ? "bid " + std::to_string(current_id) + " for " + std::to_string(in.current) + " mc in place: "
                   : std::string("no bid needed: ")) +
          step.why;
      return;
    case predict::PlanStep::Kind::cancel:
      cancel(vm, step.why);
      status_[vm] = "no bid needed: " + step.why;
      return;
    case predict::PlanStep::Kind::amend: {
      market::BidAmendment ch;
      ch.quantity = step.quantity;
      ch.min_fill = 1;
      ch.max_price = p.max_price;
      auto b = state_.exchange().amend(current->account, current_id, ch);
      if (!b) {
        status_[vm] = "amend refused: " + b.error().message();
        spdlog::warn("vm={} bid={} predictive amend refused: {}", vm, current_id, b.error().what());
        return;
      }
      views_.publish_bid(*b, b->state, "predictive_amended", step.why);
      spdlog::info("vm={} bid={} predictive bid amended {} -> {} mc: {}", vm, current_id, in.current, step.quantity,
                   step.why);
      status_[vm] = "bid " + std::to_string(current_id) + " for " + std::to_string(step.quantity) + " mc: " + step.why;
      return;
    }
    case predict::PlanStep::Kind::place: {
      if (owner.empty()) {
        status_[vm] = "the VM has no owner account";
        return;
      }
      market::BidRequest req;
      req.account = owner;
      req.vm = vm;
      req.resource = Resource::cpu;
      req.tier = "improve";
      req.quantity = step.quantity;
      req.min_fill = 1;
      req.max_price = p.max_price;
      auto b = state_.exchange().submit_rescue(req, ledger::kPredictiveSignal);
      if (!b) {
        status_[vm] = "bid refused: " + b.error().message();
        spdlog::warn("vm={} predictive bid refused: {} ({})", vm, b.error().what(), step.why);
        return;
      }
      bids_[vm] = b->id;
      state_.tag_predictive(b->id);
      views_.publish_bid(*b, b->state, "predictive_placed", step.why);
      spdlog::info("vm={} bid={} predictive bid placed for {} mc: {}", vm, b->id, step.quantity, step.why);
      status_[vm] = "bid " + std::to_string(b->id) + " for " + std::to_string(step.quantity) + " mc: " + step.why;
      return;
    }
  }
}

PredictiveService::Advice PredictiveService::advice(const std::string& vm) const {
  Advice a;
  const VmRecord* rec = vms_.find_vm(vm);
  if (rec) a.baseline_mc = market::at(rec->baseline, Resource::cpu);
  std::string why;
  auto f = usable(vm, why);
  if (!f) {
    a.note = why;
    return a;
  }
  const uint64_t step_ns = static_cast<uint64_t>(forecasts_->config().step.count());
  const size_t steps = std::min<size_t>(f->ahead.size(), std::max<uint64_t>(1, kHourNs / step_ns));
  double p50 = 0, p90 = 0;
  for (size_t h = 0; h < steps; ++h) {
    p50 = std::max(p50, f->ahead[h].p50);
    p90 = std::max(p90, f->ahead[h].p90);
  }
  a.ready = true;
  a.horizon_s = static_cast<uint32_t>(steps * step_ns / 1'000'000'000ULL);
  a.p50_peak_mc = std::llround(p50);
  a.p90_peak_mc = std::llround(p90);
  a.increment_mc = std::max<int64_t>(0, a.p90_peak_mc - a.baseline_mc);
  a.note = "p90 of demand over the next " + std::to_string(a.horizon_s) + " s from " + std::to_string(f->steps) +
           " forecast steps";
  return a;
}

}  // namespace morph::controller
