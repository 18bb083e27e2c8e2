#include "controller/dashboard/fleet_view.h"

#include <spdlog/spdlog.h>

#include "common/kpi/derived.h"
#include "common/msg/api_client.h"
#include "common/msg/wire.h"
#include "common/resource.h"

namespace morph::fleet {

using namespace std::chrono_literals;

const char* tier_name(uint8_t t) {
  return v1::EnumNameBidTier(static_cast<v1::BidTier>(t));
}

const VmRecord* FleetState::vm(const std::string& uuid) const {
  auto it = vms.find(uuid);
  return it == vms.end() ? nullptr : &it->second;
}

std::string FleetState::vm_name(const std::string& uuid) const {
  auto* v = vm(uuid);
  return v && !v->name.empty() ? v->name : uuid;
}

FleetViewOptions ipc_options(const std::string& ipc_dir) {
  FleetViewOptions o;
  o.api = "ipc://" + ipc_dir + "/api";
  o.events = "ipc://" + ipc_dir + "/events";
  return o;
}

Result<FleetViewOptions> resolve(const ControllerAddress& a) {
  FleetViewOptions o;
  if (!a.ipc_dir.empty())
    o = ipc_options(a.ipc_dir);
  else
    o.api = "tcp://127.0.0.1:7712", o.events = "tcp://127.0.0.1:7713";
  if (!a.api.empty()) o.api = a.api;
  if (!a.events.empty()) o.events = a.events;
  if (!a.key_file.empty() || !a.server_key_file.empty()) {
    if (a.key_file.empty() || a.server_key_file.empty())
      return Error(Errc::invalid_argument,
                   "CURVE needs both --key (this client's NAME.key) and --server-key (controller.pub)");
    MORPH_TRY_ASSIGN(o.security, msg::load_client_security({a.key_file, a.server_key_file, "", ""}));
  }
  return o;
}

namespace {

template <class T>
void push_bounded(std::deque<T>& d, T v, size_t cap) {
  d.push_back(std::move(v));
  while (d.size() > cap) d.pop_front();
}

std::map<std::string, int64_t> amounts(const flatbuffers::Vector<flatbuffers::Offset<v1::ResourceAmount>>* v) {
  std::map<std::string, int64_t> m;
  if (v)
    for (auto* a : *v) m[wire_resource_name(a->resource())] = a->amount();
  return m;
}

void apply_host(FleetState& s, const v1::HostStatus& h) {
  auto& r = s.hosts[std::string(msg::sv(h.host()))];
  r.host = msg::sv(h.host());
  r.up = h.up();
  r.vm_count = h.vm_count();
  r.last_seen_ns = h.last_seen_ns();
  if (h.capacity()) r.capacity = amounts(h.capacity());
}

void apply_vm(FleetState& s, const v1::VmStatus& v) {
  if (!v.vm()) return;
  auto& r = s.vms[std::string(msg::sv(v.vm()->uuid()))];
  r.uuid = msg::sv(v.vm()->uuid());
  r.described = true;
  if (v.vm()->name()) r.name = msg::sv(v.vm()->name());
  r.host = msg::sv(v.host());
  r.owner = msg::sv(v.vm()->owner());
  r.sla = msg::sv(v.vm()->sla_class());
  r.baseline = amounts(v.vm()->baseline());
}

void apply_report(FleetState& s, const v1::KpiReport& rep, const FleetViewOptions& o) {
  std::string host(msg::sv(rep.host()));
  if (!rep.vms()) return;
  for (auto* k : *rep.vms()) {
    auto& r = s.vms[std::string(msg::sv(k->uuid()))];
    if (!r.described) s.vm_set_changed = true;
    r.uuid = msg::sv(k->uuid());
    if (r.name.empty()) r.name = msg::sv(k->name());
    if (r.host.empty()) r.host = host;
    uint64_t t = rep.timestamp_ns();
    if (!r.kpis.empty() && r.kpis.back().t_ns >= t) continue;  // already have it (snapshot + event overlap)
    const uint64_t iv = k->interval_ns() ? k->interval_ns() : rep.interval_ns();
    if (iv == 0) continue;
    KpiSample x;
    x.t_ns = t;
    x.cpu_pct = 100.0 * kpi::cpu_share(k->cpu_run_ns(), iv);
    x.runq_wait_pct = 100.0 * kpi::runq_wait_share(k->cpu_run_ns(), k->cpu_wait_ns());
    x.disk_read_Bps = kpi::per_second(k->blk_read_bytes(), iv);
    x.disk_write_Bps = kpi::per_second(k->blk_write_bytes(), iv);
    x.net_rx_Bps = kpi::per_second(k->net_rx_bytes(), iv);
    x.net_tx_Bps = kpi::per_second(k->net_tx_bytes(), iv);
    push_bounded(r.kpis, x, o.kpi_history);
  }
}

void apply_price(FleetState& s, const v1::PriceInfo& p, uint64_t t, const FleetViewOptions& o) {
  std::string key = std::string(msg::sv(p.host())) + "/" + wire_resource_name(p.resource()) + "/" +
                    tier_name(static_cast<uint8_t>(p.tier()));
  auto& d = s.prices[key];
  if (!d.empty() && p.tick() != 0 && d.back().tick == p.tick()) return;  // same tick seen twice
  push_bounded(d, PricePoint{t, p.price_ucredits(), p.supply(), p.allocated(), p.tick()}, o.price_history);
}

Allocation to_allocation(const v1::AllocationInfo& a) {
  return Allocation{std::string(msg::sv(a.host())),
                    std::string(msg::sv(a.vm_uuid())),
                    std::string(msg::sv(a.account())),
                    a.bid_id(),
                    wire_resource_name(a.resource()),
                    a.quantity(),
                    a.price_ucredits(),
                    a.since_ns()};
}

// Records each VM's total allocation per resource after a change.
void record_allocated(FleetState& s, uint64_t t, const FleetViewOptions& o) {
  std::map<std::pair<std::string, std::string>, int64_t> totals;
  for (auto& [id, a] : s.allocations) totals[{a.vm_uuid, a.resource}] += a.quantity;
  for (auto& [uuid, v] : s.vms) {
    for (auto& [res, hist] : v.allocated)
      if (!totals.count({uuid, res}) && !hist.empty() && hist.back().quantity != 0)
        push_bounded(hist, AllocationPoint{t, 0}, o.kpi_history);
  }
  for (auto& [key, q] : totals) {
    auto& hist = s.vms[key.first].allocated[key.second];
    if (s.vms[key.first].uuid.empty()) s.vms[key.first].uuid = key.first;
    if (hist.empty() || hist.back().quantity != q) push_bounded(hist, AllocationPoint{t, q}, o.kpi_history);
  }
}

std::string describe_adjustments(const flatbuffers::Vector<flatbuffers::Offset<v1::Adjustment>>* v) {
  std::string out;
  if (!v) return out;
  for (auto* a : *v) {
    if (!out.empty()) out += ", ";
    out += wire_resource_name(a->resource());
    out += "=" + std::to_string(a->value());
    if (a->target() && a->target()->size()) out += "@" + std::string(msg::sv(a->target()));
  }
  return out;
}

}  // namespace

bool apply_event(FleetState& s, const v1::MarketEvent& e, const FleetViewOptions& o) {
  bool resync = false;
  if (e.incarnation() != s.incarnation) {
    resync = s.incarnation != 0;
    s.incarnation = e.incarnation();
  } else if (s.events_seq != 0 && e.seq() != s.events_seq + 1 && e.seq() > s.events_seq) {
    ++s.gaps;
    resync = true;
  }
  if (e.seq() > s.events_seq || resync) s.events_seq = e.seq();
  ++s.events_seen;
  uint64_t t = e.timestamp_ns() ? e.timestamp_ns() : msg::now_ns();
  s.updated_ns = t;
  switch (e.body_type()) {
    case v1::MarketEventBody::KpiUpdate: {
      auto* ku = e.body_as_KpiUpdate();
      if (!ku->report()) break;
      // The nested buffer is verified on its own, from an aligned copy.
      std::vector<uint8_t> copy(ku->report()->begin(), ku->report()->end());
      // Lenient, as at ingest: a bad VM entry is left out, the other VMs of the report are shown.
      if (auto rep = msg::decode_kpi_report_lenient(copy)) {
        if (rep->dropped.empty()) {
          apply_report(s, *rep->report, o);
        } else {
          flatbuffers::FlatBufferBuilder good;
          msg::rebuild_kpi_report(good, *rep->report, rep->dropped);
          apply_report(s, *flatbuffers::GetRoot<v1::KpiReport>(good.GetBufferPointer()), o);
        }
      }
      break;
    }
    case v1::MarketEventBody::PriceUpdate:
      if (auto* p = e.body_as_PriceUpdate()->prices())
        for (auto* x : *p) apply_price(s, *x, t, o);
      break;
    case v1::MarketEventBody::AllocationChange: {
      auto* a = e.body_as_AllocationChange();
      if (a->granted() && a->allocation()->quantity() > 0)
        s.allocations[a->allocation()->bid_id()] = to_allocation(*a->allocation());
      else
        s.allocations.erase(a->allocation()->bid_id());
      record_allocated(s, t, o);
      break;
    }
    case v1::MarketEventBody::BidOutcome: {
      auto* b = e.body_as_BidOutcome();
      auto* bi = b->bid();
      push_bounded(
          s.bids,
          BidRecord{t, bi->bid_id(), std::string(msg::sv(bi->account())), std::string(msg::sv(bi->vm_uuid())),
                    wire_resource_name(bi->resource()), std::string(msg::sv(b->outcome())),
                    std::string(msg::sv(b->reason())), bi->quantity(), bi->filled_quantity(), bi->max_price_ucredits()},
          o.recent);
      break;
    }
    case v1::MarketEventBody::ShiftEvent: {
      auto* x = e.body_as_ShiftEvent();
      std::string err =
          x->error() && x->error()->code() != v1::ErrorCode::ok ? std::string(msg::sv(x->error()->message())) : "";
      push_bounded(
          s.shifts,
          ShiftRecord{t, std::string(msg::sv(x->host())), std::string(msg::sv(x->vm_uuid())),
                      std::string(msg::sv(x->phase())), describe_adjustments(x->adjustments()), err, x->command_id()},
          o.recent);
      break;
    }
    case v1::MarketEventBody::HostChange:
      apply_host(s, *e.body_as_HostChange()->host());
      break;
    default:
      break;
  }
  return resync;
}

void apply_snapshot(FleetState& s, const v1::SnapshotReply& r, const FleetViewOptions& o) {
  ++s.snapshots;
  s.incarnation = r.controller_incarnation();
  s.events_seq = r.events_seq();
  uint64_t t = msg::now_ns();
  s.updated_ns = t;
  if (r.hosts()) {
    s.hosts.clear();
    for (auto* h : *r.hosts()) apply_host(s, *h);
  }
  if (r.vms())
    for (auto* v : *r.vms()) apply_vm(s, *v);
  if (r.kpis())
    for (auto* k : *r.kpis()) apply_report(s, *k, o);
  s.vm_set_changed = false;
  if (r.prices())
    for (auto* p : *r.prices()) apply_price(s, *p, t, o);
  s.allocations.clear();
  if (r.allocations())
    for (auto* a : *r.allocations())
      if (a->quantity() > 0) s.allocations[a->bid_id()] = to_allocation(*a);
  record_allocated(s, t, o);
}

FleetView::FleetView(FleetViewOptions opts) : opts_(std::move(opts)) {}

Result<std::unique_ptr<FleetView>> FleetView::start(const FleetViewOptions& opts) {
  if (opts.api.empty() || opts.events.empty())
    return Error(Errc::invalid_argument, "fleet view: needs both the api and the events endpoint");
  std::unique_ptr<FleetView> v(new FleetView(opts));
  v->thread_ = std::thread([p = v.get()] { p->run(); });
  return v;
}

FleetView::~FleetView() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

FleetState FleetView::state() const {
  std::lock_guard lock(mu_);
  return state_;
}

void FleetView::run() {
  zmq::context_t ctx(1);
  auto sub = msg::make_socket(ctx, zmq::socket_type::sub);
  sub.set(zmq::sockopt::subscribe, "");
  if (auto st = msg::connect_endpoint(sub, opts_.events, opts_.security); !st) {
    std::lock_guard lock(mu_);
    state_.last_error = st.error().what();
    spdlog::error("fleet view: events {}: {}", opts_.events, st.error().what());
    return;
  }
  msg::ApiClient api(ctx, opts_.api, opts_.security);
  bool api_ok = static_cast<bool>(api.connect());
  bool need_snapshot = true, resync_now = true;
  auto last_try = std::chrono::steady_clock::now() - 10s;
  std::vector<zmq::message_t> parts;
  while (!stop_) {
    // A resync (new incarnation, gap) is retried every second; a VM set that changed under us every 2 s,
    // since a VM the controller never describes would otherwise cost a snapshot per second forever.
    auto since = std::chrono::steady_clock::now() - last_try;
    if (need_snapshot && api_ok && (since > 2s || (resync_now && since > 1s))) {
      last_try = std::chrono::steady_clock::now();
      auto rep = api.call(
          v1::ApiRequestBody::SnapshotRequest, [](auto& f) { return v1::CreateSnapshotRequest(f).Union(); }, 1000ms);
      std::string err;
      if (!rep) {
        err = rep.error().what();
      } else if (auto d = msg::decode_api_reply(msg::bytes_of(*rep)); !d) {
        err = d.error().what();
      } else if ((*d)->error() && (*d)->error()->code() != v1::ErrorCode::ok) {
        err = std::string(msg::sv((*d)->error()->message()));
      } else if (auto* s = (*d)->body_as_SnapshotReply()) {
        std::lock_guard lock(mu_);
        apply_snapshot(state_, *s, opts_);
        state_.last_error.clear();
        need_snapshot = resync_now = false;
      }
      if (!err.empty()) {
        std::lock_guard lock(mu_);
        state_.last_error = "snapshot: " + err;
        spdlog::debug("fleet view: snapshot failed: {}", err);
      }
    }
    zmq::pollitem_t items[] = {{sub.handle(), 0, ZMQ_POLLIN, 0}};
    zmq::poll(items, 1, std::chrono::milliseconds(200));
    while (msg::recv_parts(sub, parts)) {
      if (parts.size() != 2) continue;
      auto e = msg::decode_market_event(msg::bytes_of(parts[1]));
      if (!e) {
        spdlog::debug("fleet view: dropped an event: {}", e.error().what());
        continue;
      }
      std::lock_guard lock(mu_);
      if (apply_event(state_, **e, opts_)) need_snapshot = true, resync_now = true;
      if (state_.vm_set_changed) need_snapshot = true;
    }
  }
}

}  // namespace morph::fleet
