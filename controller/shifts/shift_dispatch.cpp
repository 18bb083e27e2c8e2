#include "controller/shifts/shift_dispatch.h"

#include <spdlog/spdlog.h>

#include "common/printable.h"
#include "controller/market_state/market_wire.h"

namespace morph::controller {

ShiftDispatch::ShiftDispatch(MarketState& state, const VmDirectory& vms, metrics::Registry* metrics)
    : state_(state), vms_(vms), next_command_(state.clock().wall_ns()) {
  if (metrics)
    m_sent_ =
        metrics->counter("morph_market_shift_commands_total", "ShiftCommands sent for allocation changes").with({});
}

uint64_t ShiftDispatch::command_of(const std::string& vm) const {
  auto it = targets_.find(vm);
  return it == targets_.end() ? 0 : it->second.command_id;
}

msg::ShiftOrder ShiftDispatch::order_for(const std::string& vm, const market::ResourceVector& was,
                                         const market::ResourceVector& inc) {
  msg::ShiftOrder o;
  o.command_id = ++next_command_;
  o.vm_uuid = vm;
  o.lease_ns = static_cast<uint64_t>(state_.config().lease.count());
  o.issued_ns = state_.clock().wall_ns();
  const VmRecord* v = vms_.find_vm(vm);
  for (Resource r : kMarketResources) {
    int64_t base = v ? market::at(v->baseline, r) : 0;
    // Only resources the market moved (now or before) are set; the rest stay as the agent has them.
    bool touched = market::at(inc, r) != 0 || market::at(was, r) != 0;
    if (touched) o.adjustments.push_back({wire(r), base + market::at(inc, r), {}});
  }
  return o;
}

void ShiftDispatch::keep(Record r) {
  records_.push_back(std::move(r));
  while (records_.size() > kRecords) records_.pop_front();
}

void ShiftDispatch::send(const std::string& host, msg::ShiftOrder o) {
  keep({host, o.command_id, o.vm_uuid, o.adjustments, "sent", v1::ErrorCode::ok, {}, o.issued_ns});
  if (m_sent_) m_sent_->inc();
  spdlog::info("vm={} host={} shift command {} sent ({} settings)", o.vm_uuid, host, o.command_id,
               o.adjustments.size());
  // The messaging layer publishes shift.<host> "sent" once the command is on its way.
  if (ControllerLink* link = state_.link()) link->send_shift(host, std::move(o));
}

std::vector<std::string> ShiftDispatch::dispatch(const std::vector<market::Allocation>& allocations) {
  // This tick's increment per VM, summed in place into targets_ (a VM new to it is added, marked fresh).
  for (auto& [vm, t] : targets_) {
    t.next = {};
    t.held = false;
  }
  for (auto& a : allocations) {
    auto it = targets_.find(a.vm);
    if (it == targets_.end()) {
      it = targets_.emplace(a.vm, VmTarget{}).first;
      it->second.fresh = true;
    }
    auto& t = it->second;
    if (!t.host.empty() && t.host != a.host && !t.fresh) {
      // The VM moved (its new host reported it): the destination's agent holds no lease for it, so its
      // whole allocation goes there as a new command, and nothing goes to the source, which forgot it.
      spdlog::info("vm={} moved from host={} to host={}: its allocation is applied there afresh", a.vm, t.host, a.host);
      t.fresh = true;
      t.increment = {};
    }
    t.host = a.host;
    t.held = true;
    market::at(t.next, a.resource) += a.quantity;
  }
  const uint64_t lease = static_cast<uint64_t>(state_.config().lease.count());
  std::vector<std::string> sent;
  for (auto& [vm, t] : targets_) {
    if (!t.held) continue;
    if (!t.fresh && t.increment == t.next) {
      if (ControllerLink* link = state_.link()) link->renew_lease(t.host, {vm, {t.command_id}, lease});
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

void ShiftDispatch::on_result(const std::string& host, const msg::ShiftOutcome& r) {
  std::string phase = r.phase();
  keep({host, r.command_id, r.vm_uuid, r.in_force, phase, r.error, r.error_message, state_.clock().wall_ns()});
  if (r.error != v1::ErrorCode::ok)
    spdlog::warn("vm={} host={} shift command {} {}: {}", r.vm_uuid, host, r.command_id, phase,
                 printable(r.error_message));  // the agent's text
}

}  // namespace morph::controller
