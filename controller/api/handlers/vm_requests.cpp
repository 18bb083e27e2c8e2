// VMs: rescue policies (the VM owner's caller), owner overrides (admins), the shift record (what the caller
// sees).
#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/msg/wire.h"
#include "controller/api/handlers/market_requests.h"

namespace morph::controller {

namespace {
using Request = MarketRequests::Request;

Result<ReplyBody> policy_reply(MarketParts p, const std::string& vm, flatbuffers::FlatBufferBuilder& fbb) {
  rescue::SlaPolicy pol;
  if (const auto* set = p.rescue.find_policy(vm))
    pol = *set;
  else
    pol.rescue = false;  // no policy set: no rescue
  const std::string owner = p.fleet.owner_of(vm);
  auto info =
      v1::CreateVmPolicyDirect(fbb, vm.c_str(), owner.c_str(), pol.rescue, pol.runq_wait_permille, pol.blk_p99_us,
                               pol.drops_per_s, pol.max_price, pol.budget_per_hour, p.rescue.rescue_bid(vm));
  const std::string predictive = p.predictive.status(vm);
  return ReplyBody{
      v1::ApiReplyBody::PolicyReply,
      v1::CreatePolicyReplyDirect(fbb, info, pol.breach_intervals, pol.recover_intervals, pol.cpu_step,
                                  pol.disk_iops_step, pol.net_kbps_step, pol.predictive, pol.predictive_horizon_s,
                                  pol.predictive_quantile_permille, p.predictive.bid(vm), predictive.c_str())
          .Union()};
}

Result<std::string> known_vm(MarketParts p, const flatbuffers::String* uuid) {
  std::string vm(msg::sv(uuid));
  if (!p.fleet.find_vm(vm)) return Error(Errc::not_found, "unknown VM " + vm);
  return vm;
}
}  // namespace

void register_vm_requests(MarketRequests& r, MarketParts p) {
  r.add(v1::ApiRequestBody::PolicyGet,
        MarketRequests::owner([p](const v1::ApiRequest& q) -> Result<std::optional<std::string>> {
          MORPH_TRY_ASSIGN(auto vm, known_vm(p, q.body_as_PolicyGet()->vm_uuid()));
          return std::optional(p.fleet.owner_of(vm));
        }),
        [p](const Request& q) {
          return policy_reply(p, std::string(msg::sv(q.body.body_as_PolicyGet()->vm_uuid())), q.fbb);
        });

  r.add(v1::ApiRequestBody::PolicySet,
        MarketRequests::owner([p](const v1::ApiRequest& q) -> Result<std::optional<std::string>> {
          MORPH_TRY_ASSIGN(auto vm, known_vm(p, q.body_as_PolicySet()->vm_uuid()));
          std::string owner = p.fleet.owner_of(vm);
          if (owner.empty()) return Error(Errc::invalid_argument, "VM " + vm + " has no owner account");
          return std::optional(owner);
        }),
        [p](const Request& q) -> Result<ReplyBody> {
          auto* b = q.body.body_as_PolicySet();
          const std::string vm(msg::sv(b->vm_uuid()));
          rescue::SlaPolicy pol;  // the fields not in the request: as set before, else the defaults
          if (const auto* set = p.rescue.find_policy(vm)) pol = *set;
          pol.vm = vm;
          pol.account = p.fleet.owner_of(vm);
          if (b->rescue()) pol.rescue = *b->rescue();
          if (b->runq_wait_permille()) pol.runq_wait_permille = *b->runq_wait_permille();
          if (b->blk_p99_us()) pol.blk_p99_us = *b->blk_p99_us();
          if (b->drops_per_s()) pol.drops_per_s = *b->drops_per_s();
          if (b->max_price_ucredits()) pol.max_price = *b->max_price_ucredits();
          if (b->budget_ucredits_per_hour()) pol.budget_per_hour = *b->budget_ucredits_per_hour();
          if (b->breach_intervals()) pol.breach_intervals = *b->breach_intervals();
          if (b->recover_intervals()) pol.recover_intervals = *b->recover_intervals();
          if (b->cpu_step()) pol.cpu_step = *b->cpu_step();
          if (b->disk_iops_step()) pol.disk_iops_step = *b->disk_iops_step();
          if (b->net_kbps_step()) pol.net_kbps_step = *b->net_kbps_step();
          if (b->predictive()) pol.predictive = *b->predictive();
          if (b->predictive_horizon_s()) pol.predictive_horizon_s = *b->predictive_horizon_s();
          if (b->predictive_quantile_permille()) pol.predictive_quantile_permille = *b->predictive_quantile_permille();
          MORPH_TRY(p.predictive.check(pol));   // the horizon within the forecaster's reach
          MORPH_TRY(p.rescue.set_policy(pol));  // checks every field, names the one out of range
          p.predictive.policy_changed(vm);
          return policy_reply(p, vm, q.fbb);
        });

  r.add(v1::ApiRequestBody::VmOwnerSet, MarketRequests::admin("setting a VM's owner"),
        [p](const Request& q) -> Result<ReplyBody> {
          auto* b = q.body.body_as_VmOwnerSet();
          MORPH_TRY_ASSIGN(auto vm, known_vm(p, b->vm_uuid()));
          std::string account(msg::sv(b->account()));
          if (!p.state.has_account(account)) return Error(Errc::not_found, "unknown account " + account);
          MORPH_TRY(p.fleet.set_owner(vm, account, q.access.name().empty() ? "local admin" : q.access.name()));
          spdlog::info("vm={} owner set to {} by admin", vm, account);
          return policy_reply(p, vm, q.fbb);
        });

  r.add(v1::ApiRequestBody::ShiftsQuery, MarketRequests::anyone(), [p](const Request& q) -> Result<ReplyBody> {
    auto* b = q.body.body_as_ShiftsQuery();
    std::string host(msg::sv(b->host()));
    const auto& records = p.shifts.records();
    std::vector<const ShiftDispatch::Record*> rows;
    for (auto it = records.rbegin(); it != records.rend() && rows.size() < b->limit(); ++it) {
      if (!host.empty() && it->host != host) continue;
      if (!q.access.may_act_on(p.fleet.owner_of(it->vm))) continue;
      rows.push_back(&*it);
    }
    std::reverse(rows.begin(), rows.end());
    std::vector<flatbuffers::Offset<v1::ShiftRecord>> v;
    for (auto* s : rows) {
      std::vector<flatbuffers::Offset<v1::Adjustment>> adj;
      for (auto& a : s->adjustments)
        adj.push_back(v1::CreateAdjustment(q.fbb, a.resource, a.value, q.fbb.CreateString(a.target)));
      auto err = v1::CreateErrorDirect(q.fbb, s->error, s->message.c_str());
      v.push_back(v1::CreateShiftRecordDirect(q.fbb, s->host.c_str(), s->command_id, s->vm.c_str(), &adj,
                                              s->phase.c_str(), err, s->ts));
    }
    return ReplyBody{v1::ApiReplyBody::ShiftsReply, v1::CreateShiftsReplyDirect(q.fbb, &v).Union()};
  });
}

}  // namespace morph::controller
