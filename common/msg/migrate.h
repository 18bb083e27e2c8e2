#pragma once
// Live-migration orders and outcomes as plain C++ values, shared by the controller (which decides moves)
// and the agent (whose hostagent/migration carries them out), with their wire encodings (MigrateCommand,
// MigrateResult). The agent side never sees FlatBuffers. Decoding and range checks: common/msg/wire.h.

#include <flatbuffers/flatbuffers.h>

#include <cstdint>
#include <string>

#include "migrate_command_generated.h"
#include "migrate_result_generated.h"

namespace morph::msg {

using MigrationState = v1::MigrationState;

struct MigrateOrder {
  uint64_t command_id = 0;
  std::string vm_uuid;
  std::string destination_host;  // the destination's host id
  std::string destination_uri;   // its libvirt URI as the source's libvirtd reaches it
  std::string transport_uri;     // memory stream; empty: the destination's default
  uint32_t max_downtime_ms = 0;  // 0: the agent's default
  uint32_t bandwidth_mib_s = 0;  // 0: unlimited
  uint32_t timeout_ms = 0;       // 0: the agent's default
  bool auto_converge = false;
  bool postcopy = false;
  bool copy_storage = false;
  bool cancel = false;  // stop the migration of vm_uuid that runs
  uint64_t issued_ns = 0;
};

struct MigrateOutcome {
  uint64_t command_id = 0;
  std::string vm_uuid;
  std::string destination_host;
  MigrationState state = MigrationState::running;
  uint64_t downtime_ms = 0;
  uint64_t total_ms = 0;
  uint64_t bytes = 0;
  uint64_t remaining_bytes = 0;
  uint32_t iterations = 0;
  bool postcopy = false;
  v1::ErrorCode error = v1::ErrorCode::ok;
  std::string error_message;

  bool final() const { return state != MigrationState::running; }
};

// "running", "completed", "failed", "cancelled".
const char* migration_state_name(MigrationState s);

void encode_migrate_command(flatbuffers::FlatBufferBuilder& fbb, const MigrateOrder& o);
MigrateOrder to_migrate_order(const v1::MigrateCommand& c);
void encode_migrate_result(flatbuffers::FlatBufferBuilder& fbb, const std::string& host, const MigrateOutcome& r);
MigrateOutcome to_migrate_outcome(const v1::MigrateResult& r);

}  // namespace morph::msg
