#pragma once
// Decoding of every Morph wire message. Each decoder checks, in order: size bounds, the file_identifier,
// the generated FlatBuffers Verifier (so nothing is read from an unverified buffer), then field values
// (ranges, lengths, names usable in topics). On success it returns the verified root, valid as long as
// the caller's buffer lives. Any failure is Errc::protocol with a message saying what was wrong; decoders
// never crash on any input (fuzzed in tests/fuzz).
//
// Also: topics and control-channel frame kinds, and KpiReport encoding from the agent's VmKpis.

#include <flatbuffers/flatbuffers.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "api_reply_generated.h"
#include "api_request_generated.h"
#include "common/error.h"
#include "common/kpi/vm_kpis.h"
#include "heartbeat_generated.h"
#include "host_hello_generated.h"
#include "kpi_report_generated.h"
#include "lease_renew_generated.h"
#include "market_event_generated.h"
#include "migrate_command_generated.h"
#include "migrate_result_generated.h"
#include "shift_command_generated.h"
#include "shift_result_generated.h"

namespace morph::msg {

// Frame 0 ("topic") on each channel. Control and api frames name the message kind.
namespace topic {
inline constexpr std::string_view kKpiPrefix = "kpi.";
inline constexpr std::string_view kHello = "hello";
inline constexpr std::string_view kHeartbeat = "heartbeat";
inline constexpr std::string_view kShiftCommand = "shift";
inline constexpr std::string_view kShiftResult = "shift_result";
inline constexpr std::string_view kLeaseRenew = "lease";
inline constexpr std::string_view kMigrateCommand = "migrate";
inline constexpr std::string_view kMigrateResult = "migrate_result";
inline constexpr std::string_view kApiRequest = "api.req";
inline constexpr std::string_view kApiReply = "api.rep";
}  // namespace topic

struct Limits {
  static constexpr size_t kMaxBuffer = 4u << 20;
  static constexpr uint64_t kMinIntervalNs = 100'000'000ULL;     // 100 ms
  static constexpr uint64_t kMaxIntervalNs = 60'000'000'000ULL;  // 60 s
  static constexpr size_t kMaxVms = 4096;
  static constexpr size_t kMaxName = 255;
  static constexpr uint64_t kMaxCpus = 4096;               // cpu ns per interval ≤ interval × this
  static constexpr uint64_t kMaxBytesPerSec = 1ULL << 40;  // 1 TiB/s: beyond any NIC or disk
  static constexpr uint64_t kMaxOpsPerSec = 1ULL << 32;
  static constexpr uint64_t kMaxGaugeBytes = 1ULL << 52;  // 4 PiB
  static constexpr size_t kMaxAdjustments = 16;
  static constexpr uint64_t kMaxLeaseNs = 3600'000'000'000ULL;      // 1 h
  static constexpr size_t kMaxUri = 1024;                           // a libvirt or migration transport URI
  static constexpr uint32_t kMaxDowntimeMs = 60'000;                // a pause longer than this is no live migration
  static constexpr uint32_t kMaxMigrationBandwidthMiBs = 1u << 20;  // 1 TiB/s
  static constexpr uint64_t kMaxMigrationMs = 86'400'000ULL;        // 24 h
};

// A name that can travel in a topic: 1..255 chars of [A-Za-z0-9._-].
bool valid_name(std::string_view s);
// A libvirt-style UUID or VM identifier: 1..64 chars of [A-Za-z0-9-].
bool valid_uuid(std::string_view s);
// The word for a bid tier that the api's events and morphctl print: sla, improve, speculative.
const char* tier_word(v1::BidTier tier);

// Strict: any bad VM entry makes the whole report an error (tests, tools, the fuzzers' baseline).
Result<const v1::KpiReport*> decode_kpi_report(std::span<const uint8_t> buf);

// Lenient KpiReport decoding, for ingest and every consumer of reports: header-level faults (size,
// file_identifier, verification, host name, interval, more than kMaxVms VMs) still reject the whole
// report; each VM entry that fails its range checks is listed in `dropped` and must be left out (use
// rebuild_kpi_report). One bad VM must not lose the other VMs' KPIs for that interval.
struct DroppedVm {
  uint32_t index = 0;  // position in report->vms()
  // "KpiReport host=<host> vm=<uuid>: <field>=<value>: <why>"; a uuid that is none is shown as
  // `vm #<index> uuid="<text>"` when printable, else `vm #<index> (uuid not printable)`.
  std::string reason;
};
struct LenientKpiReport {
  const v1::KpiReport* report = nullptr;  // the verified root as received (still holding the dropped VMs)
  std::vector<DroppedVm> dropped;         // empty on the good path: nothing allocated, nothing copied
};
Result<LenientKpiReport> decode_kpi_report_lenient(std::span<const uint8_t> buf);
// Writes into fbb (cleared first) a KpiReport with r's header fields and only the VMs not in `dropped`
// (field by field: every VmKpi field of the schema; fields from a newer schema are not carried).
void rebuild_kpi_report(flatbuffers::FlatBufferBuilder& fbb, const v1::KpiReport& r,
                        const std::vector<DroppedVm>& dropped);
// One verified VM entry copied into another builder, every field of the schema (as rebuild_kpi_report).
flatbuffers::Offset<v1::VmKpi> copy_vm_kpi(flatbuffers::FlatBufferBuilder& fbb, const v1::VmKpi& k);
Result<const v1::HostHello*> decode_host_hello(std::span<const uint8_t> buf);
Result<const v1::Heartbeat*> decode_heartbeat(std::span<const uint8_t> buf);
Result<const v1::ShiftCommand*> decode_shift_command(std::span<const uint8_t> buf);
Result<const v1::ShiftResult*> decode_shift_result(std::span<const uint8_t> buf);
Result<const v1::LeaseRenew*> decode_lease_renew(std::span<const uint8_t> buf);
Result<const v1::MigrateCommand*> decode_migrate_command(std::span<const uint8_t> buf);
Result<const v1::MigrateResult*> decode_migrate_result(std::span<const uint8_t> buf);
Result<const v1::ApiRequest*> decode_api_request(std::span<const uint8_t> buf);
Result<const v1::ApiReply*> decode_api_reply(std::span<const uint8_t> buf);
// A KpiUpdate's nested KpiReport is checked at the header level only (as decode_kpi_report_lenient):
// consumers decode it with decode_kpi_report_lenient and leave out the VMs it drops.
Result<const v1::MarketEvent*> decode_market_event(std::span<const uint8_t> buf);

// KpiReport ↔ the agent data model.
struct KpiReportHeader {
  std::string host;
  uint64_t seq = 0;
  uint64_t incarnation = 0;
  uint64_t interval_ns = 0;
  uint64_t timestamp_ns = 0;
};
void encode_kpi_report(flatbuffers::FlatBufferBuilder& fbb, const KpiReportHeader& h,
                       const std::vector<kpi::VmKpis>& vms);
kpi::VmKpis to_vm_kpis(const v1::VmKpi& k);
// The same, into an existing record (keeps its uuid; reuses its name's storage): ingest's hot path.
void apply_vm_kpis(kpi::VmKpis& o, const v1::VmKpi& k);

inline std::span<const uint8_t> span_of(const flatbuffers::FlatBufferBuilder& fbb) {
  return {fbb.GetBufferPointer(), fbb.GetSize()};
}
inline std::string_view sv(const flatbuffers::String* s) {
  return s ? s->string_view() : std::string_view();
}

}  // namespace morph::msg
