#include "controller/cli/records.h"

#include "common/kpi/derived.h"

namespace morph::cli {

namespace {

std::string s(const flatbuffers::String* p) {
  return p ? p->str() : std::string();
}

json adjustments_json(const flatbuffers::Vector<flatbuffers::Offset<v1::Adjustment>>* v) {
  json out = json::array();
  if (v)
    for (const auto* a : *v) out.push_back({{"resource", v1::EnumNameResource(a->resource())}, {"value", a->value()}});
  return out;
}

// A record about one book (a price, a quote): its host, resource and tier first, then `fields`.
template <class Record>
json book_json(const Record& r, const json& fields) {
  json j = {{"host", s(r.host())}, {"resource", v1::EnumNameResource(r.resource())}, {"tier", tier_word(r.tier())}};
  for (auto& [k, v] : fields.items()) j[k] = v;
  return j;
}

}  // namespace

json account_json(const v1::AccountInfo& a) {
  return {{"account", s(a.account())},
          {"display_name", s(a.display_name())},
          {"balance_ucredits", a.balance_ucredits()},
          {"reserved_ucredits", a.reserved_ucredits()}};
}

json bid_json(const v1::BidInfo& b) {
  return {{"bid_id", b.bid_id()},
          {"account", s(b.account())},
          {"vm", s(b.vm_uuid())},
          {"host", s(b.host())},
          {"resource", v1::EnumNameResource(b.resource())},
          {"tier", tier_word(b.tier())},
          {"quantity", b.quantity()},
          {"min_quantity", b.min_quantity()},
          {"max_price_ucredits", b.max_price_ucredits()},
          {"state", v1::EnumNameBidState(b.state())},
          {"filled", b.filled_quantity()},
          {"rescue", b.rescue()},
          {"predictive", b.predictive()},
          {"expires_ns", b.expires_ns()}};
}

json price_json(const v1::PriceInfo& p) {
  return book_json(p, {{"price_ucredits", p.price_ucredits()},
                       {"supply", p.supply()},
                       {"allocated", p.allocated()},
                       {"tick", p.tick()}});
}

json allocation_json(const v1::AllocationInfo& a) {
  return {{"host", s(a.host())},
          {"vm", s(a.vm_uuid())},
          {"account", s(a.account())},
          {"bid_id", a.bid_id()},
          {"resource", v1::EnumNameResource(a.resource())},
          {"quantity", a.quantity()},
          {"price_ucredits", a.price_ucredits()}};
}

json ledger_entry_json(const v1::LedgerEntry& e) {
  return {{"entry_id", e.entry_id()},
          {"tick", e.tick()},
          {"account", s(e.account())},
          {"kind", s(e.kind())},
          {"amount_ucredits", e.amount_ucredits()},
          {"bid_id", e.bid_id()},
          {"reason", s(e.reason())},
          {"timestamp_ns", e.timestamp_ns()}};
}

json shift_json(const v1::ShiftRecord& x) {
  return {{"host", s(x.host())},
          {"command_id", x.command_id()},
          {"vm", s(x.vm_uuid())},
          {"phase", s(x.phase())},
          {"settings", adjustments_json(x.adjustments())},
          {"error", x.error() ? s(x.error()->message()) : ""}};
}

json amounts_json(const flatbuffers::Vector<flatbuffers::Offset<v1::ResourceAmount>>* amounts) {
  json out = json::object();
  if (amounts)
    for (const auto* c : *amounts) out[v1::EnumNameResource(c->resource())] = c->amount();
  return out;
}

json host_json(const v1::HostStatus& h) {
  return {{"host", s(h.host())},
          {"up", h.up()},
          {"vms", h.vm_count()},
          {"kpi_seq", h.kpi_seq()},
          {"kpi_gaps", h.kpi_gaps()},
          {"bad_messages", h.bad_messages()},
          {"capacity", amounts_json(h.capacity())}};
}

json vm_json(const v1::VmStatus& v) {
  const v1::VmBaselineInfo* vm = v.vm();
  return {{"host", s(v.host())},
          {"vm", vm ? s(vm->uuid()) : ""},
          {"name", vm ? s(vm->name()) : ""},
          {"owner", s(v.owner())},  // the owner in force (an admin's override, else the metadata's)
          {"metadata_owner", vm ? s(vm->owner()) : ""},
          {"running", vm && vm->running()},
          {"baseline", amounts_json(vm ? vm->baseline() : nullptr)}};
}

json kpi_json(const std::string& host, const v1::VmKpi& k) {
  return {{"host", host},
          {"vm", s(k.uuid())},
          {"name", s(k.name())},
          {"cpu_run_ms", k.cpu_run_ns() / 1'000'000},
          {"cpu_wait_ms", k.cpu_wait_ns() / 1'000'000},
          {"runq_wait_permille", kpi::runq_wait_permille(k.cpu_run_ns(), k.cpu_wait_ns())},
          {"throttled_ms", k.cpu_throttled_ns() / 1'000'000},
          {"net_drops", kpi::net_drops(k.net_rx_drops(), k.net_tx_drops())},
          {"rss_mib", k.mem_rss_bytes() >> 20}};
}

json policy_json(const v1::PolicyReply& r) {
  const v1::VmPolicy* p = &expect(r.policy());
  json j = {{"vm", s(p->vm_uuid())},
            {"account", s(p->account())},
            {"rescue", p->rescue()},
            {"runq_wait_permille", p->runq_wait_permille()},
            {"blk_p99_us", p->blk_p99_us()},
            {"drops_per_s", p->drops_per_s()},
            {"max_price_ucredits", p->max_price_ucredits()},
            {"budget_ucredits_per_hour", p->budget_ucredits_per_hour()},
            {"rescue_bid_id", p->rescue_bid_id()}};
  j["breach_intervals"] = r.breach_intervals();
  j["recover_intervals"] = r.recover_intervals();
  j["cpu_step_mc"] = r.cpu_step();
  j["disk_iops_step"] = r.disk_iops_step();
  j["net_kbps_step"] = r.net_kbps_step();
  j["predictive"] = r.predictive();
  j["predictive_horizon_s"] = r.predictive_horizon_s();
  j["predictive_quantile"] = r.predictive_quantile_permille() / 1000.0;
  j["predictive_bid_id"] = r.predictive_bid_id();
  j["predictive_status"] = s(r.predictive_status());
  return j;
}

json quote_json(const v1::QuoteReply& q) {
  return book_json(q, {{"quantity", q.quantity()},
                       {"available", q.available()},
                       {"price_ucredits", q.price_ucredits()},
                       {"cost_per_tick_ucredits", q.cost_per_tick_ucredits()},
                       {"tick_ms", q.tick_ms()}});
}

json quote_forecast_json(const v1::QuoteReply& q) {
  const v1::ForecastAdvice* f = q.forecast();
  if (!f) return nullptr;
  json j = {{"ready", f->ready()}, {"note", s(f->note())}, {"horizon_s", f->horizon_s()}};
  for (auto [key, value] : {std::pair{"baseline_mc", f->baseline_mc()},
                            {"p50_peak_mc", f->p50_peak_mc()},
                            {"p90_peak_mc", f->p90_peak_mc()},
                            {"increment_mc", f->increment_mc()},
                            {"recent_price_ucredits", f->recent_price_ucredits()},
                            {"cost_per_hour_ucredits", f->cost_per_hour_ucredits()}})
    j[key] = value;
  return j;
}

json quote_history_json(const v1::QuoteReply& q) {
  json hist = json::array();
  if (q.history())
    for (const auto* p : *q.history()) hist.push_back({{"tick", p->tick()}, {"price_ucredits", p->price_ucredits()}});
  return hist;
}

}  // namespace morph::cli
