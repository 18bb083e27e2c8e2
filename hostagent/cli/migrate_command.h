#pragma once
// `morph-agent migrate VM --to URI [--connect URI] [--json] [--timeout 60s] ...`: an operator's live
// migration of any running VM of this host (one Morph did not create too), without a controller, through
// hostagent/migration. Progress goes to stderr; the result to stdout (one JSON object with --json). Any
// failure exits non-zero naming the cause, and the VM then still runs on exactly one host; Ctrl-C
// cancels (the VM stays here). The checks of its arguments are parse_migrate_args, unit-tested.

#include <CLI/CLI.hpp>
#include <string>

#include "common/error.h"
#include "hostagent/migration/migrator.h"

namespace morph::agent::cli {

struct MigrateArgs {
  std::string vm;                          // name or UUID
  std::string to;                          // the destination's libvirt URI
  std::string connect = "qemu:///system";  // this host's (the source's) libvirt URI
  std::string timeout = "60s";
  std::string downtime = "300ms";
  std::string transport;  // tcp://HOST[:PORT], unix:///PATH; empty: the destination's default
  uint32_t bandwidth_mib_s = 0;
  bool json = false;
  bool auto_converge = false;
  bool postcopy = false;
  bool copy_storage = false;
  bool unsafe = false;
  bool tunnelled = false;
};

// Registers the subcommand's arguments into args.
CLI::App* add_migrate_subcommand(CLI::App& app, MigrateArgs& args);
// The request the arguments ask for; Errc::invalid_argument naming the bad one.
Result<migration::MigrationRequest> parse_migrate_args(const MigrateArgs& args);
// {"vm", "uuid", "destination", "downtime_ms", "total_ms", "bytes", "iterations", "postcopy"[, "warning"]}.
std::string migration_report_json(const migration::MigrationReport& r);
// Runs it: 0 when the VM runs on the destination, 1 on a failure, 2 on bad arguments.
int run_migrate(const MigrateArgs& args);

}  // namespace morph::agent::cli
