#include "hostagent/shifter/cmd_shift.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <charconv>
#include <csignal>
#include <iostream>
#include <thread>

#include "hostagent/shifter/libvirt_mechanisms.h"
#include "hostagent/shifter/net_policer.h"
#include "hostagent/shifter/shift_engine.h"

namespace morph::agent::shifter {

namespace {

std::atomic<bool> g_interrupted{false};

Result<std::chrono::milliseconds> parse_duration(const std::string& text) {
  int64_t n = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  std::string_view unit(p, static_cast<size_t>(text.data() + text.size() - p));
  if (ec != std::errc() || n <= 0) return Error(Errc::invalid_argument, fmt::format("bad duration '{}'", text));
  if (unit == "ms") return std::chrono::milliseconds(n);
  if (unit.empty() || unit == "s") return std::chrono::milliseconds(n * 1000);
  if (unit == "m") return std::chrono::milliseconds(n * 60000);
  return Error(Errc::invalid_argument, fmt::format("bad duration unit in '{}' (ms, s, m)", text));
}

void print(const InForce& f) {
  std::cout << fmt::format(
      "cpu_millicores  {} (vcpu_quota {} / vcpu_period {})\ncpu_shares      {}\nvcpu_pin        {}\n"
      "memory_mib      {} (balloon actual {})\ndisk_iops       {}\ndisk_bps        {}\n"
      "net_out_kbps    {}\nnet_in_kbps     {}\nstorage_tier    {}\n",
      f.cpu_millicores, f.vcpu_quota_us, f.vcpu_period_us, f.cpu_shares, f.vcpu_pin, f.memory_mib, f.balloon_actual_mib,
      f.disk_iops, f.disk_bps, f.net_out_kbps, f.net_in_kbps, f.storage_tier);
}

}  // namespace

std::shared_ptr<ShiftCli> add_shift_command(CLI::App& app) {
  auto cli = std::make_shared<ShiftCli>();
  cli->command = app.add_subcommand("shift", "set one resource of a running VM and print what is in force");
  cli->command->add_option("vm", cli->vm, "VM name or UUID")->required();
  cli->command->add_option("resource", cli->resource, resource_names(kResources, "|"))->required();
  cli->command->add_option("value", cli->value, "integer (0 = unlimited for limits); host cpu list for vcpu_pin")
      ->required();
  cli->command->add_option("--lease", cli->lease, "hold for this long (e.g. 30s, 500ms), then revert to baseline");
  cli->command->add_option("--on-expiry", cli->on_expiry, "revert (default) or hold")
      ->check(CLI::IsMember({"revert", "hold"}));
  cli->command->add_option("--connect", cli->uri, "libvirt URI");
  return cli;
}

int run_shift_command(const ShiftCli& cli) {
  auto resource = parse_resource(cli.resource);
  if (!resource) {
    spdlog::error("unknown resource '{}': one of {}", cli.resource, resource_names(kResources));
    return 2;
  }
  Adjustment adj{*resource, 0, {}};
  if (*resource == Resource::vcpu_pin) {
    adj.target = cli.value;
    auto mask = parse_cpu_list(cli.value);
    adj.value = mask ? std::popcount(*mask) : 0;
  } else {
    auto [p, ec] = std::from_chars(cli.value.data(), cli.value.data() + cli.value.size(), adj.value);
    if (ec != std::errc() || p != cli.value.data() + cli.value.size()) {
      spdlog::error("value '{}' is not an integer", cli.value);
      return 2;
    }
  }
  std::chrono::milliseconds lease{std::chrono::hours(24 * 365)};
  if (!cli.lease.empty()) {
    auto d = parse_duration(cli.lease);
    if (!d) {
      spdlog::error("{}", d.error().what());
      return 2;
    }
    lease = *d;
  }

  std::unique_ptr<NetPolicer> policer;
  if (*resource == Resource::net_out_kbps || *resource == Resource::net_in_kbps) {
    auto bpf = BpfRuntime::load({.kpi = false});
    auto p = bpf ? NetPolicer::open(*bpf) : Result<std::unique_ptr<NetPolicer>>(bpf.error());
    if (!p) {
      spdlog::error("network policer: {}", p.error().what());
      return 1;
    }
    policer = std::move(p).value();
  }
  auto mech = LibvirtMechanisms::connect({.uri = cli.uri}, policer.get());
  if (!mech) {
    spdlog::error("{}", mech.error().what());
    return 1;
  }
  ShiftEngine engine(**mech, [] { return WallClock::now(); },
                     {.on_expiry = cli.on_expiry == "hold" ? ExpiryPolicy::hold : ExpiryPolicy::revert});
  const auto command_id = static_cast<uint64_t>(WallClock::now().time_since_epoch().count());
  ShiftOutcome out = engine.shift({command_id, cli.vm, {adj}, lease});
  for (const auto& w : out.warnings) std::cout << "warning: " << w << '\n';
  if (!out.ok()) {
    std::cerr << "shift failed: " << out.error->what() << '\n';
    return 1;
  }
  std::cout << "in force on " << out.vm_uuid << ":\n";
  print(out.in_force);
  if (cli.lease.empty()) return 0;

  std::cout << fmt::format("holding for {} ms (Ctrl-C ends the lease now)\n", lease.count()) << std::flush;
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

}  // namespace morph::agent::shifter
