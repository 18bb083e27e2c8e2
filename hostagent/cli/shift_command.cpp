#include "hostagent/cli/shift_command.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <bit>
#include <charconv>
#include <csignal>
#include <iostream>
#include <thread>

#include "common/config.h"
#include "hostagent/cli/agent_cli.h"
#include "hostagent/shifter/libvirt_mechanisms.h"
#include "hostagent/shifter/net_policer.h"
#include "hostagent/shifter/shift_engine.h"

namespace morph::agent::cli {

using namespace shifter;

namespace {

std::atomic<bool> g_interrupted{false};

void print(const InForce& f) {
  std::cout << fmt::format(
      "cpu_millicores  {} (vcpu_quota {} / vcpu_period {})\ncpu_shares      {}\nvcpu_pin        {}\n"
      "memory_mib      {} (balloon actual {})\ndisk_iops       {}\ndisk_bps        {}\n"
      "net_out_kbps    {}\nnet_in_kbps     {}\nstorage_tier    {}\n",
      f.cpu_millicores, f.vcpu_quota_us, f.vcpu_period_us, f.cpu_shares, f.vcpu_pin, f.memory_mib, f.balloon_actual_mib,
      f.disk_iops, f.disk_bps, f.net_out_kbps, f.net_in_kbps, f.storage_tier);
}

int run_shift(const ShiftArgs& args) {
  auto plan = parse_shift_args(args);
  if (!plan) {
    spdlog::error("{}", plan.error().what());
    return 2;
  }
  const Adjustment& adj = plan->adjustment;
  std::unique_ptr<NetPolicer> policer;
  if (adj.resource == Resource::net_out_kbps || adj.resource == Resource::net_in_kbps) {
    auto bpf = BpfRuntime::load({.kpi = false});
    auto p = bpf ? NetPolicer::open(*bpf) : Result<std::unique_ptr<NetPolicer>>(bpf.error());
    if (!p) {
      spdlog::error("network policer: {}", p.error().what());
      return 1;
    }
    policer = std::move(p).value();
  }
  auto mech = LibvirtMechanisms::connect({.uri = args.uri}, policer.get());
  if (!mech) {
    spdlog::error("{}", mech.error().what());
    return 1;
  }
  ShiftEngine engine(**mech, [] { return WallClock::now(); },
                     {.on_expiry = args.on_expiry == "hold" ? ExpiryPolicy::hold : ExpiryPolicy::revert});
  const auto command_id = static_cast<uint64_t>(WallClock::now().time_since_epoch().count());
  ShiftOutcome out = engine.shift({command_id, args.vm, {adj}, plan->lease});
  for (const auto& w : out.warnings) std::cout << "warning: " << w << '\n';
  if (!out.ok()) {
    std::cerr << "shift failed: " << out.error->what() << '\n';
    return 1;
  }
  std::cout << "in force on " << out.vm_uuid << ":\n";
  print(out.in_force);
  if (args.lease.empty()) return 0;

  std::cout << fmt::format("holding for {} ms (Ctrl-C ends the lease now)\n", plan->lease.count()) << std::flush;
  std::signal(SIGINT, [](int) { g_interrupted = true; });
  std::signal(SIGTERM, [](int) { g_interrupted = true; });
  std::vector<LeaseEvent> events;
  while (events.empty()) {
    if (g_interrupted) {
      events = engine.controller_lost();
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    events = engine.expire_due();
  }
  for (const auto& ev : events) {
    std::cout << fmt::format("lease ended: {}\n", ev.action == ExpiryPolicy::revert ? "reverted to baseline" : "held");
    if (ev.error) std::cerr << ev.error->what() << '\n';
    print(ev.in_force);
    if (ev.error) return 1;
  }
  return 0;
}

}  // namespace

Result<ShiftPlan> parse_shift_args(const ShiftArgs& args) {
  auto resource = parse_resource(args.resource);
  if (!resource)
    return Error(Errc::invalid_argument,
                 fmt::format("unknown resource '{}': one of {}", args.resource, resource_names(kResources)));
  ShiftPlan plan{{*resource, 0, {}}, std::chrono::hours(24 * 365)};
  if (*resource == Resource::vcpu_pin) {
    plan.adjustment.target = args.value;
    auto mask = parse_cpu_list(args.value);
    plan.adjustment.value = mask ? std::popcount(*mask) : 0;
  } else {
    auto [p, ec] = std::from_chars(args.value.data(), args.value.data() + args.value.size(), plan.adjustment.value);
    if (ec != std::errc() || p != args.value.data() + args.value.size())
      return Error(Errc::invalid_argument, fmt::format("value '{}' is not an integer", args.value));
  }
  if (!args.lease.empty()) {
    auto d = config::parse_duration_arg(args.lease);
    if (!d) return std::move(d).error().with_context("--lease");
    plan.lease = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
    if (plan.lease.count() <= 0)
      return Error(Errc::invalid_argument, fmt::format("--lease: '{}' is not a lease of 1 ms or more", args.lease));
  }
  return plan;
}

void add_shift(AgentCommands& c) {
  auto args = std::make_shared<ShiftArgs>();
  auto* cmd = c.app().add_subcommand("shift", "set one resource of a running VM and print what is in force");
  cmd->add_option("vm", args->vm, "VM name or UUID")->required();
  cmd->add_option("resource", args->resource, resource_names(kResources, "|"))->required();
  cmd->add_option("value", args->value, "integer (0 = unlimited for limits); host cpu list for vcpu_pin")->required();
  cmd->add_option("--lease", args->lease, "hold for this long (e.g. 30s, 500ms), then revert to baseline");
  cmd->add_option("--on-expiry", args->on_expiry, "revert (default) or hold")->check(CLI::IsMember({"revert", "hold"}));
  cmd->add_option("--connect", args->uri, "libvirt URI");
  c.on(cmd, [args] { return run_shift(*args); });
}

}  // namespace morph::agent::cli
