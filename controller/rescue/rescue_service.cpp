#include "controller/rescue/rescue_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/msg/wire.h"

namespace morph::controller {

void RescueService::restore(const ledger::OperatorState& st) {
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
    p.predictive = r.predictive;
    p.predictive_horizon_s = r.predictive_horizon_s;
    p.predictive_quantile_permille = r.predictive_quantile_permille;
    if (auto ok = evaluator_.set_policy(p); !ok) {
      spdlog::warn("vm={} stored policy not restored: {}", r.vm, ok.error().what());
      continue;
    }
    policies_[r.vm] = p;
  }
  // Every rescue bid stays tagged as one (MarketState), even one whose signal this build does not know.
  for (auto& r : st.rescues) {
    if (r.signal == ledger::kPredictiveSignal) continue;  // the predictive service's (controller/predict/)
    auto sig = rescue::parse_signal(r.signal);
    if (!sig) {
      spdlog::warn("vm={} bid={} rescue with unknown signal '{}'", r.vm, r.bid, r.signal);
      continue;
    }
    rescue_bid_[{r.vm, static_cast<int>(*sig)}] = r.bid;
    if (auto ok = evaluator_.restore_rescue(r.vm, *sig, r.quantity); !ok)
      spdlog::warn("vm={} bid={} rescue not re-armed: {}", r.vm, r.bid, ok.error().what());
  }
}

const rescue::SlaPolicy* RescueService::find_policy(const std::string& vm) const {
  auto it = policies_.find(vm);
  return it == policies_.end() ? nullptr : &it->second;
}

market::BidId RescueService::rescue_bid(const std::string& vm) const {
  market::BidId rb = 0;
  for (auto it = rescue_bid_.lower_bound({vm, 0}); it != rescue_bid_.end() && it->first.first == vm; ++it)
    rb = std::max(rb, it->second);
  return rb;
}

Status RescueService::set_policy(const rescue::SlaPolicy& p) {
  // Detection counts and step sizes: each named in the refusal, with its range (docs/market.md).
  for (auto [name, v] : {std::pair{"breach_intervals", p.breach_intervals}, {"recover_intervals", p.recover_intervals}})
    if (v < kMinIntervals || v > kMaxIntervals)
      return Error(Errc::invalid_argument, std::string(name) + " " + std::to_string(v) + " out of range (" +
                                               std::to_string(kMinIntervals) + ".." + std::to_string(kMaxIntervals) +
                                               ")");
  for (auto [name, v] :
       {std::pair{"cpu_step", p.cpu_step}, {"disk_iops_step", p.disk_iops_step}, {"net_kbps_step", p.net_kbps_step}})
    if (v < 1 || v > kMaxStep)
      return Error(Errc::invalid_argument,
                   std::string(name) + " " + std::to_string(v) + " out of range (1.." + std::to_string(kMaxStep) + ")");
  if (p.rescue && p.max_price <= 0)
    return Error(Errc::invalid_argument, "rescue needs a max price (max_price_ucredits > 0)");
  if (p.predictive && p.max_price <= 0)
    return Error(Errc::invalid_argument, "predictive bids need a max price (max_price_ucredits > 0)");
  if (p.predictive_quantile_permille < kMinQuantilePermille || p.predictive_quantile_permille > kMaxQuantilePermille)
    return Error(Errc::invalid_argument,
                 "predictive_quantile_permille " + std::to_string(p.predictive_quantile_permille) + " out of range (" +
                     std::to_string(kMinQuantilePermille) + ".." + std::to_string(kMaxQuantilePermille) + ")");
  if (p.predictive_horizon_s < 1)
    return Error(Errc::invalid_argument, "predictive_horizon_s must be at least 1 second");
  {
    rescue::RescueEvaluator check;  // validate before it is stored
    MORPH_TRY(check.set_policy(p));
  }
  MORPH_TRY(state_.ledger().put_policy({p.vm, p.account, p.rescue, p.runq_wait_permille, p.blk_p99_us, p.drops_per_s,
                                        p.breach_intervals, p.recover_intervals, p.cpu_step, p.disk_iops_step,
                                        p.net_kbps_step, p.max_price, p.budget_per_hour, p.funds_horizon_s,
                                        p.predictive, p.predictive_horizon_s, p.predictive_quantile_permille}));
  MORPH_TRY(evaluator_.set_policy(p));
  policies_[p.vm] = p;
  spdlog::info(
      "vm={} policy set: rescue {}, runq wait > {} permille, max price {}, budget {}/h, breach {} recover {} "
      "intervals, steps cpu {} mc disk {} iops net {} kbps, predictive {} ({} s ahead, quantile {} permille)",
      p.vm, p.rescue, p.runq_wait_permille, p.max_price, p.budget_per_hour, p.breach_intervals, p.recover_intervals,
      p.cpu_step, p.disk_iops_step, p.net_kbps_step, p.predictive, p.predictive_horizon_s,
      p.predictive_quantile_permille);
  return {};
}

void RescueService::on_kpi_report(const v1::KpiReport& report) {
  if (!report.vms() || policies_.empty()) return;
  for (const auto* vk : *report.vms()) {
    std::string vm(msg::sv(vk->uuid()));
    if (!policies_.contains(vm)) continue;
    const std::string owner = vms_.owner_of(vm);
    auto bal = state_.market().balance(owner);
    auto actions = evaluator_.observe(msg::to_vm_kpis(*vk), bal ? *bal : 0);
    for (auto& a : actions) {
      switch (a.kind) {
        case rescue::RescueAction::Kind::raise:
          raise(vm, owner, a);
          break;
        case rescue::RescueAction::Kind::retire:
          retire(vm, a);
          break;
        case rescue::RescueAction::Kind::refused:
          refused(vm, owner, a);
          break;
      }
    }
  }
}

void RescueService::raise(const std::string& vm, const std::string& owner, rescue::RescueAction& a) {
  a.bid.account = owner;
  // The step shrinks to what the VM can still use under its ceiling (a 1-vCPU VM at 750 mc has 250 left);
  // with nothing left the rescue cannot help and is not raised.
  if (int64_t room = state_.market().room(vm, a.bid.resource); room < a.bid.quantity) {
    if (room <= 0) {
      evaluator_.abandon(vm, a.signal);
      spdlog::warn("vm={} rescue not raised: no {} left under the VM's ceiling ({})", vm, resource_name(a.bid.resource),
                   a.why);
      return;
    }
    a.bid.quantity = room;
    a.bid.min_fill = std::min(a.bid.min_fill, room);
  }
  auto bid = state_.exchange().submit_rescue(a.bid, rescue::signal_name(a.signal));
  if (!bid) {
    evaluator_.abandon(vm, a.signal);
    spdlog::warn("vm={} rescue bid refused: {} ({})", vm, bid.error().what(), a.why);
    return;
  }
  rescue_bid_[{vm, static_cast<int>(a.signal)}] = bid->id;
  state_.tag_rescue(bid->id);
  spdlog::info("vm={} bid={} rescue raised: {}", vm, bid->id, a.why);
  views_.publish_bid(*bid, bid->state, "rescue_raised", a.why);
}

void RescueService::retire(const std::string& vm, const rescue::RescueAction& a) {
  auto it = rescue_bid_.find({vm, static_cast<int>(a.signal)});
  if (it == rescue_bid_.end()) return;
  if (const auto* b = state_.market().find_bid(it->second)) {
    market::Bid copy = *b;
    if (auto st = state_.exchange().cancel(copy.account, copy.id); !st)
      spdlog::warn("vm={} bid={} rescue retire: {}", vm, copy.id, st.error().what());
    else
      views_.publish_bid(copy, market::BidState::cancelled, "rescue_retired", a.why);
  }
  spdlog::info("vm={} bid={} rescue retired: {}", vm, it->second, a.why);
  state_.untag_rescue(it->second);
  rescue_bid_.erase(it);
}

void RescueService::refused(const std::string& vm, const std::string& owner, const rescue::RescueAction& a) {
  spdlog::warn("vm={} rescue refused: {}", vm, a.why);
  // Announced as the bid it would have been.
  market::Bid probe;
  probe.account = owner;
  probe.vm = vm;
  probe.tier = market::Tier::sla;
  probe.resource = a.bid.resource;
  probe.quantity = a.bid.quantity;
  probe.max_price = a.bid.max_price;
  views_.publish_bid_event(probe, market::BidState::cancelled, "rescue_refused", a.why);
}

}  // namespace morph::controller
