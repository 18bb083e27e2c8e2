#include "common/msg/wire.h"

#include <algorithm>
#include <array>
#include <climits>

namespace morph::msg {

namespace {

Error bad(std::string what) {
  return Error(Errc::protocol, std::move(what));
}

template <class T>
Result<const T*> verified_root(std::span<const uint8_t> buf, const char* ident, const char* type_name,
                               bool (*verify)(flatbuffers::Verifier&)) {
  if (buf.size() < 8) return bad(std::string(type_name) + ": truncated (" + std::to_string(buf.size()) + " bytes)");
  if (buf.size() > Limits::kMaxBuffer)
    return bad(std::string(type_name) + ": oversized (" + std::to_string(buf.size()) + " bytes)");
  if (reinterpret_cast<uintptr_t>(buf.data()) % 8 != 0)
    return bad(std::string(type_name) + ": buffer not 8-byte aligned (receive with recv_parts)");
  if (!flatbuffers::BufferHasIdentifier(buf.data(), ident))
    return bad(std::string(type_name) + ": wrong file_identifier (want " + ident + ")");
  flatbuffers::Verifier v(buf.data(), buf.size(), /*max_depth=*/32, /*max_tables=*/1'000'000);
  if (!verify(v)) return bad(std::string(type_name) + ": failed FlatBuffers verification");
  return flatbuffers::GetRoot<T>(buf.data());
}

bool str_ok(const flatbuffers::String* s, size_t max = Limits::kMaxName) {
  return s == nullptr || s->size() <= max;
}

template <class E>
bool enum_ok(E e) {
  return static_cast<uint64_t>(e) <= static_cast<uint64_t>(E::MAX);
}

// Printable ASCII without blanks, quotes or backslashes: safe to quote in a log line.
bool all_printable(std::string_view u) {
  return std::all_of(u.begin(), u.end(), [](char c) { return c > ' ' && c < 0x7f && c != '"' && c != '\\'; });
}

// A URI as libvirt takes it: printable, with a scheme.
bool uri_ok(std::string_view u) {
  return !u.empty() && u.size() <= Limits::kMaxUri && u.find("://") != std::string_view::npos && all_printable(u);
}

Status check_amounts(const flatbuffers::Vector<flatbuffers::Offset<v1::ResourceAmount>>* v, const char* what) {
  if (v == nullptr) return {};
  if (v->size() > 64) return bad(std::string(what) + ": too many resources");
  for (auto* a : *v) {
    if (!enum_ok(a->resource())) return bad(std::string(what) + ": unknown resource");
    if (a->amount() < 0) return bad(std::string(what) + ": negative amount");
  }
  return {};
}

Status check_adjustments(const flatbuffers::Vector<flatbuffers::Offset<v1::Adjustment>>* v, const char* what) {
  if (v == nullptr) return {};
  if (v->size() > Limits::kMaxAdjustments) return bad(std::string(what) + ": too many adjustments");
  for (auto* a : *v) {
    if (!enum_ok(a->resource())) return bad(std::string(what) + ": unknown resource");
    if (a->value() < 0) return bad(std::string(what) + ": negative value");
    if (!str_ok(a->target())) return bad(std::string(what) + ": target too long");
  }
  return {};
}

Status check_error(const v1::Error* e) {
  if (e == nullptr) return {};
  if (!enum_ok(e->code())) return bad("unknown error code");
  if (!str_ok(e->message(), 4096)) return bad("error message too long");
  return {};
}

Status check_hist(const flatbuffers::Vector<uint32_t>* h, const char* what) {
  if (h == nullptr) return {};
  if (h->size() != static_cast<uint32_t>(kpi::kHistBuckets))
    return bad(std::string(what) + ": histogram has " + std::to_string(h->size()) + " buckets, not 27");
  return {};  // uint32 counts per interval cannot be absurd on their own
}

Status check_interval(uint64_t iv, const char* what) {
  if (iv < Limits::kMinIntervalNs || iv > Limits::kMaxIntervalNs)
    return bad(std::string(what) + ": interval_ns " + std::to_string(iv) + " outside [100 ms, 60 s]");
  return {};
}

// How a VM entry is named in a reason: its uuid when it is one, else the uuid as text when it is printable
// (so an operator can find the agent's bug), else only its position in the report.
std::string vm_label(const v1::VmKpi& k, uint32_t index) {
  auto u = sv(k.uuid());
  if (valid_uuid(u)) return "vm=" + std::string(u);
  bool printable = !u.empty() && u.size() <= 64 && all_printable(u);
  return "vm #" + std::to_string(index) +
         (printable ? " uuid=\"" + std::string(u) + "\"" : std::string(" (uuid not printable)"));
}

// Range checks of one VM entry; the error names the VM and the first field that is wrong.
Status check_vm_kpi(const v1::VmKpi& k, uint64_t report_interval_ns, uint32_t index) {
  auto fail = [&](const std::string& what) { return bad(vm_label(k, index) + ": " + what); };
  if (!valid_uuid(sv(k.uuid()))) return fail("uuid is not a UUID ([A-Za-z0-9-]{1,64})");
  if (!str_ok(k.name())) return fail("name longer than 255");
  uint64_t iv = k.interval_ns() ? k.interval_ns() : report_interval_ns;
  if (iv < Limits::kMinIntervalNs / 2 || iv > Limits::kMaxIntervalNs * 2)
    return fail("interval_ns=" + std::to_string(iv) + " out of range [50 ms, 120 s]");
  const uint64_t secs = iv / 1'000'000'000ULL + 1;
  const uint64_t max_cpu = iv * Limits::kMaxCpus, max_bytes = Limits::kMaxBytesPerSec * secs,
                 max_ops = Limits::kMaxOpsPerSec * secs;
  // The good path is the plain comparisons; which field is wrong is only worked out on failure.
  const bool in_range =
      k.cpu_run_ns() <= max_cpu && k.cpu_wait_ns() <= max_cpu && k.cpu_throttled_ns() <= max_cpu &&
      k.blk_read_bytes() <= max_bytes && k.blk_write_bytes() <= max_bytes && k.net_rx_bytes() <= max_bytes &&
      k.net_tx_bytes() <= max_bytes && k.blk_read_ops() <= max_ops && k.blk_write_ops() <= max_ops &&
      k.net_rx_pkts() <= max_ops && k.net_tx_pkts() <= max_ops && k.net_rx_drops() <= max_ops &&
      k.net_tx_drops() <= max_ops && k.net_rx_policed_bytes() <= max_bytes && k.net_tx_policed_bytes() <= max_bytes &&
      k.mem_major_faults() <= max_ops && k.mem_minor_faults() <= max_ops &&
      k.mem_rss_bytes() <= Limits::kMaxGaugeBytes && k.mem_balloon_kib() <= Limits::kMaxGaugeBytes / 1024;
  if (!in_range) [[unlikely]] {
    struct Field {
      const char* name;
      uint64_t value, max;
      const char* what;
    };
    const Field fields[] = {
        {"cpu_run_ns", k.cpu_run_ns(), max_cpu, "cpu time exceeds interval × 4096 cpus"},
        {"cpu_wait_ns", k.cpu_wait_ns(), max_cpu, "cpu time exceeds interval × 4096 cpus"},
        {"cpu_throttled_ns", k.cpu_throttled_ns(), max_cpu, "cpu time exceeds interval × 4096 cpus"},
        {"blk_read_bytes", k.blk_read_bytes(), max_bytes, "absurd byte counter"},
        {"blk_write_bytes", k.blk_write_bytes(), max_bytes, "absurd byte counter"},
        {"net_rx_bytes", k.net_rx_bytes(), max_bytes, "absurd byte counter"},
        {"net_tx_bytes", k.net_tx_bytes(), max_bytes, "absurd byte counter"},
        {"blk_read_ops", k.blk_read_ops(), max_ops, "absurd event counter"},
        {"blk_write_ops", k.blk_write_ops(), max_ops, "absurd event counter"},
        {"net_rx_pkts", k.net_rx_pkts(), max_ops, "absurd event counter"},
        {"net_tx_pkts", k.net_tx_pkts(), max_ops, "absurd event counter"},
        {"net_rx_drops", k.net_rx_drops(), max_ops, "absurd event counter"},
        {"net_tx_drops", k.net_tx_drops(), max_ops, "absurd event counter"},
        {"net_rx_policed_bytes", k.net_rx_policed_bytes(), max_bytes, "absurd byte counter"},
        {"net_tx_policed_bytes", k.net_tx_policed_bytes(), max_bytes, "absurd byte counter"},
        {"mem_major_faults", k.mem_major_faults(), max_ops, "absurd event counter"},
        {"mem_minor_faults", k.mem_minor_faults(), max_ops, "absurd event counter"},
        {"mem_rss_bytes", k.mem_rss_bytes(), Limits::kMaxGaugeBytes, "absurd memory gauge"},
        {"mem_balloon_kib", k.mem_balloon_kib(), Limits::kMaxGaugeBytes / 1024, "absurd memory gauge"},
    };
    for (const auto& f : fields)
      if (f.value > f.max) return fail(std::string(f.name) + "=" + std::to_string(f.value) + ": " + f.what);
    return fail("a counter out of range");  // (the list above lacks a field checked in in_range)
  }
  if (auto st = check_hist(k.runq_lat_us(), "runq_lat_us"); !st) return fail(st.error().message());
  if (auto st = check_hist(k.blk_lat_us(), "blk_lat_us"); !st) return fail(st.error().message());
  return {};
}

// Everything but the VM entries: a failure here rejects the whole report.
Result<const v1::KpiReport*> kpi_report_header(std::span<const uint8_t> buf) {
  MORPH_TRY_ASSIGN(
      auto r, verified_root<v1::KpiReport>(buf, v1::KpiReportIdentifier(), "KpiReport", v1::VerifyKpiReportBuffer));
  if (!valid_name(sv(r->host()))) return bad("KpiReport: host is not a valid name");
  MORPH_TRY(check_interval(r->interval_ns(), "KpiReport"));
  if (r->vms() != nullptr && r->vms()->size() > Limits::kMaxVms) return bad("KpiReport: too many VMs");
  return r;
}

Status check_account(const flatbuffers::String* s, bool required) {
  if (s == nullptr || s->size() == 0) return required ? bad("account is required") : Status{};
  if (!valid_name(s->string_view())) return bad("account name is not [A-Za-z0-9._-]{1,255}");
  return {};
}

// A message's VM UUID, which it must carry.
Status check_vm_uuid(const flatbuffers::String* s, const char* message) {
  if (!valid_uuid(sv(s))) return bad(std::string(message) + ": vm uuid is not a UUID");
  return {};
}

Status check_optional_uuid(const flatbuffers::String* s) {
  if (s == nullptr || s->size() == 0) return {};
  if (!valid_uuid(s->string_view())) return bad("vm uuid is not a UUID");
  return {};
}

Status check_optional_name(const flatbuffers::String* s) {
  if (s == nullptr || s->size() == 0) return {};
  if (!valid_name(s->string_view())) return bad("name is not [A-Za-z0-9._-]{1,255}");
  return {};
}

}  // namespace

bool valid_name(std::string_view s) {
  if (s.empty() || s.size() > Limits::kMaxName) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  });
}

bool valid_uuid(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
  });
}

const char* tier_word(v1::BidTier tier) {
  switch (tier) {
    case v1::BidTier::sla_critical:
      return "sla";
    case v1::BidTier::improvement:
      return "improve";
    case v1::BidTier::speculative:
      return "speculative";
  }
  return "?";
}

Result<const v1::KpiReport*> decode_kpi_report(std::span<const uint8_t> buf) {
  MORPH_TRY_ASSIGN(auto r, kpi_report_header(buf));
  if (r->vms() != nullptr)
    for (uint32_t i = 0; i < r->vms()->size(); ++i)
      if (auto st = check_vm_kpi(*r->vms()->Get(i), r->interval_ns(), i); !st)
        return std::move(st).error().with_context("KpiReport");
  return r;
}

Result<LenientKpiReport> decode_kpi_report_lenient(std::span<const uint8_t> buf) {
  MORPH_TRY_ASSIGN(auto r, kpi_report_header(buf));
  LenientKpiReport out;
  out.report = r;
  if (r->vms() != nullptr)
    for (uint32_t i = 0; i < r->vms()->size(); ++i)
      if (auto st = check_vm_kpi(*r->vms()->Get(i), r->interval_ns(), i); !st)
        out.dropped.push_back({i, "KpiReport host=" + std::string(sv(r->host())) + " " + st.error().message()});
  return out;
}

flatbuffers::Offset<v1::VmKpi> copy_vm_kpi(flatbuffers::FlatBufferBuilder& fbb, const v1::VmKpi& k) {
  // Children first, then the table; absent optional fields stay absent (ingest keeps a VM's last histogram
  // when a report carries none).
  auto uuid = fbb.CreateString(k.uuid());
  flatbuffers::Offset<flatbuffers::String> name;
  if (k.name()) name = fbb.CreateString(k.name());
  flatbuffers::Offset<flatbuffers::Vector<uint32_t>> runq, blk;
  if (k.runq_lat_us()) runq = fbb.CreateVector(k.runq_lat_us()->data(), k.runq_lat_us()->size());
  if (k.blk_lat_us()) blk = fbb.CreateVector(k.blk_lat_us()->data(), k.blk_lat_us()->size());
  v1::VmKpiBuilder b(fbb);
  b.add_uuid(uuid);
  if (k.name()) b.add_name(name);
  b.add_interval_ns(k.interval_ns());
  b.add_cpu_run_ns(k.cpu_run_ns());
  b.add_cpu_wait_ns(k.cpu_wait_ns());
  b.add_cpu_throttled_ns(k.cpu_throttled_ns());
  if (k.runq_lat_us()) b.add_runq_lat_us(runq);
  b.add_blk_read_bytes(k.blk_read_bytes());
  b.add_blk_write_bytes(k.blk_write_bytes());
  b.add_blk_read_ops(k.blk_read_ops());
  b.add_blk_write_ops(k.blk_write_ops());
  if (k.blk_lat_us()) b.add_blk_lat_us(blk);
  b.add_net_rx_bytes(k.net_rx_bytes());
  b.add_net_tx_bytes(k.net_tx_bytes());
  b.add_net_rx_pkts(k.net_rx_pkts());
  b.add_net_tx_pkts(k.net_tx_pkts());
  b.add_net_rx_drops(k.net_rx_drops());
  b.add_net_tx_drops(k.net_tx_drops());
  b.add_mem_major_faults(k.mem_major_faults());
  b.add_mem_minor_faults(k.mem_minor_faults());
  b.add_mem_rss_bytes(k.mem_rss_bytes());
  b.add_mem_balloon_kib(k.mem_balloon_kib());
  b.add_net_rx_policed_bytes(k.net_rx_policed_bytes());
  b.add_net_tx_policed_bytes(k.net_tx_policed_bytes());
  return b.Finish();
}
// A field added to VmKpi must be copied above too (tests/unit/msg_wire_test.cpp compares the vtables).
static_assert(v1::VmKpi::VT_NET_TX_POLICED_BYTES == 50, "VmKpi changed: update copy_vm_kpi");

void rebuild_kpi_report(flatbuffers::FlatBufferBuilder& fbb, const v1::KpiReport& r,
                        const std::vector<DroppedVm>& dropped) {
  fbb.Clear();
  std::vector<flatbuffers::Offset<v1::VmKpi>> offs;
  if (r.vms() != nullptr) {
    std::vector<bool> skip(r.vms()->size());
    for (auto& d : dropped)
      if (d.index < skip.size()) skip[d.index] = true;
    offs.reserve(r.vms()->size());
    for (uint32_t i = 0; i < r.vms()->size(); ++i)
      if (!skip[i]) offs.push_back(copy_vm_kpi(fbb, *r.vms()->Get(i)));
  }
  auto host = fbb.CreateString(r.host());
  auto vec = fbb.CreateVector(offs);
  fbb.Finish(v1::CreateKpiReport(fbb, host, r.seq(), r.incarnation(), r.interval_ns(), r.timestamp_ns(), vec),
             v1::KpiReportIdentifier());
}

Result<const v1::HostHello*> decode_host_hello(std::span<const uint8_t> buf) {
  MORPH_TRY_ASSIGN(
      auto h, verified_root<v1::HostHello>(buf, v1::HostHelloIdentifier(), "HostHello", v1::VerifyHostHelloBuffer));
  if (!valid_name(sv(h->host()))) return bad("HostHello: host is not a valid name");
  if (!str_ok(h->agent_version())) return bad("HostHello: agent_version too long");
  if (h->kpi_interval_ns() != 0) MORPH_TRY(check_interval(h->kpi_interval_ns(), "HostHello"));
  MORPH_TRY(check_amounts(h->capacity(), "HostHello capacity"));
  if (h->vms() != nullptr) {
    if (h->vms()->size() > Limits::kMaxVms) return bad("HostHello: too many VMs");
    for (auto* vm : *h->vms()) {
      if (!valid_uuid(sv(vm->uuid()))) return bad("HostHello: vm uuid is not a UUID");
      if (!str_ok(vm->name()) || !str_ok(vm->sla_class())) return bad("HostHello: vm field too long");
      MORPH_TRY(check_account(vm->owner(), false));
      MORPH_TRY(check_amounts(vm->baseline(), "HostHello baseline"));
      MORPH_TRY(check_amounts(vm->ceiling(), "HostHello ceiling"));
    }
  }
  return h;
}

Result<const v1::Heartbeat*> decode_heartbeat(std::span<const uint8_t> buf) {
  MORPH_TRY_ASSIGN(
      auto h, verified_root<v1::Heartbeat>(buf, v1::HeartbeatIdentifier(), "Heartbeat", v1::VerifyHeartbeatBuffer));
  if (!valid_name(sv(h->sender()))) return bad("Heartbeat: sender is not a valid name");
  return h;
}

Result<const v1::ShiftCommand*> decode_shift_command(std::span<const uint8_t> buf) {
  MORPH_TRY_ASSIGN(auto c, verified_root<v1::ShiftCommand>(buf, v1::ShiftCommandIdentifier(), "ShiftCommand",
                                                           v1::VerifyShiftCommandBuffer));
  if (!valid_uuid(sv(c->vm_uuid()))) return bad("ShiftCommand: vm uuid is not a UUID");
  if (c->adjustments()->size() == 0) return bad("ShiftCommand: no adjustments");
  MORPH_TRY(check_adjustments(c->adjustments(), "ShiftCommand"));
  if (c->lease_ns() > Limits::kMaxLeaseNs) return bad("ShiftCommand: lease longer than 1 h");
  return c;
}

Result<const v1::ShiftResult*> decode_shift_result(std::span<const uint8_t> buf) {
  MORPH_TRY_ASSIGN(auto r, verified_root<v1::ShiftResult>(buf, v1::ShiftResultIdentifier(), "ShiftResult",
                                                          v1::VerifyShiftResultBuffer));
  if (!valid_uuid(sv(r->vm_uuid()))) return bad("ShiftResult: vm uuid is not a UUID");
  MORPH_TRY(check_optional_name(r->host()));
  MORPH_TRY(check_adjustments(r->in_force(), "ShiftResult"));
  MORPH_TRY(check_error(r->error()));
  return r;
}

Result<const v1::LeaseRenew*> decode_lease_renew(std::span<const uint8_t> buf) {
  MORPH_TRY_ASSIGN(
      auto l, verified_root<v1::LeaseRenew>(buf, v1::LeaseRenewIdentifier(), "LeaseRenew", v1::VerifyLeaseRenewBuffer));
  if (!valid_uuid(sv(l->vm_uuid()))) return bad("LeaseRenew: vm uuid is not a UUID");
  if (l->command_ids() && l->command_ids()->size() > 1024) return bad("LeaseRenew: too many command ids");
  if (l->lease_ns() == 0 || l->lease_ns() > Limits::kMaxLeaseNs) return bad("LeaseRenew: lease_ns out of range");
  return l;
}

Result<const v1::MigrateCommand*> decode_migrate_command(std::span<const uint8_t> buf) {
  MORPH_TRY_ASSIGN(auto c, verified_root<v1::MigrateCommand>(buf, v1::MigrateCommandIdentifier(), "MigrateCommand",
                                                             v1::VerifyMigrateCommandBuffer));
  MORPH_TRY(check_vm_uuid(c->vm_uuid(), "MigrateCommand"));
  MORPH_TRY(check_optional_name(c->destination_host()));
  if (c->cancel()) return c;  // names only the VM whose migration stops
  if (!uri_ok(sv(c->destination_uri())))
    return bad("MigrateCommand: destination_uri is not a URI (scheme://..., printable, at most 1024 chars)");
  auto t = sv(c->transport_uri());
  if (!t.empty() && (!uri_ok(t) || !(t.starts_with("tcp://") || t.starts_with("unix://") || t.starts_with("rdma://"))))
    return bad("MigrateCommand: transport_uri is not a tcp://, unix:// or rdma:// URI");
  if (c->max_downtime_ms() > Limits::kMaxDowntimeMs) return bad("MigrateCommand: max_downtime_ms above 60 s");
  if (c->bandwidth_mib_s() > Limits::kMaxMigrationBandwidthMiBs) return bad("MigrateCommand: bandwidth above 1 TiB/s");
  if (c->timeout_ms() > Limits::kMaxMigrationMs) return bad("MigrateCommand: timeout above 24 h");
  return c;
}

Result<const v1::MigrateResult*> decode_migrate_result(std::span<const uint8_t> buf) {
  MORPH_TRY_ASSIGN(auto r, verified_root<v1::MigrateResult>(buf, v1::MigrateResultIdentifier(), "MigrateResult",
                                                            v1::VerifyMigrateResultBuffer));
  MORPH_TRY(check_vm_uuid(r->vm_uuid(), "MigrateResult"));
  for (const flatbuffers::String* host : {r->host(), r->destination_host()}) MORPH_TRY(check_optional_name(host));
  if (!enum_ok(r->state())) return bad("MigrateResult: unknown state");
  MORPH_TRY(check_error(r->error()));
  const bool has_error = r->error() != nullptr && r->error()->code() != v1::ErrorCode::ok;
  const bool ended_badly = r->state() == v1::MigrationState::failed || r->state() == v1::MigrationState::cancelled;
  if (ended_badly != has_error) return bad("MigrateResult: an error goes with failed or cancelled, and only with them");
  if (r->total_ms() > Limits::kMaxMigrationMs || r->downtime_ms() > Limits::kMaxMigrationMs)
    return bad("MigrateResult: a time above 24 h");
  if (r->bytes() > Limits::kMaxGaugeBytes || r->remaining_bytes() > Limits::kMaxGaugeBytes)
    return bad("MigrateResult: absurd byte count");
  return r;
}

Result<const v1::ApiRequest*> decode_api_request(std::span<const uint8_t> buf) {
  MORPH_TRY_ASSIGN(
      auto r, verified_root<v1::ApiRequest>(buf, v1::ApiRequestIdentifier(), "ApiRequest", v1::VerifyApiRequestBuffer));
  using B = v1::ApiRequestBody;
  // The verifier accepts union types it does not know (from newer schemas): refuse them here.
  if (r->body_type() == B::NONE || !enum_ok(r->body_type())) return bad("ApiRequest: unknown request type");
  switch (r->body_type()) {
    case B::AccountCreate: {
      auto* b = r->body_as_AccountCreate();
      MORPH_TRY(check_account(b->account(), true));
      if (!str_ok(b->display_name())) return bad("AccountCreate: display_name too long");
      break;
    }
    case B::AccountGet:
      MORPH_TRY(check_account(r->body_as_AccountGet()->account(), true));
      break;
    case B::AccountDeposit: {
      auto* b = r->body_as_AccountDeposit();
      MORPH_TRY(check_account(b->account(), true));
      if (b->amount_ucredits() <= 0) return bad("AccountDeposit: amount must be positive");
      if (!str_ok(b->reference())) return bad("AccountDeposit: reference too long");
      if (b->idempotency_key() && !valid_name(sv(b->idempotency_key())))
        return bad("AccountDeposit: idempotency_key is not [A-Za-z0-9._-]{1,255}");
      break;
    }
    case B::BidSubmit: {
      auto* b = r->body_as_BidSubmit();
      MORPH_TRY(check_account(b->account(), true));
      if (!valid_uuid(sv(b->vm_uuid()))) return bad("BidSubmit: vm uuid is not a UUID");
      if (!enum_ok(b->resource()) || !enum_ok(b->tier())) return bad("BidSubmit: unknown resource or tier");
      if (b->quantity() <= 0 || b->min_quantity() < 0 || b->min_quantity() > b->quantity())
        return bad("BidSubmit: quantity must be > 0 and 0 <= min_quantity <= quantity");
      if (b->max_price_ucredits() < 0) return bad("BidSubmit: negative max price");
      if (!str_ok(b->client_ref())) return bad("BidSubmit: client_ref too long");
      break;
    }
    case B::BidAmend: {
      auto* b = r->body_as_BidAmend();
      if ((b->quantity() && *b->quantity() <= 0) || (b->min_quantity() && *b->min_quantity() < 0) ||
          (b->max_price_ucredits() && *b->max_price_ucredits() < 0))
        return bad("BidAmend: negative or zero amounts");
      break;
    }
    case B::BidList: {
      auto* b = r->body_as_BidList();
      MORPH_TRY(check_account(b->account(), false));
      MORPH_TRY(check_optional_uuid(b->vm_uuid()));
      break;
    }
    case B::PricesQuery:
      MORPH_TRY(check_optional_name(r->body_as_PricesQuery()->host()));
      break;
    case B::AllocationsQuery: {
      auto* b = r->body_as_AllocationsQuery();
      MORPH_TRY(check_optional_name(b->host()));
      MORPH_TRY(check_optional_uuid(b->vm_uuid()));
      MORPH_TRY(check_account(b->account(), false));
      break;
    }
    case B::VmsQuery:
      MORPH_TRY(check_optional_name(r->body_as_VmsQuery()->host()));
      break;
    case B::KpisQuery: {
      auto* b = r->body_as_KpisQuery();
      MORPH_TRY(check_optional_name(b->host()));
      MORPH_TRY(check_optional_uuid(b->vm_uuid()));
      break;
    }
    case B::LedgerQuery: {
      auto* b = r->body_as_LedgerQuery();
      MORPH_TRY(check_account(b->account(), false));
      if (b->limit() > 10000) return bad("LedgerQuery: limit above 10000");
      break;
    }
    default:
      break;  // AccountList, BidCancel, HostsQuery, SnapshotRequest: nothing to range-check
  }
  return r;
}

Result<const v1::ApiReply*> decode_api_reply(std::span<const uint8_t> buf) {
  MORPH_TRY_ASSIGN(auto r,
                   verified_root<v1::ApiReply>(buf, v1::ApiReplyIdentifier(), "ApiReply", v1::VerifyApiReplyBuffer));
  if (!enum_ok(r->body_type())) return bad("ApiReply: unknown reply type");
  MORPH_TRY(check_error(r->error()));
  if (r->body_type() == v1::ApiReplyBody::NONE && (r->error() == nullptr || r->error()->code() == v1::ErrorCode::ok))
    return bad("ApiReply: neither a body nor an error");
  return r;
}

Result<const v1::MarketEvent*> decode_market_event(std::span<const uint8_t> buf) {
  MORPH_TRY_ASSIGN(auto e, verified_root<v1::MarketEvent>(buf, v1::MarketEventIdentifier(), "MarketEvent",
                                                          v1::VerifyMarketEventBuffer));
  using B = v1::MarketEventBody;
  if (e->body_type() == B::NONE || !enum_ok(e->body_type())) return bad("MarketEvent: unknown event type");
  if (e->body_type() == B::KpiUpdate) {
    auto* r = e->body_as_KpiUpdate()->report();
    if (r == nullptr) return bad("MarketEvent: KpiUpdate without a report");
    if (auto inner = kpi_report_header({r->data(), r->size()}); !inner)  // bad VMs: left to the consumer
      return std::move(inner).error().with_context("MarketEvent");
  } else if (e->body_type() == B::ShiftEvent) {
    auto* s = e->body_as_ShiftEvent();
    MORPH_TRY(check_optional_name(s->host()));
    MORPH_TRY(check_optional_uuid(s->vm_uuid()));
    MORPH_TRY(check_adjustments(s->adjustments(), "ShiftEvent"));
    MORPH_TRY(check_error(s->error()));
  } else if (e->body_type() == B::HostChange) {
    if (!valid_name(sv(e->body_as_HostChange()->host()->host()))) return bad("HostChange: bad host name");
  } else if (e->body_type() == B::VmMigrated) {
    auto* m = e->body_as_VmMigrated();
    MORPH_TRY(check_vm_uuid(m->vm_uuid(), "VmMigrated"));
    if (!valid_name(sv(m->from_host())) || !valid_name(sv(m->to_host())) || sv(m->from_host()) == sv(m->to_host()))
      return bad("VmMigrated: bad hosts");
  }
  return e;
}

void encode_kpi_report(flatbuffers::FlatBufferBuilder& fbb, const KpiReportHeader& h,
                       const std::vector<kpi::VmKpis>& vms) {
  std::vector<flatbuffers::Offset<v1::VmKpi>> offs;
  offs.reserve(vms.size());
  auto hist = [&](const kpi::Log2Hist& buckets) {
    std::array<uint32_t, kpi::kHistBuckets> narrow;
    for (size_t i = 0; i < buckets.size(); ++i)
      narrow[i] = static_cast<uint32_t>(std::min<uint64_t>(buckets[i], UINT32_MAX));
    return fbb.CreateVector(narrow.data(), narrow.size());
  };
  for (const auto& k : vms) {
    auto uuid = fbb.CreateString(k.uuid);
    auto name = fbb.CreateString(k.name);
    auto runq = hist(k.runq_lat_us);
    auto blk = hist(k.blk_lat_us);
    v1::VmKpiBuilder b(fbb);
    b.add_uuid(uuid);
    b.add_name(name);
    b.add_interval_ns(k.interval_ns);
    b.add_cpu_run_ns(k.cpu_run_ns);
    b.add_cpu_wait_ns(k.cpu_wait_ns);
    b.add_cpu_throttled_ns(k.cpu_throttled_ns);
    b.add_runq_lat_us(runq);
    b.add_blk_read_bytes(k.blk_read_bytes);
    b.add_blk_write_bytes(k.blk_write_bytes);
    b.add_blk_read_ops(k.blk_read_ops);
    b.add_blk_write_ops(k.blk_write_ops);
    b.add_blk_lat_us(blk);
    b.add_net_rx_bytes(k.net_rx_bytes);
    b.add_net_tx_bytes(k.net_tx_bytes);
    b.add_net_rx_pkts(k.net_rx_pkts);
    b.add_net_tx_pkts(k.net_tx_pkts);
    b.add_net_rx_drops(k.net_rx_drops);
    b.add_net_tx_drops(k.net_tx_drops);
    b.add_mem_major_faults(k.mem_major_faults);
    b.add_mem_minor_faults(k.mem_minor_faults);
    b.add_mem_rss_bytes(k.mem_rss_bytes);
    b.add_mem_balloon_kib(k.mem_balloon_kib);
    b.add_net_rx_policed_bytes(k.net_rx_policed_bytes);
    b.add_net_tx_policed_bytes(k.net_tx_policed_bytes);
    offs.push_back(b.Finish());
  }
  auto host = fbb.CreateString(h.host);
  auto vec = fbb.CreateVector(offs);
  auto root = v1::CreateKpiReport(fbb, host, h.seq, h.incarnation, h.interval_ns, h.timestamp_ns, vec);
  fbb.Finish(root, v1::KpiReportIdentifier());
}

kpi::VmKpis to_vm_kpis(const v1::VmKpi& k) {
  kpi::VmKpis o;
  o.uuid = std::string(sv(k.uuid()));
  apply_vm_kpis(o, k);
  return o;
}

void apply_vm_kpis(kpi::VmKpis& o, const v1::VmKpi& k) {
  if (o.name != sv(k.name())) o.name = std::string(sv(k.name()));
  o.interval_ns = k.interval_ns();
  o.cpu_run_ns = k.cpu_run_ns();
  o.cpu_wait_ns = k.cpu_wait_ns();
  o.cpu_throttled_ns = k.cpu_throttled_ns();
  if (auto* h = k.runq_lat_us(); h && h->size() == o.runq_lat_us.size())
    std::copy(h->begin(), h->end(), o.runq_lat_us.begin());
  o.blk_read_bytes = k.blk_read_bytes();
  o.blk_write_bytes = k.blk_write_bytes();
  o.blk_read_ops = k.blk_read_ops();
  o.blk_write_ops = k.blk_write_ops();
  if (auto* h = k.blk_lat_us(); h && h->size() == o.blk_lat_us.size())
    std::copy(h->begin(), h->end(), o.blk_lat_us.begin());
  o.net_rx_bytes = k.net_rx_bytes();
  o.net_tx_bytes = k.net_tx_bytes();
  o.net_rx_pkts = k.net_rx_pkts();
  o.net_tx_pkts = k.net_tx_pkts();
  o.net_rx_drops = k.net_rx_drops();
  o.net_tx_drops = k.net_tx_drops();
  o.mem_major_faults = k.mem_major_faults();
  o.mem_minor_faults = k.mem_minor_faults();
  o.mem_rss_bytes = k.mem_rss_bytes();
  o.mem_balloon_kib = k.mem_balloon_kib();
  o.net_rx_policed_bytes = k.net_rx_policed_bytes();
  o.net_tx_policed_bytes = k.net_tx_policed_bytes();
}

}  // namespace morph::msg
