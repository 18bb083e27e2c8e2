#pragma once
// LibvirtMigrationDriver: the real MigrationDriver. A peer-to-peer live migration with
// virDomainMigrateToURI3 (the source's libvirtd connects to the destination's and runs both ends, so
// the migration does not depend on this process staying up), run on a thread of its own per VM while
// the Migrator polls the source's job statistics (virDomainGetJobStats), aborts (virDomainAbortJob) or
// switches to post-copy (virDomainMigrateStartPostCopy). The downtime limit is set on the source QEMU
// just before (virDomainMigrateSetMaxDowntime). A persistent VM's definition moves with it
// (VIR_MIGRATE_PERSIST_DEST | VIR_MIGRATE_UNDEFINE_SOURCE), so it stays defined on exactly one host; a
// transient one stays transient. Destinations are reached with a connection opened per question.
//
// It never changes a VM otherwise, and never decides anything: the rules are the Migrator's.

#include <libvirt/libvirt.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "hostagent/migration/migration_driver.h"

namespace morph::agent::migration {

class LibvirtMigrationDriver final : public MigrationDriver {
 public:
  LibvirtMigrationDriver(const LibvirtMigrationDriver&) = delete;
  LibvirtMigrationDriver& operator=(const LibvirtMigrationDriver&) = delete;
  ~LibvirtMigrationDriver() override;
  // source_uri: the libvirt URI of this host (the VM's source).
  static Result<std::unique_ptr<LibvirtMigrationDriver>> connect(const std::string& source_uri);

  Result<SourceVm> find(const std::string& vm) override;
  Result<std::string> host_uuid(const std::string& uri) override;
  Result<Presence> presence(const std::string& uri, const std::string& uuid) override;
  Result<unsigned> outbound_migrations() override;
  Status begin(const SourceVm& vm, const std::string& destination_uri, const MigrationOptions& o) override;
  MigrationEnd poll(const std::string& uuid) override;
  Result<JobStats> job(const std::string& uuid) override;
  Status abort(const std::string& uuid) override;
  Status start_postcopy(const std::string& uuid) override;
  Status resume(const std::string& uuid) override;
  Result<JobStats> completed(const std::string& destination_uri, const std::string& uuid) override;
  void end(const std::string& uuid) override;

  // The flags virDomainMigrateToURI3 gets for these options and a VM with or without a definition.
  static unsigned long flags_for(const MigrationOptions& o, bool persistent);

 private:
  struct Call;  // one migration call running on its thread
  explicit LibvirtMigrationDriver(virConnectPtr conn, std::string uri) : conn_(conn), uri_(std::move(uri)) {}

  virConnectPtr conn_;
  std::string uri_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Call>> calls_;  // by VM UUID
};

}  // namespace morph::agent::migration
