#include "controller/api/api_service.h"

#include "common/msg/socket.h"

namespace morph::controller {

using msg::sv;

namespace {
flatbuffers::Offset<v1::KpiReport> copy_report(flatbuffers::FlatBufferBuilder& fbb, const HostEntry& h) {
  // Re-serialise the stored (verified) report into this reply.
  auto* r = flatbuffers::GetRoot<v1::KpiReport>(h.latest_report.data());
  std::vector<flatbuffers::Offset<v1::VmKpi>> vms;
  if (r->vms()) {
    vms.reserve(r->vms()->size());
    for (auto* k : *r->vms()) vms.push_back(msg::copy_vm_kpi(fbb, *k));
  }
  return v1::CreateKpiReport(fbb, fbb.CreateString(r->host()), r->seq(), r->incarnation(), r->interval_ns(),
                             r->timestamp_ns(), fbb.CreateVector(vms));
}

bool matches(const flatbuffers::String* filter, std::string_view value) {
  return filter == nullptr || filter->size() == 0 || filter->string_view() == value;
}
}  // namespace

void ApiService::error_reply(flatbuffers::FlatBufferBuilder& fbb, uint64_t request_id, const Error& e) {
  auto err = v1::CreateError(fbb, msg::wire_code(e.code()), fbb.CreateString(e.what()));
  fbb.Finish(v1::CreateApiReply(fbb, request_id, err, v1::ApiReplyBody::NONE, 0, msg::now_ns()),
             v1::ApiReplyIdentifier());
}

Result<ReplyBody> ApiService::builtin(const Caller& caller, const v1::ApiRequest& req, uint64_t events_seq,
                                      uint64_t incarnation, flatbuffers::FlatBufferBuilder& fbb, bool& handled) {
  handled = true;
  // `vms list` shows the owner in force (an admin's override), not only what the host's metadata says.
  const OwnerOf owner_of = [this](const std::string& vm, const std::string& reported) {
    return market_.owner_of(vm, reported);
  };
  switch (req.body_type()) {
    case v1::ApiRequestBody::HostsQuery: {
      std::vector<flatbuffers::Offset<v1::HostStatus>> v;
      for (auto& [n, h] : hosts_.hosts()) v.push_back(build_host_status(fbb, h));
      return ReplyBody{v1::ApiReplyBody::HostsReply, v1::CreateHostsReply(fbb, fbb.CreateVector(v)).Union()};
    }
    case v1::ApiRequestBody::VmsQuery: {
      std::vector<flatbuffers::Offset<v1::VmStatus>> v;
      for (auto& [n, h] : hosts_.hosts())
        if (matches(req.body_as_VmsQuery()->host(), n)) build_vm_statuses(fbb, h, v, owner_of);
      return ReplyBody{v1::ApiReplyBody::VmsReply, v1::CreateVmsReply(fbb, fbb.CreateVector(v)).Union()};
    }
    case v1::ApiRequestBody::KpisQuery: {
      std::vector<flatbuffers::Offset<v1::KpiReport>> v;
      for (auto& [n, h] : hosts_.hosts())
        if (matches(req.body_as_KpisQuery()->host(), n) && h.latest_report.size() > 0) v.push_back(copy_report(fbb, h));
      return ReplyBody{v1::ApiReplyBody::KpisReply, v1::CreateKpisReply(fbb, fbb.CreateVector(v)).Union()};
    }
    case v1::ApiRequestBody::SnapshotRequest: {
      std::vector<flatbuffers::Offset<v1::HostStatus>> hs;
      std::vector<flatbuffers::Offset<v1::VmStatus>> vs;
      std::vector<flatbuffers::Offset<v1::KpiReport>> ks;
      std::vector<flatbuffers::Offset<v1::PriceInfo>> ps;
      std::vector<flatbuffers::Offset<v1::AllocationInfo>> as;
      for (auto& [n, h] : hosts_.hosts()) {
        hs.push_back(build_host_status(fbb, h));
        build_vm_statuses(fbb, h, vs, owner_of);
        if (h.latest_report.size() > 0) ks.push_back(copy_report(fbb, h));
      }
      market_.snapshot(caller, fbb, ps, as);
      auto snap = v1::CreateSnapshotReply(fbb, events_seq, incarnation, fbb.CreateVector(hs), fbb.CreateVector(vs),
                                          fbb.CreateVector(ks), fbb.CreateVector(ps), fbb.CreateVector(as));
      return ReplyBody{v1::ApiReplyBody::SnapshotReply, snap.Union()};
    }
    default:
      handled = false;
      return ReplyBody{};
  }
}

void ApiService::handle(const Caller& caller, const v1::ApiRequest& req, uint64_t events_seq, uint64_t incarnation,
                        flatbuffers::FlatBufferBuilder& fbb) {
  bool handled = false;
  auto body = builtin(caller, req, events_seq, incarnation, fbb, handled);
  if (!handled) {
    fbb.Clear();
    body = market_.handle(caller, req, fbb);
  }
  if (!body) {
    fbb.Clear();
    error_reply(fbb, req.request_id(), body.error());
    return;
  }
  fbb.Finish(v1::CreateApiReply(fbb, req.request_id(), 0, body->type, body->offset, msg::now_ns()),
             v1::ApiReplyIdentifier());
}

}  // namespace morph::controller
