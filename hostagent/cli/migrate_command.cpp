#include "hostagent/cli/migrate_command.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <csignal>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/config.h"
#include "hostagent/cli/agent_cli.h"
#include "hostagent/migration/libvirt_migration_driver.h"

namespace morph::agent::cli {

namespace {

std::atomic<bool> g_interrupted{false};

Result<std::chrono::milliseconds> duration_arg(const char* name, const std::string& text) {
  auto d = config::parse_duration(text);
  if (!d) return Error(Errc::invalid_argument, fmt::format("--{}: {}", name, d.error().what()));
  return std::chrono::duration_cast<std::chrono::milliseconds>(*d);
}

std::string mib(uint64_t bytes) {
  return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
}

}  // namespace

CLI::App* add_migrate_subcommand(CLI::App& app, MigrateArgs& a) {
  auto* c = app.add_subcommand("migrate", "move a running VM of this host to another host with a live migration");
  c->add_option("vm", a.vm, "VM name or UUID")->required();
  c->add_option("--to", a.to, "the destination's libvirt URI, as this host's libvirtd reaches it")->required();
  c->add_option("--connect", a.connect, "this host's libvirt URI");
  c->add_flag("--json", a.json, "print the result as one JSON object");
  c->add_option("--timeout", a.timeout, "abort after this long, the VM staying here (default 60s)");
  c->add_option("--downtime", a.downtime, "longest pause at the switch-over (default 300ms)");
  c->add_option("--bandwidth", a.bandwidth_mib_s, "cap on the migration stream in MiB/s (default unlimited)");
  c->add_option("--transport", a.transport, "where the memory stream goes: tcp://HOST[:PORT] or unix:///PATH");
  c->add_flag("--auto-converge", a.auto_converge, "throttle the guest's vCPUs while pre-copy does not converge");
  c->add_flag("--postcopy", a.postcopy, "switch to post-copy once memory went over once");
  c->add_flag("--copy-storage", a.copy_storage, "copy the disks along (storage the hosts do not share)");
  c->add_flag("--unsafe", a.unsafe, "the hosts share the disks' storage although libvirt cannot tell");
  c->add_flag("--tunnelled", a.tunnelled, "send the memory stream through the libvirtd connection");
  return c;
}

Result<migration::MigrationRequest> parse_migrate_args(const MigrateArgs& a) {
  if (a.vm.empty()) return Error(Errc::invalid_argument, "no VM given");
  if (a.to.find("://") == std::string::npos)
    return Error(Errc::invalid_argument,
                 fmt::format("--to '{}' is not a libvirt URI (e.g. qemu+ssh://host/system)", a.to));
  migration::MigrationRequest r{a.vm, a.to, {}};
  auto& o = r.options;
  MORPH_TRY_ASSIGN(o.timeout, duration_arg("timeout", a.timeout));
  MORPH_TRY_ASSIGN(o.max_downtime, duration_arg("downtime", a.downtime));
  o.bandwidth_mib_s = a.bandwidth_mib_s;
  o.transport_uri = a.transport;
  o.auto_converge = a.auto_converge;
  o.postcopy = a.postcopy;
  o.copy_storage = a.copy_storage;
  o.unsafe = a.unsafe;
  o.tunnelled = a.tunnelled;
  MORPH_TRY(migration::Migrator::validate(o));
  return r;
}

std::string migration_report_json(const migration::MigrationReport& r) {
  nlohmann::json j{
      {"vm", r.vm_name},        {"uuid", r.vm_uuid}, {"destination", r.destination_uri}, {"downtime_ms", r.downtime_ms},
      {"total_ms", r.total_ms}, {"bytes", r.bytes},  {"iterations", r.iterations},       {"postcopy", r.postcopy}};
  if (!r.warning.empty()) j["warning"] = r.warning;
  return j.dump();
}

int run_migrate(const MigrateArgs& a) {
  auto request = parse_migrate_args(a);
  if (!request) {
    std::cerr << "migrate: " << request.error().what() << '\n';
    return 2;
  }
  auto fail = [&](const Error& e) {
    if (a.json) std::cout << nlohmann::json{{"error", e.what()}, {"code", errc_name(e.code())}}.dump() << '\n';
    std::cerr << "migrate failed: " << e.what() << '\n';
    return 1;
  };
  auto driver = migration::LibvirtMigrationDriver::connect(a.connect);
  if (!driver) return fail(driver.error());
  migration::Migrator migrator(**driver);
  std::signal(SIGINT, [](int) { g_interrupted = true; });
  std::signal(SIGTERM, [](int) { g_interrupted = true; });
  auto last_print = std::chrono::steady_clock::time_point{};
  auto rep = migrator.migrate(*request, [&](const migration::JobStats& s) {
    if (g_interrupted.exchange(false)) {
      std::cerr << "interrupted: cancelling the migration\n";
      if (auto st = migrator.cancel(a.vm); !st) spdlog::warn("{}", st.error().what());
    }
    const auto now = std::chrono::steady_clock::now();
    if (now - last_print < std::chrono::seconds(1)) return;
    last_print = now;
    std::cerr << fmt::format("migrating {}: {} ms, {} sent, {} left in pass {}\n", a.vm, s.elapsed_ms,
                             mib(s.data_processed), mib(s.data_remaining), s.memory_iteration);
  });
  if (!rep) return fail(rep.error());
  if (a.json) {
    std::cout << migration_report_json(*rep) << '\n';
  } else {
    std::cout << fmt::format("{} ({}) runs on {}: {} ms in all, downtime {} ms, {} sent in {} pass(es){}\n",
                             rep->vm_name, rep->vm_uuid, rep->destination_uri, rep->total_ms, rep->downtime_ms,
                             mib(rep->bytes), rep->iterations, rep->postcopy ? ", post-copy" : "");
    if (!rep->warning.empty()) std::cout << "warning: " << rep->warning << '\n';
  }
  return 0;
}

// The registration commands.def names: the options into args this command owns, the action run_migrate.
void add_migrate(AgentCommands& c) {
  auto args = std::make_shared<MigrateArgs>();
  c.on(add_migrate_subcommand(c.app(), *args), [args] { return run_migrate(*args); });
}

}  // namespace morph::agent::cli
