#include "controller/rescue/rescue_policy.h"

#include <algorithm>
#include <limits>

#include "common/enum_names.h"
#include "common/kpi/derived.h"
#include "controller/market/money.h"

namespace morph::rescue {

namespace {
constexpr auto kSignalNames = enum_names<Signal::rx_drops>({"runq_wait", "blk_p99", "tx_drops", "rx_drops"});
static_assert(kSignalNames.size() == kSignalCount);
}  // namespace

const char* signal_name(Signal s) noexcept {
  return kSignalNames.name(s);
}

std::optional<Signal> parse_signal(std::string_view name) noexcept {
  return kSignalNames.parse(name);
}

Resource relief_for(Signal s) noexcept {
  switch (s) {
    case Signal::runq_wait:
      return Resource::cpu;
    case Signal::blk_latency:
      return Resource::disk_iops;
    case Signal::tx_drops:
      return Resource::net_out_kbps;  // guest transmit = host outbound from the VM
    case Signal::rx_drops:
      return Resource::net_in_kbps;
  }
  return Resource::cpu;
}

Status RescueEvaluator::set_policy(const SlaPolicy& p) {
  if (p.vm.empty() || p.account.empty()) return Error(Errc::invalid_argument, "rescue policy needs a VM and account");
  if (p.rescue && p.max_price <= 0)
    return Error(Errc::invalid_argument, "rescue policy for " + p.vm + ": max_price must be positive");
  // Bounds keep step x max_price x 3600 inside int64; what the budget and funds checks compute from them is
  // checked arithmetic besides (a restored rescue's quantity is the ledger's).
  auto out_of = [&](const char* field, int64_t v, int64_t lo, int64_t hi) -> Status {
    if (v >= lo && v <= hi) return {};
    return Error(Errc::invalid_argument, "rescue policy for " + p.vm + ": " + field + " " + std::to_string(v) +
                                             " is outside " + std::to_string(lo) + ".." + std::to_string(hi));
  };
  MORPH_TRY(out_of("max_price", p.max_price, 0, kMaxPolicyPrice));
  MORPH_TRY(out_of("budget_per_hour", p.budget_per_hour, 0, market::kMaxBalance));
  MORPH_TRY(out_of("funds_horizon_s", p.funds_horizon_s, 0, market::kMaxFundsHorizonS));
  MORPH_TRY(out_of("cpu_step", p.cpu_step, 1, kMaxStep));
  MORPH_TRY(out_of("disk_iops_step", p.disk_iops_step, 1, kMaxStep));
  MORPH_TRY(out_of("net_kbps_step", p.net_kbps_step, 1, kMaxStep));
  if (p.breach_intervals == 0 || p.recover_intervals == 0)
    return Error(Errc::invalid_argument, "rescue policy for " + p.vm + ": interval counts must be >= 1");
  auto& st = vms_[p.vm];
  st.policy = p;
  return {};
}

Status RescueEvaluator::restore_rescue(const std::string& vm, Signal s, int64_t quantity) {
  auto it = vms_.find(vm);
  if (it == vms_.end()) return Error(Errc::not_found, "rescue of " + vm + ": no policy for this VM");
  if (quantity <= 0) return Error(Errc::invalid_argument, "rescue of " + vm + ": quantity must be positive");
  auto& st = it->second.signals[static_cast<size_t>(s)];
  st.rescuing = true;
  st.quantity = quantity;
  st.healthy = 0;
  st.over = 0;
  return {};
}

void RescueEvaluator::remove_policy(const std::string& vm) {
  vms_.erase(vm);
}

void RescueEvaluator::abandon(const std::string& vm, Signal s) {
  auto it = vms_.find(vm);
  if (it == vms_.end()) return;
  SignalState& st = it->second.signals[static_cast<size_t>(s)];
  st = SignalState{};
}

bool RescueEvaluator::active(const std::string& vm, Signal s) const {
  auto it = vms_.find(vm);
  return it != vms_.end() && it->second.signals[static_cast<size_t>(s)].rescuing;
}

Micros RescueEvaluator::hourly_cost(const VmState& st) const {
  constexpr Micros kPastAnyBudget = std::numeric_limits<Micros>::max();
  Micros c = 0;
  for (const auto& s : st.signals) {
    if (!s.rescuing) continue;
    auto per_s = market::checked_mul(s.quantity, st.policy.max_price);
    auto per_h = per_s ? market::checked_mul(*per_s, 3600) : std::nullopt;
    c = market::saturating_add(c, per_h.value_or(kPastAnyBudget));
  }
  return c;
}

std::vector<RescueAction> RescueEvaluator::observe(const kpi::VmKpis& k, Micros balance) {
  std::vector<RescueAction> out;
  auto it = vms_.find(k.uuid);
  if (it == vms_.end()) it = vms_.find(k.name);
  if (it == vms_.end() || k.interval_ns == 0) return out;
  VmState& st = it->second;
  const SlaPolicy& p = st.policy;

  // Measurements of this interval, and whether each is over its threshold.
  std::array<bool, kSignalCount> over{};
  std::array<std::string, kSignalCount> seen{};
  const uint64_t wait_pm = kpi::runq_wait_permille(k);
  over[0] = p.runq_wait_permille > 0 && wait_pm > p.runq_wait_permille;
  seen[0] = "run-queue wait " + std::to_string(wait_pm) + "‰ (threshold " + std::to_string(p.runq_wait_permille) + "‰)";
  const uint64_t p99 = kpi::hist_percentile_us(k.blk_lat_us, 990);
  over[1] = p.blk_p99_us > 0 && p99 > p.blk_p99_us;
  seen[1] = "block p99 <= " + std::to_string(p99) + " us (threshold " + std::to_string(p.blk_p99_us) + " us)";
  auto per_s = [&](uint64_t n) { return kpi::per_second_floor(n, k.interval_ns); };
  over[2] = p.drops_per_s > 0 && per_s(k.net_tx_drops) > p.drops_per_s;
  seen[2] = "tx drops " + std::to_string(per_s(k.net_tx_drops)) + "/s";
  over[3] = p.drops_per_s > 0 && per_s(k.net_rx_drops) > p.drops_per_s;
  seen[3] = "rx drops " + std::to_string(per_s(k.net_rx_drops)) + "/s";
  // Level hysteresis: while a rescue is in force, an interval counts as healthy only under
  // kRecoverPercent of the threshold. With the rescue's capacity the VM often sits just under the threshold
  // while the load that starved it is still on; retiring there gave the capacity back and re-raised the
  // rescue a few intervals later (seen at a 500 per-mille threshold: 400-450 per mille while rescued).
  auto calm_under = [](uint64_t value, uint64_t threshold) {
    return threshold == 0 || value * 100 <= threshold * kRecoverPercent;
  };
  const std::array<bool, kSignalCount> calm{calm_under(wait_pm, p.runq_wait_permille), calm_under(p99, p.blk_p99_us),
                                            calm_under(per_s(k.net_tx_drops), p.drops_per_s),
                                            calm_under(per_s(k.net_rx_drops), p.drops_per_s)};

  for (int i = 0; i < kSignalCount; ++i) {
    const Signal sig = static_cast<Signal>(i);
    SignalState& s = st.signals[static_cast<size_t>(i)];
    if (over[static_cast<size_t>(i)]) {
      s.over = std::min(s.over + 1, p.breach_intervals);
      s.healthy = 0;
    } else {
      s.over = 0;
      if (s.rescuing) s.healthy = calm[static_cast<size_t>(i)] ? s.healthy + 1 : 0;
    }
    if (s.rescuing && s.healthy >= p.recover_intervals) {
      s.rescuing = false;
      s.healthy = 0;
      RescueAction a{RescueAction::Kind::retire, sig, p.vm, {}, "recovered: " + seen[static_cast<size_t>(i)]};
      a.bid.account = p.account;
      a.bid.vm = p.vm;
      a.bid.resource = relief_for(sig);
      out.push_back(std::move(a));
      s.quantity = 0;
      continue;
    }
    if (s.rescuing || s.over < p.breach_intervals || !p.rescue) continue;

    // Breached long enough: size the bid, then check the budget and the funds.
    const Resource r = relief_for(sig);
    int64_t qty = r == Resource::cpu ? p.cpu_step : r == Resource::disk_iops ? p.disk_iops_step : p.net_kbps_step;
    RescueAction a{RescueAction::Kind::raise, sig, p.vm, {}, seen[static_cast<size_t>(i)]};
    a.bid = {p.account, p.vm, r, "sla", qty, 1, p.max_price, 0};
    // Within the policy bounds per_unit_hour and qty x per_unit_hour fit (2^40 x 2^20 at most); the cost of
    // the rescues in force is summed saturating, and the funds check below is checked.
    const Micros room = std::max<Micros>(p.budget_per_hour - hourly_cost(st), 0);
    const Micros per_unit_hour = p.max_price * 3600;
    if (p.budget_per_hour > 0 && qty * per_unit_hour > room) qty = room / per_unit_hour;
    auto cost_per_s = market::checked_mul(qty, p.max_price);
    auto horizon_cost = cost_per_s ? market::checked_mul(*cost_per_s, p.funds_horizon_s) : std::nullopt;
    if (qty < 1) {
      a.kind = RescueAction::Kind::refused;
      a.why =
          seen[static_cast<size_t>(i)] + "; hourly rescue budget " + std::to_string(p.budget_per_hour) + " exhausted";
    } else if (!horizon_cost || balance < *horizon_cost) {
      a.kind = RescueAction::Kind::refused;
      a.why = seen[static_cast<size_t>(i)] + "; balance " + std::to_string(balance) + " does not cover " +
              std::to_string(p.funds_horizon_s) + " s at max price";
    } else {
      a.bid.quantity = qty;
      s.rescuing = true;
      s.healthy = 0;
      s.quantity = qty;
    }
    if (a.kind == RescueAction::Kind::refused) s.over = 0;  // re-arm: try again after another full breach
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace morph::rescue
