#pragma once
// Shift commands and results as plain C++ values, shared by the controller (which issues them) and the
// agent (whose shifter applies them), with their wire encodings. The agent side never sees FlatBuffers.

#include <flatbuffers/flatbuffers.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"
#include "lease_renew_generated.h"
#include "shift_command_generated.h"
#include "shift_result_generated.h"

namespace morph::msg {

// The wire's resource enum: ShiftOrder carries what the controller sent, migrate included, and the agent
// converts it with from_wire (common/resource.h) to refuse what it cannot shift with a reason.
using Resource = v1::Resource;

struct ResourceSetting {
  Resource resource = Resource::cpu;
  int64_t value = 0;
  std::string target;  // vcpu_pin: host cpu list; migrate: destination
  bool operator==(const ResourceSetting&) const = default;
};

struct ShiftOrder {
  uint64_t command_id = 0;
  std::string vm_uuid;
  std::vector<ResourceSetting> adjustments;
  uint64_t lease_ns = 0;  // 0: the agent's default
  uint64_t issued_ns = 0;
};

struct ShiftOutcome {
  uint64_t command_id = 0;
  std::string vm_uuid;
  std::vector<ResourceSetting> in_force;  // read back after applying
  v1::ErrorCode error = v1::ErrorCode::ok;
  std::string error_message;
  uint64_t lease_expires_ns = 0;
  bool reverted = false;  // a lease-expiry revert rather than an answer to a command
  bool restated = false;  // what is in force under a lease, restated on (re)connect, not an answer either

  static ShiftOutcome failed(const ShiftOrder& o, const Error& e);
  // Its phase in shift events and `morphctl shifts`: "reverted", "in_force" (restated), "failed", "applied".
  const char* phase() const;
};

struct LeaseRenewal {
  std::string vm_uuid;
  std::vector<uint64_t> command_ids;
  uint64_t lease_ns = 0;
};

v1::ErrorCode wire_code(Errc c);

void encode_shift_command(flatbuffers::FlatBufferBuilder& fbb, const ShiftOrder& o);
ShiftOrder to_shift_order(const v1::ShiftCommand& c);
void encode_shift_result(flatbuffers::FlatBufferBuilder& fbb, const std::string& host, const ShiftOutcome& r);
ShiftOutcome to_shift_outcome(const v1::ShiftResult& r);
LeaseRenewal to_lease_renewal(const v1::LeaseRenew& l);
void encode_lease_renew(flatbuffers::FlatBufferBuilder& fbb, const LeaseRenewal& l);

}  // namespace morph::msg
