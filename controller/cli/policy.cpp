// `morphctl policy get|set`: a VM's SLA thresholds, its rescue and predictive-bid settings and the bids in force.
#include <cmath>

#include "common/config.h"
#include "controller/cli/command.h"
#include "controller/cli/records.h"

namespace morph::cli {

namespace {

// `policy set` sends only the flags given (the controller keeps the rest), so it keeps each flag's option.
struct PolicyArgs {
  std::string vm, rescue, predictive, horizon;
  double quantile = 0;
  uint32_t runq_permille = 0;
  uint64_t blk_p99_us = 0, drops_per_s = 0;
  int64_t max_price = 0, budget_per_hour = 0;
  int64_t breach_intervals = 0, recover_intervals = 0, cpu_step = 0, disk_iops_step = 0, net_kbps_step = 0;
  bool json = false;
  CLI::Option *o_rescue = nullptr, *o_runq = nullptr, *o_blk = nullptr, *o_drops = nullptr;
  CLI::Option *o_max_price = nullptr, *o_budget = nullptr, *o_breach = nullptr, *o_recover = nullptr;
  CLI::Option *o_cpu_step = nullptr, *o_iops_step = nullptr, *o_kbps_step = nullptr;
  CLI::Option *o_predictive = nullptr, *o_horizon = nullptr, *o_quantile = nullptr;
};

// --horizon as whole seconds (the controller checks it against the forecaster's reach).
uint32_t horizon_s(const std::string& text) {
  auto d = config::parse_duration_arg(text);
  if (!d) fail(kUsage, "--horizon: " + std::string(d.error().what()));
  const auto s = std::chrono::duration_cast<std::chrono::seconds>(*d).count();
  if (s < 1 || s > 86'400) fail(kUsage, "--horizon " + text + ": must be from 1s to 24h");
  return static_cast<uint32_t>(s);
}

json policy_rows(const v1::ApiReply& reply) {
  return policy_json(expect(reply.body_as_PolicyReply()));
}

flatbuffers::Offset<void> policy_set_body(Builder& b, const PolicyArgs& o) {
  const uint32_t horizon = o.o_horizon->count() ? horizon_s(o.horizon) : 0;  // checked before building
  auto vm = b.CreateString(o.vm);
  v1::PolicySetBuilder pb(b);
  pb.add_vm_uuid(vm);
  if (o.o_rescue->count()) pb.add_rescue(o.rescue == "on");
  if (o.o_runq->count()) pb.add_runq_wait_permille(o.runq_permille);
  if (o.o_blk->count()) pb.add_blk_p99_us(o.blk_p99_us);
  if (o.o_drops->count()) pb.add_drops_per_s(o.drops_per_s);
  if (o.o_max_price->count()) pb.add_max_price_ucredits(o.max_price);
  if (o.o_budget->count()) pb.add_budget_ucredits_per_hour(o.budget_per_hour);
  if (o.o_breach->count()) pb.add_breach_intervals(static_cast<uint32_t>(o.breach_intervals));
  if (o.o_recover->count()) pb.add_recover_intervals(static_cast<uint32_t>(o.recover_intervals));
  if (o.o_cpu_step->count()) pb.add_cpu_step(o.cpu_step);
  if (o.o_iops_step->count()) pb.add_disk_iops_step(o.disk_iops_step);
  if (o.o_kbps_step->count()) pb.add_net_kbps_step(o.net_kbps_step);
  if (o.o_predictive->count()) pb.add_predictive(o.predictive == "on");
  if (o.o_horizon->count()) pb.add_predictive_horizon_s(horizon);
  if (o.o_quantile->count()) pb.add_predictive_quantile_permille(static_cast<uint32_t>(std::lround(o.quantile * 1000)));
  return pb.Finish().Union();
}

void add_vm_arg(CLI::App* cmd, PolicyArgs& o) {
  cmd->add_option("vm", o.vm, "VM uuid")->required();
}

void add_set_options(CLI::App* set, PolicyArgs& o) {
  add_vm_arg(set, o);
  o.o_rescue = set->add_option("--rescue", o.rescue, "on or off")->check(CLI::IsMember({"on", "off"}));
  o.o_runq = set->add_option("--runq-wait-permille", o.runq_permille, "SLA: run-queue wait share threshold (0 = off)");
  o.o_blk = set->add_option("--blk-p99-us", o.blk_p99_us, "SLA: block latency p99 threshold (0 = off)");
  o.o_drops = set->add_option("--drops-per-s", o.drops_per_s, "SLA: packet drops threshold (0 = off)");
  o.o_max_price = set->add_option("--max-price", o.max_price, "rescue bids' max price per unit-second");
  o.o_budget = set->add_option("--budget-per-hour", o.budget_per_hour, "cap on rescue spending per hour");
  // Rescue detection and step sizes; the ranges are the controller's (docs/market.md).
  const CLI::Range intervals(int64_t{1}, int64_t{100}), steps(int64_t{1}, int64_t{1} << 20);
  o.o_breach = set->add_option("--breach-intervals", o.breach_intervals,
                               "consecutive KPI intervals over a threshold before a rescue (1..100; default 3)")
                   ->check(intervals);
  o.o_recover = set->add_option("--recover-intervals", o.recover_intervals,
                                "consecutive healthy intervals before a rescue is retired (1..100; default 5)")
                    ->check(intervals);
  o.o_cpu_step = set->add_option("--cpu-step", o.cpu_step, "millicores a CPU rescue asks for (1..1048576; default 500)")
                     ->check(steps);
  o.o_iops_step =
      set->add_option("--disk-iops-step", o.disk_iops_step, "IOPS a disk rescue asks for (1..1048576; default 200)")
          ->check(steps);
  o.o_kbps_step = set->add_option("--net-kbps-step", o.net_kbps_step,
                                  "kbit/s a network rescue asks for (1..1048576; default 10000)")
                      ->check(steps);
  // Predictive bids (docs/market.md "Predictive bids").
  o.o_predictive = set->add_option("--predictive", o.predictive, "bid ahead of the VM's forecast demand: on or off")
                       ->check(CLI::IsMember({"on", "off"}));
  o.o_horizon = set->add_option("--horizon", o.horizon,
                                "how far ahead the predictive bid covers the forecast (5m, 30m; up to the "
                                "forecaster's reach, an hour by default; default 5m)");
  o.o_quantile = set->add_option("--quantile", o.quantile,
                                 "the forecast quantile a predictive bid is sized at (0.5..0.99; default 0.9)")
                     ->check(CLI::Range(0.5, 0.99));
}

}  // namespace

void add_policy(Commands& c) {
  auto* policy = c.noun("policy", "per-VM SLA thresholds and rescue");

  auto get = verb<PolicyArgs>(policy, "get", "a VM's policy and the rescue bid in force");
  add_vm_arg(get.cmd, *get.args);
  c.request(
      get, {"morphctl policy get 0f1e2d3c-... --json"}, v1::ApiRequestBody::PolicyGet,
      [a = get.args](Builder& b) { return v1::CreatePolicyGetDirect(b, a->vm.c_str()).Union(); }, policy_rows);

  auto set = verb<PolicyArgs>(policy, "set", "change a VM's policy (fields not given keep their value)");
  add_set_options(set.cmd, *set.args);
  const std::vector<std::string> examples = {
      "morphctl policy set 0f1e2d3c-... --rescue on --runq-wait-permille 200 --max-price 50 --budget-per-hour "
      "5000000",
      "morphctl policy set 0f1e2d3c-... --breach-intervals 1 --recover-intervals 5 --cpu-step 500 --json",
      "morphctl policy set 0f1e2d3c-... --predictive on --horizon 5m --quantile 0.9 --max-price 50"};
  c.request(
      set, examples, v1::ApiRequestBody::PolicySet, [a = set.args](Builder& b) { return policy_set_body(b, *a); },
      policy_rows);
}

}  // namespace morph::cli
