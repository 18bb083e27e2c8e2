#include "hostagent/migration/libvirt_migration_driver.h"

#include <fmt/format.h>
#include <libvirt/virterror.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <thread>

#include "hostagent/inventory/libvirt_error.h"
#include "hostagent/inventory/libvirt_ref.h"

namespace morph::agent::migration {

namespace {

using OwnedConn = ConnRef;
using Dom = DomainRef;

// libvirt's last error, with what to do about an unsafe migration said.
Error libvirt_error(const std::string& what) {
  Error e = agent::libvirt_error(what);
  virErrorPtr last = virGetLastError();
  if (last == nullptr || last->code != VIR_ERR_MIGRATE_UNSAFE) return e;
  return Error(e.code(), e.message() +
                             " (libvirt cannot tell that both hosts see the disks: copy them along, or say that the "
                             "storage is shared although libvirt cannot tell: --copy-storage or --unsafe)");
}

Result<Dom> lookup(virConnectPtr c, const std::string& vm) {
  virDomainPtr d = virDomainLookupByUUIDString(c, vm.c_str());
  if (d == nullptr) d = virDomainLookupByName(c, vm.c_str());
  if (d == nullptr) return libvirt_error(fmt::format("no domain '{}'", vm));
  return Dom(d);
}

Presence presence_of(virDomainPtr d) {
  int state = VIR_DOMAIN_NOSTATE, reason = 0;
  if (virDomainGetState(d, &state, &reason, 0) != 0) return Presence::defined;
  if (state == VIR_DOMAIN_RUNNING) return Presence::running;
  if (state == VIR_DOMAIN_PAUSED) return Presence::paused;
  return Presence::defined;
}

// Statistics of the job that runs on d (flags 0) or of its last completed one (COMPLETED).
Result<JobStats> job_stats(virDomainPtr d, unsigned int flags, int* operation = nullptr) {
  int type = VIR_DOMAIN_JOB_NONE;
  TypedParams p;
  if (virDomainGetJobStats(d, &type, &p.p, &p.n, flags) != 0) return libvirt_error("reading job statistics");
  JobStats s;
  s.active = type == VIR_DOMAIN_JOB_BOUNDED || type == VIR_DOMAIN_JOB_UNBOUNDED;
  const std::pair<const char*, uint64_t*> fields[] = {
      {VIR_DOMAIN_JOB_TIME_ELAPSED, &s.elapsed_ms},           {VIR_DOMAIN_JOB_DATA_PROCESSED, &s.data_processed},
      {VIR_DOMAIN_JOB_DATA_REMAINING, &s.data_remaining},     {VIR_DOMAIN_JOB_DATA_TOTAL, &s.data_total},
      {VIR_DOMAIN_JOB_MEMORY_ITERATION, &s.memory_iteration}, {VIR_DOMAIN_JOB_DOWNTIME, &s.downtime_ms},
  };
  for (const auto& [name, out] : fields) {
    unsigned long long v = 0;
    if (virTypedParamsGetULLong(p.p, p.n, name, &v) == 1) *out = v;
  }
  if (operation != nullptr) {
    int op = VIR_DOMAIN_JOB_OPERATION_UNKNOWN;
    if (s.active) virTypedParamsGetInt(p.p, p.n, VIR_DOMAIN_JOB_OPERATION, &op);
    *operation = s.active ? op : -1;
  }
  return s;
}

const char* operation_name(int op) {
  switch (op) {
    case VIR_DOMAIN_JOB_OPERATION_START:
      return "start";
    case VIR_DOMAIN_JOB_OPERATION_SAVE:
      return "save";
    case VIR_DOMAIN_JOB_OPERATION_RESTORE:
      return "restore";
    case VIR_DOMAIN_JOB_OPERATION_SNAPSHOT:
      return "snapshot";
    case VIR_DOMAIN_JOB_OPERATION_DUMP:
      return "dump";
    case VIR_DOMAIN_JOB_OPERATION_BACKUP:
      return "backup";
    default:
      return "unnamed";
  }
}

// The source's connection for an empty uri, else one of its own to uri, which `owned` closes.
Result<virConnectPtr> connection_for(virConnectPtr source, const std::string& uri, OwnedConn& owned) {
  if (uri.empty()) return source;
  owned.reset(virConnectOpen(uri.c_str()));
  if (!owned) return libvirt_error(fmt::format("connecting to {}", uri));
  return owned.get();
}

bool is_migration(int op) {
  return op == VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT || op == VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN;
}

}  // namespace

struct LibvirtMigrationDriver::Call {
  std::thread thread;
  std::mutex mu;
  bool done = false;
  Status status;
  ~Call() {
    if (thread.joinable()) thread.join();
  }
};

Result<std::unique_ptr<LibvirtMigrationDriver>> LibvirtMigrationDriver::connect(const std::string& source_uri) {
  virSetErrorFunc(nullptr, [](void*, virErrorPtr) {});  // errors are reported through Result, not stderr
  virConnectPtr c = virConnectOpen(source_uri.c_str());
  if (c == nullptr) return libvirt_error(fmt::format("connecting to {}", source_uri));
  return std::unique_ptr<LibvirtMigrationDriver>(new LibvirtMigrationDriver(c, source_uri));
}

LibvirtMigrationDriver::~LibvirtMigrationDriver() {
  {
    std::lock_guard lk(mu_);
    calls_.clear();  // joins calls still running (the Migrator ends each it began)
  }
  virConnectClose(conn_);
}

unsigned long LibvirtMigrationDriver::flags_for(const MigrationOptions& o, bool persistent) {
  unsigned long f = VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER | VIR_MIGRATE_ABORT_ON_ERROR;
  if (persistent) f |= VIR_MIGRATE_PERSIST_DEST | VIR_MIGRATE_UNDEFINE_SOURCE;
  if (o.auto_converge) f |= VIR_MIGRATE_AUTO_CONVERGE;
  if (o.postcopy) f |= VIR_MIGRATE_POSTCOPY;
  if (o.copy_storage) f |= VIR_MIGRATE_NON_SHARED_DISK;
  if (o.unsafe) f |= VIR_MIGRATE_UNSAFE;
  if (o.tunnelled) f |= VIR_MIGRATE_TUNNELLED;
  return f;
}

Result<SourceVm> LibvirtMigrationDriver::find(const std::string& vm) {
  MORPH_TRY_ASSIGN(Dom d, lookup(conn_, vm));
  SourceVm s;
  char uuid[VIR_UUID_STRING_BUFLEN];
  if (virDomainGetUUIDString(d.get(), uuid) != 0) return libvirt_error("reading the domain's UUID");
  s.uuid = uuid;
  s.name = virDomainGetName(d.get());
  s.presence = presence_of(d.get());
  s.persistent = virDomainIsPersistent(d.get()) == 1;
  if (s.presence == Presence::running || s.presence == Presence::paused) {
    int op = -1;
    MORPH_TRY_ASSIGN(JobStats j, job_stats(d.get(), 0, &op));
    if (j.active && is_migration(op)) s.migration_job = true;
    if (j.active && !is_migration(op)) s.other_job = operation_name(op);
  }
  return s;
}

Result<std::string> LibvirtMigrationDriver::host_uuid(const std::string& uri) {
  OwnedConn owned;
  MORPH_TRY_ASSIGN(virConnectPtr c, connection_for(conn_, uri, owned));
  char* raw = virConnectGetCapabilities(c);
  if (raw == nullptr) return libvirt_error("reading the host's capabilities");
  std::string caps(raw);
  free(raw);  // NOLINT(cppcoreguidelines-no-malloc): libvirt allocates with malloc
  const size_t host = caps.find("<host>");
  const size_t b = caps.find("<uuid>", host), e = caps.find("</uuid>", b);
  if (host == std::string::npos || b == std::string::npos || e == std::string::npos)
    return Error(Errc::protocol, "the host's capabilities carry no <host><uuid>");
  return caps.substr(b + 6, e - b - 6);
}

Result<Presence> LibvirtMigrationDriver::presence(const std::string& uri, const std::string& uuid) {
  OwnedConn owned;
  MORPH_TRY_ASSIGN(virConnectPtr c, connection_for(conn_, uri, owned));
  virDomainPtr d = virDomainLookupByUUIDString(c, uuid.c_str());
  if (d == nullptr) {
    virErrorPtr e = virGetLastError();
    if (e != nullptr && e->code == VIR_ERR_NO_DOMAIN) return Presence::absent;
    return libvirt_error("looking the domain up");
  }
  Dom dom(d);
  return presence_of(d);
}

Result<unsigned> LibvirtMigrationDriver::outbound_migrations() {
  virDomainPtr* doms = nullptr;
  int n = virConnectListAllDomains(conn_, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
  if (n < 0) return libvirt_error("listing the running domains");
  unsigned count = 0;
  for (int i = 0; i < n; ++i) {
    Dom d(doms[i]);
    int op = -1;
    if (auto j = job_stats(d.get(), 0, &op); j && j->active && op == VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT) ++count;
  }
  free(doms);  // NOLINT(cppcoreguidelines-no-malloc): libvirt allocates with malloc
  return count;
}

Status LibvirtMigrationDriver::begin(const SourceVm& vm, const std::string& destination_uri,
                                     const MigrationOptions& o) {
  MORPH_TRY_ASSIGN(Dom d, lookup(conn_, vm.uuid));
  // Set on the source QEMU before the job: libvirt keeps migration parameters set before one for it.
  if (virDomainMigrateSetMaxDowntime(d.get(), static_cast<unsigned long long>(o.max_downtime.count()), 0) != 0)
    return libvirt_error("setting the downtime limit");
  auto params = std::make_shared<TypedParams>();
  if (!o.transport_uri.empty() && virTypedParamsAddString(&params->p, &params->n, &params->cap, VIR_MIGRATE_PARAM_URI,
                                                          o.transport_uri.c_str()) != 0)
    return libvirt_error("building the migration parameters");
  if (o.bandwidth_mib_s > 0 && virTypedParamsAddULLong(&params->p, &params->n, &params->cap,
                                                       VIR_MIGRATE_PARAM_BANDWIDTH, o.bandwidth_mib_s) != 0)
    return libvirt_error("building the migration parameters");
  if (vm.persistent) {
    // The destination's definition is the source's definition, not its live state: by default libvirt
    // persists the live XML there, and values a shift put in force (CPU quota, balloon, disk limits) would
    // become the VM's baseline on its new host. The live values still travel with the running VM.
    char* defined = virDomainGetXMLDesc(d.get(), VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_MIGRATABLE);
    if (defined == nullptr) return libvirt_error("reading the domain's persistent definition");
    const int added =
        virTypedParamsAddString(&params->p, &params->n, &params->cap, VIR_MIGRATE_PARAM_PERSIST_XML, defined);
    free(defined);  // NOLINT(cppcoreguidelines-no-malloc): libvirt allocates with malloc
    if (added != 0) return libvirt_error("building the migration parameters");
  }

  // The call gets a connection of its own: libvirt's client answers nothing else on a connection while a
  // migration call waits on it, and the statistics, abort and post-copy calls must get through meanwhile.
  OwnedConn own(virConnectOpen(uri_.c_str()));
  if (!own) return libvirt_error(fmt::format("connecting to {}", uri_));
  MORPH_TRY_ASSIGN(Dom own_dom, lookup(own.get(), vm.uuid));
  auto call = std::make_shared<Call>();
  {
    std::lock_guard lk(mu_);
    if (calls_.count(vm.uuid)) return Error(Errc::conflict, fmt::format("a migration of {} runs already", vm.name));
    calls_[vm.uuid] = call;
  }
  const unsigned long flags = flags_for(o, vm.persistent);
  call->thread = std::thread([call, conn = std::move(own), dom = std::move(own_dom), destination_uri, params, flags] {
    Status st;
    if (virDomainMigrateToURI3(dom.get(), destination_uri.c_str(), params->p, static_cast<unsigned>(params->n),
                               flags) != 0)
      st = libvirt_error("migration");
    std::lock_guard lk(call->mu);
    call->status = std::move(st);
    call->done = true;
  });
  return {};
}

MigrationEnd LibvirtMigrationDriver::poll(const std::string& uuid) {
  std::shared_ptr<Call> call;
  {
    std::lock_guard lk(mu_);
    auto it = calls_.find(uuid);
    if (it == calls_.end()) return {true, Error(Errc::not_found, "no migration call was started for " + uuid)};
    call = it->second;
  }
  std::lock_guard lk(call->mu);
  if (!call->done) return {};
  return {true, call->status};
}

void LibvirtMigrationDriver::end(const std::string& uuid) {
  std::shared_ptr<Call> call;
  {
    std::lock_guard lk(mu_);
    auto it = calls_.find(uuid);
    if (it == calls_.end()) return;
    call = std::move(it->second);
    calls_.erase(it);
  }
  // The last reference joins the thread (outside mu_: the call may still be returning).
}

Result<JobStats> LibvirtMigrationDriver::job(const std::string& uuid) {
  MORPH_TRY_ASSIGN(Dom d, lookup(conn_, uuid));
  return job_stats(d.get(), 0);
}

Status LibvirtMigrationDriver::abort(const std::string& uuid) {
  MORPH_TRY_ASSIGN(Dom d, lookup(conn_, uuid));
  if (virDomainAbortJob(d.get()) != 0) return libvirt_error("aborting the migration");
  return {};
}

Status LibvirtMigrationDriver::start_postcopy(const std::string& uuid) {
  MORPH_TRY_ASSIGN(Dom d, lookup(conn_, uuid));
  if (virDomainMigrateStartPostCopy(d.get(), 0) != 0) return libvirt_error("switching to post-copy");
  return {};
}

Status LibvirtMigrationDriver::resume(const std::string& uuid) {
  MORPH_TRY_ASSIGN(Dom d, lookup(conn_, uuid));
  if (virDomainResume(d.get()) != 0) return libvirt_error("resuming the domain");
  return {};
}

Result<JobStats> LibvirtMigrationDriver::completed(const std::string& destination_uri, const std::string& uuid) {
  OwnedConn owned;
  MORPH_TRY_ASSIGN(virConnectPtr c, connection_for(conn_, destination_uri, owned));
  MORPH_TRY_ASSIGN(Dom d, lookup(c, uuid));
  return job_stats(d.get(), VIR_DOMAIN_JOB_STATS_COMPLETED);
}

}  // namespace morph::agent::migration
