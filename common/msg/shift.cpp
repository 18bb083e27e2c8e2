#include "common/msg/shift.h"

#include "common/msg/socket.h"
#include "common/msg/wire.h"
#include "lease_renew_generated.h"

namespace morph::msg {

ShiftOutcome ShiftOutcome::failed(const ShiftOrder& o, const Error& e) {
  ShiftOutcome r;
  r.command_id = o.command_id;
  r.vm_uuid = o.vm_uuid;
  r.error = wire_code(e.code());
  if (r.error == v1::ErrorCode::ok) r.error = v1::ErrorCode::internal;
  r.error_message = e.what();
  return r;
}

v1::ErrorCode wire_code(Errc c) {
  // The wire's codes are Errc's, in the same order, after `ok` (schemas/types.fbs); unit_msg checks them by
  // name, these the ends.
  static_assert(static_cast<int>(v1::ErrorCode::invalid_argument) == static_cast<int>(Errc::invalid_argument) + 1);
  static_assert(static_cast<int>(v1::ErrorCode::internal) == static_cast<int>(Errc::internal) + 1);
  static_assert(v1::ErrorCode::internal == v1::ErrorCode::MAX);
  const int wire = static_cast<int>(c) + 1;
  return wire <= static_cast<int>(v1::ErrorCode::MAX) ? static_cast<v1::ErrorCode>(wire) : v1::ErrorCode::internal;
}

namespace {
flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<v1::Adjustment>>> encode_settings(
    flatbuffers::FlatBufferBuilder& fbb, const std::vector<ResourceSetting>& s) {
  std::vector<flatbuffers::Offset<v1::Adjustment>> v;
  for (auto& a : s)
    v.push_back(v1::CreateAdjustment(fbb, a.resource, a.value, a.target.empty() ? 0 : fbb.CreateString(a.target)));
  return fbb.CreateVector(v);
}
std::vector<ResourceSetting> to_settings(const flatbuffers::Vector<flatbuffers::Offset<v1::Adjustment>>* v) {
  std::vector<ResourceSetting> out;
  if (v)
    for (auto* a : *v) out.push_back({a->resource(), a->value(), std::string(sv(a->target()))});
  return out;
}
}  // namespace

void encode_shift_command(flatbuffers::FlatBufferBuilder& fbb, const ShiftOrder& o) {
  auto uuid = fbb.CreateString(o.vm_uuid);
  auto adj = encode_settings(fbb, o.adjustments);
  fbb.Finish(v1::CreateShiftCommand(fbb, o.command_id, uuid, adj, o.lease_ns, o.issued_ns ? o.issued_ns : now_ns()),
             v1::ShiftCommandIdentifier());
}

ShiftOrder to_shift_order(const v1::ShiftCommand& c) {
  return {c.command_id(), std::string(sv(c.vm_uuid())), to_settings(c.adjustments()), c.lease_ns(), c.issued_ns()};
}

void encode_shift_result(flatbuffers::FlatBufferBuilder& fbb, const std::string& host, const ShiftOutcome& r) {
  auto uuid = fbb.CreateString(r.vm_uuid);
  auto h = fbb.CreateString(host);
  auto inf = encode_settings(fbb, r.in_force);
  flatbuffers::Offset<v1::Error> err;
  if (r.error != v1::ErrorCode::ok) err = v1::CreateError(fbb, r.error, fbb.CreateString(r.error_message));
  fbb.Finish(v1::CreateShiftResult(fbb, r.command_id, uuid, h, inf, err, r.lease_expires_ns, r.reverted, r.restated),
             v1::ShiftResultIdentifier());
}

ShiftOutcome to_shift_outcome(const v1::ShiftResult& r) {
  ShiftOutcome o;
  o.command_id = r.command_id();
  o.vm_uuid = std::string(sv(r.vm_uuid()));
  o.in_force = to_settings(r.in_force());
  if (r.error()) {
    o.error = r.error()->code();
    o.error_message = std::string(sv(r.error()->message()));
  }
  o.lease_expires_ns = r.lease_expires_ns();
  o.reverted = r.reverted();
  o.restated = r.restated();
  return o;
}

const char* ShiftOutcome::phase() const {
  if (reverted) return "reverted";
  if (error != v1::ErrorCode::ok) return "failed";
  return restated ? "in_force" : "applied";
}

LeaseRenewal to_lease_renewal(const v1::LeaseRenew& l) {
  LeaseRenewal r{std::string(sv(l.vm_uuid())), {}, l.lease_ns()};
  if (l.command_ids()) r.command_ids.assign(l.command_ids()->begin(), l.command_ids()->end());
  return r;
}

void encode_lease_renew(flatbuffers::FlatBufferBuilder& fbb, const LeaseRenewal& l) {
  auto uuid = fbb.CreateString(l.vm_uuid);
  auto ids = fbb.CreateVector(l.command_ids);
  fbb.Finish(v1::CreateLeaseRenew(fbb, uuid, ids, l.lease_ns, now_ns()), v1::LeaseRenewIdentifier());
}

}  // namespace morph::msg
