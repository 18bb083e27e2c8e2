#pragma once
// Migrator: moves one running VM from this host to another with a live migration (docs/architecture.md,
// "Migration"). It owns the rules around libvirt's migration: what is checked before anything moves (the
// options' ranges; the VM runs here and no job runs on it; the destination answers, is another host and
// has no domain with the VM's UUID; at most Limits::max_outbound migrations leave this host at once), the
// progress reports, the timeout and cancel (both abort, and the VM goes on on the source), the switch to
// post-copy, and the check afterwards that the VM runs on exactly one host: the destination after
// success, the source otherwise, with nothing of it left on the destination.
//
// It must never change a VM's resources (the shifter's job) nor call libvirt itself (MigrationDriver's).
// A migration is not a shift: the caller ends the VM's shifts and leases on this host when it has left.

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "common/error.h"
#include "hostagent/migration/migration_driver.h"

namespace morph::agent::migration {

struct MigrationRequest {
  std::string vm;               // name or UUID on this host
  std::string destination_uri;  // the destination's libvirt URI, as this host's libvirtd reaches it
  MigrationOptions options;
};

struct MigrationReport {
  std::string vm_uuid;
  std::string vm_name;
  std::string destination_uri;
  uint64_t downtime_ms = 0;  // the guest's pause at the switch-over (the destination's job statistics)
  uint64_t total_ms = 0;     // the whole migration
  uint64_t bytes = 0;        // data sent
  uint64_t iterations = 0;   // pre-copy passes over memory
  bool postcopy = false;     // it switched to post-copy
  std::string warning;       // e.g. the destination's statistics could not be read (figures then ours)
};

// Called on the migrating thread with the source's job statistics, once per poll while it runs.
using ProgressCallback = std::function<void(const JobStats&)>;

struct MigrationLimits {
  unsigned max_outbound = 2;            // migrations out of this host at once
  std::chrono::milliseconds poll{100};  // job statistics, cancel and timeout are looked at this often
};

class Migrator {
 public:
  using Limits = MigrationLimits;
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  using Sleep = std::function<void(std::chrono::milliseconds)>;

  explicit Migrator(MigrationDriver& driver, Limits limits = {}, Clock clock = {}, Sleep sleep = {});

  // Checks, moves and checks again, blocking for the migration's length (call it from a worker thread).
  // Errors, each naming the cause:
  //   invalid_argument  an option out of range; a destination that is the VM's own host
  //   not_found         the VM is not on this host
  //   conflict          the VM does not run; a migration or another job of it runs already; the
  //                     destination already has a domain with its UUID; cancelled
  //   unavailable       the destination does not answer; max_outbound migrations leave the host already;
  //                     the migration timed out (and was aborted)
  //   internal          after the migration the VM does not run on exactly one host (says where it is)
  // and libvirt's own reason when the migration itself failed. On any error the VM runs on this host.
  Result<MigrationReport> migrate(const MigrationRequest& request, const ProgressCallback& progress = {});

  // Asks the migration of vm (name or UUID) that runs through this Migrator to stop; it then ends with
  // a conflict error "cancelled". not_found when none runs.
  Status cancel(const std::string& vm);

  // The options' ranges: downtime 1 ms..60 s, bandwidth up to 1 TiB/s, timeout 1 s..24 h, post-copy not
  // with a tunnelled stream, a transport URI only tcp://, unix:// or rdma:// and not with a tunnel.
  static Status validate(const MigrationOptions& o);

 private:
  struct Flight {
    std::string name;
    bool cancel = false;
  };
  Status reserve(const SourceVm& vm);
  void release(const std::string& uuid);
  bool cancel_requested(const std::string& uuid);
  Status check_destination(const SourceVm& vm, const std::string& uri);
  Result<MigrationReport> after_success(const SourceVm& vm, const MigrationRequest& r, uint64_t measured_ms,
                                        const JobStats& last, bool postcopy);
  Error after_failure(const SourceVm& vm, const MigrationRequest& r, Error cause);

  MigrationDriver& driver_;
  Limits limits_;
  Clock clock_;
  Sleep sleep_;
  std::mutex mu_;
  std::map<std::string, Flight> flights_;  // by VM UUID: migrations this Migrator runs
};

}  // namespace morph::agent::migration
