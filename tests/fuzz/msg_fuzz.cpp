// libFuzzer target for one wire decoder, chosen at compile time (MORPH_FUZZ_DECODER): the decoder must never
// crash, hang or read out of bounds, and whatever it accepts must be fully readable (the harness walks the
// accepted message like the controller or agent would). The KpiReport target also runs the lenient decoder
// and the rebuild of the good VMs on every input, against the strict decoder.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <type_traits>
#include <vector>

#include "common/msg/migrate.h"
#include "common/msg/shift.h"
#include "common/msg/wire.h"

using namespace morph;

namespace {
volatile uint64_t sink;

void walk(const v1::KpiReport* r) {
  if (r->vms())
    for (auto* k : *r->vms()) sink += msg::to_vm_kpis(*k).cpu_run_ns;
}
// Lenient KpiReport decoding, as ingest and the dashboard do it: whatever it accepts, the report rebuilt
// without the dropped VMs must pass the strict decoder with exactly the other VMs. `strict_ok` (when known)
// must agree: the strict decoder accepts exactly when the lenient one drops nothing.
void check_lenient(std::span<const uint8_t> buf, int strict_ok) {
  auto l = msg::decode_kpi_report_lenient(buf);
  if (strict_ok >= 0 && bool(l && l->dropped.empty()) != bool(strict_ok)) std::abort();
  if (!l) return;
  flatbuffers::FlatBufferBuilder fbb;
  msg::rebuild_kpi_report(fbb, *l->report, l->dropped);
  auto good = msg::decode_kpi_report(msg::span_of(fbb));
  if (!good) std::abort();
  const uint32_t n = l->report->vms() ? l->report->vms()->size() : 0;
  if ((*good)->vms()->size() + l->dropped.size() != n) std::abort();
  walk(*good);
}
void walk(const v1::HostHello* h) {
  if (h->vms())
    for (auto* vm : *h->vms()) sink += vm->uuid()->size() + (vm->baseline() ? vm->baseline()->size() : 0);
}
void walk(const v1::Heartbeat* h) {
  sink += h->sender()->size();
}
void walk(const v1::ShiftCommand* c) {
  sink += msg::to_shift_order(*c).adjustments.size();
}
void walk(const v1::ShiftResult* r) {
  sink += msg::to_shift_outcome(*r).in_force.size();
}
void walk(const v1::LeaseRenew* l) {
  sink += msg::to_lease_renewal(*l).command_ids.size();
}
void walk(const v1::MigrateCommand* c) {
  sink += msg::to_migrate_order(*c).destination_uri.size();
}
void walk(const v1::MigrateResult* r) {
  sink += msg::to_migrate_outcome(*r).bytes;
}
void walk(const v1::ApiRequest* r) {
  sink += static_cast<uint64_t>(r->body_type()) + r->request_id();
}
void walk(const v1::ApiReply* r) {
  sink += static_cast<uint64_t>(r->body_type());
}
void walk(const v1::MarketEvent* e) {
  // The nested report is header-checked only: consumers decode it leniently, from an aligned copy.
  if (auto* k = e->body_as_KpiUpdate()) {
    std::vector<uint8_t> copy(k->report()->begin(), k->report()->end());
    if (!msg::decode_kpi_report_lenient(copy)) std::abort();  // decode_market_event checked its header
    check_lenient(copy, -1);
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = msg::MORPH_FUZZ_DECODER({data, size});
  if (r) walk(*r);
  if constexpr (std::is_same_v<decltype(r), Result<const v1::KpiReport*>>) check_lenient({data, size}, r ? 1 : 0);
  return 0;
}
