#include "common/msg/migrate.h"

#include "common/msg/socket.h"
#include "common/msg/wire.h"

namespace morph::msg {

const char* migration_state_name(MigrationState s) {
  return v1::EnumNameMigrationState(s);
}

namespace {
flatbuffers::Offset<flatbuffers::String> optional_string(flatbuffers::FlatBufferBuilder& fbb, const std::string& s) {
  return s.empty() ? 0 : fbb.CreateString(s);
}
}  // namespace

void encode_migrate_command(flatbuffers::FlatBufferBuilder& fbb, const MigrateOrder& o) {
  auto uuid = fbb.CreateString(o.vm_uuid);
  auto dhost = optional_string(fbb, o.destination_host);
  auto duri = optional_string(fbb, o.destination_uri);
  auto turi = optional_string(fbb, o.transport_uri);
  fbb.Finish(v1::CreateMigrateCommand(fbb, o.command_id, uuid, dhost, duri, turi, o.max_downtime_ms, o.bandwidth_mib_s,
                                      o.timeout_ms, o.auto_converge, o.postcopy, o.copy_storage, o.cancel,
                                      o.issued_ns ? o.issued_ns : now_ns()),
             v1::MigrateCommandIdentifier());
}

MigrateOrder to_migrate_order(const v1::MigrateCommand& c) {
  MigrateOrder o;
  o.command_id = c.command_id();
  o.vm_uuid = std::string(sv(c.vm_uuid()));
  o.destination_host = std::string(sv(c.destination_host()));
  o.destination_uri = std::string(sv(c.destination_uri()));
  o.transport_uri = std::string(sv(c.transport_uri()));
  o.max_downtime_ms = c.max_downtime_ms();
  o.bandwidth_mib_s = c.bandwidth_mib_s();
  o.timeout_ms = c.timeout_ms();
  o.auto_converge = c.auto_converge();
  o.postcopy = c.postcopy();
  o.copy_storage = c.copy_storage();
  o.cancel = c.cancel();
  o.issued_ns = c.issued_ns();
  return o;
}

void encode_migrate_result(flatbuffers::FlatBufferBuilder& fbb, const std::string& host, const MigrateOutcome& r) {
  auto uuid = fbb.CreateString(r.vm_uuid);
  auto h = optional_string(fbb, host);
  auto dhost = optional_string(fbb, r.destination_host);
  flatbuffers::Offset<v1::Error> err;
  if (r.error != v1::ErrorCode::ok) err = v1::CreateError(fbb, r.error, fbb.CreateString(r.error_message));
  fbb.Finish(v1::CreateMigrateResult(fbb, r.command_id, uuid, h, dhost, r.state, r.downtime_ms, r.total_ms, r.bytes,
                                     r.remaining_bytes, r.iterations, r.postcopy, err, now_ns()),
             v1::MigrateResultIdentifier());
}

MigrateOutcome to_migrate_outcome(const v1::MigrateResult& r) {
  const v1::Error* e = r.error();
  return {r.command_id(),
          std::string(sv(r.vm_uuid())),
          std::string(sv(r.destination_host())),
          r.state(),
          r.downtime_ms(),
          r.total_ms(),
          r.bytes(),
          r.remaining_bytes(),
          r.iterations(),
          r.postcopy(),
          e ? e->code() : v1::ErrorCode::ok,
          e ? std::string(sv(e->message())) : std::string()};
}

}  // namespace morph::msg
