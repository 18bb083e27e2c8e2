// libFuzzer target for one wire decoder, chosen at compile time (MORPH_FUZZ_DECODER): the decoder must never
// crash, hang or read out of bounds, and whatever it accepts must be fully readable (the harness walks the
// accepted message like the controller or agent would).
#include <cstddef>
#include <cstdint>

#include "common/msg/shift.h"
#include "common/msg/wire.h"

using namespace morph;

namespace {
volatile uint64_t sink;

void walk(const v1::KpiReport* r) {
  if (r->vms())
    for (auto* k : *r->vms()) sink += msg::to_vm_kpis(*k).cpu_run_ns;
}
void walk(const v1::HostHello* h) {
  if (h->vms())
    for (auto* vm : *h->vms()) sink += vm->uuid()->size() + (vm->baseline() ? vm->baseline()->size() : 0);
}
void walk(const v1::Heartbeat* h) { sink += h->sender()->size(); }
void walk(const v1::ShiftCommand* c) { sink += msg::to_shift_order(*c).adjustments.size(); }
void walk(const v1::ShiftResult* r) { sink += msg::to_shift_outcome(*r).in_force.size(); }
void walk(const v1::LeaseRenew* l) { sink += msg::to_lease_renewal(*l).command_ids.size(); }
void walk(const v1::ApiRequest* r) { sink += static_cast<uint64_t>(r->body_type()) + r->request_id(); }
void walk(const v1::ApiReply* r) { sink += static_cast<uint64_t>(r->body_type()); }
void walk(const v1::MarketEvent* e) {
  if (auto* k = e->body_as_KpiUpdate()) walk(k->report_nested_root());
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = msg::MORPH_FUZZ_DECODER({data, size});
  if (r) walk(*r);
  return 0;
}
