#pragma once
// The seam between live-migration logic (validation, limits, timeout and cancel, the "one host" checks:
// migrator.h) and libvirt (libvirt_migration_driver.h). Unit tests put a gmock fake here. What a migration
// is asked for and what it reports are plain values below; no libvirt type leaks out.

#include <chrono>
#include <cstdint>
#include <string>

#include "common/error.h"

namespace morph::agent::migration {

// How a migration runs. The defaults are the live pre-copy migration of a VM whose disks both hosts see.
struct MigrationOptions {
  std::chrono::milliseconds max_downtime{300};  // longest pause at the switch-over QEMU may plan for
  uint32_t bandwidth_mib_s = 0;                 // cap on the migration stream; 0: unlimited
  bool auto_converge = false;                   // throttle the guest's vCPUs while pre-copy does not converge
  // Switch to post-copy once pre-copy has sent memory once: the guest then runs on the destination and
  // fetches what is missing from the source. It ends any dirtying race, but a failure after the switch
  // loses the guest (it runs nowhere): the timeout no longer aborts once the switch happened.
  bool postcopy = false;
  bool copy_storage = false;  // copy the disks along (VIR_MIGRATE_NON_SHARED_DISK): storage not shared
  // Storage both hosts see but libvirt cannot tell is shared (a local filesystem two hosts in one machine
  // share; a mount libvirt does not know): skip libvirt's safety check (VIR_MIGRATE_UNSAFE).
  bool unsafe = false;
  bool tunnelled = false;     // the memory stream goes through the libvirtd connection (no transport_uri)
  std::string transport_uri;  // tcp://HOST[:PORT], unix:///PATH (empty: the destination's migration_host)
  std::chrono::milliseconds timeout{60000};  // then the migration is aborted; the VM stays on the source
};

// Where a domain is on one host.
enum class Presence {
  absent,   // the host does not know it
  defined,  // known but not running (a persistent definition, shut off)
  running,
  paused,  // paused: at a migration's switch-over, by an operator, or left so by a failed migration
};
const char* presence_name(Presence p);

// What the source knows about the VM before it moves.
struct SourceVm {
  std::string uuid;
  std::string name;
  Presence presence = Presence::absent;
  bool persistent = false;     // has a definition on the source (it moves with the VM)
  bool migration_job = false;  // a migration of it runs already (from any client)
  std::string other_job;       // another libvirt job that runs on it (e.g. "snapshot"), or empty
};

// The job statistics of a migration (virDomainGetJobStats): progress while it runs, totals when done.
struct JobStats {
  bool active = false;          // a job runs (progress); false: none, or the figures of a completed one
  uint64_t elapsed_ms = 0;      // since the job started
  uint64_t data_processed = 0;  // bytes sent (memory and copied disks)
  uint64_t data_remaining = 0;  // bytes left in this pass
  uint64_t data_total = 0;
  uint64_t memory_iteration = 0;  // pre-copy passes over memory
  uint64_t downtime_ms = 0;       // completed only: the guest's pause at the switch-over
};

// How the running migration call ended, once it has.
struct MigrationEnd {
  bool finished = false;  // false: still running
  Status status;          // the migration call's outcome when finished
};

class MigrationDriver {
 public:
  virtual ~MigrationDriver() = default;
  // The VM on the source host, by UUID or name; not_found when the source does not know it.
  virtual Result<SourceVm> find(const std::string& vm) = 0;
  // A host's UUID (libvirt's host_uuid), for the source (empty uri) or a destination; unavailable when the
  // URI does not answer.
  virtual Result<std::string> host_uuid(const std::string& uri) = 0;
  // The domain with this UUID on the source (empty uri) or a destination.
  virtual Result<Presence> presence(const std::string& uri, const std::string& uuid) = 0;
  // Migrations out of the source host that run now, whoever started them.
  virtual Result<unsigned> outbound_migrations() = 0;
  // Starts the migration (the call that performs it runs on its own thread); returns once it runs, or
  // with the error that kept it from starting.
  virtual Status begin(const SourceVm& vm, const std::string& destination_uri, const MigrationOptions& o) = 0;
  // Whether the migration of uuid that begin() started has finished, and how.
  virtual MigrationEnd poll(const std::string& uuid) = 0;
  // The source's statistics of the job that runs on uuid.
  virtual Result<JobStats> job(const std::string& uuid) = 0;
  // Stops the migration that runs (virDomainAbortJob): the VM goes on on the source.
  virtual Status abort(const std::string& uuid) = 0;
  virtual Status start_postcopy(const std::string& uuid) = 0;
  // Lets a VM that a failed migration left paused on the source run again.
  virtual Status resume(const std::string& uuid) = 0;
  // The completed migration's statistics as the destination keeps them (the source forgets the VM).
  virtual Result<JobStats> completed(const std::string& destination_uri, const std::string& uuid) = 0;
  // Forgets what begin() kept about uuid's migration (after poll() said it finished).
  virtual void end(const std::string& uuid) = 0;
};

}  // namespace morph::agent::migration
