// state_json(): the FleetView as JSON, shared by the dashboard's /api/state and `morphctl top --json`; built
// into morph_fleet_view so morphctl needs no HTTP server to print it.
#include <nlohmann/json.hpp>

#include "controller/dashboard/dashboard.h"

namespace morph::dashboard {

using nlohmann::json;

namespace {

double secs(uint64_t ns) {
  return static_cast<double>(ns) / 1e9;
}

template <class D>
size_t first_index(const D& d, size_t points) {
  return points && d.size() > points ? d.size() - points : 0;
}

json kpi_series(const std::deque<fleet::KpiSample>& d, size_t points) {
  json t = json::array(), cpu = json::array(), runq = json::array(), dr = json::array(), dw = json::array(),
       rx = json::array(), tx = json::array();
  for (size_t i = first_index(d, points); i < d.size(); ++i) {
    auto& k = d[i];
    t.push_back(secs(k.t_ns));
    cpu.push_back(k.cpu_pct);
    runq.push_back(k.runq_wait_pct);
    dr.push_back(k.disk_read_Bps);
    dw.push_back(k.disk_write_Bps);
    rx.push_back(k.net_rx_Bps);
    tx.push_back(k.net_tx_Bps);
  }
  return {{"t", t},           {"cpu_pct", cpu},  {"runq_wait_pct", runq}, {"disk_read_Bps", dr}, {"disk_write_Bps", dw},
          {"net_rx_Bps", rx}, {"net_tx_Bps", tx}};
}

}  // namespace

json state_json(const fleet::FleetState& s, size_t points) {
  json j;
  j["updated"] = secs(s.updated_ns);
  j["incarnation"] = s.incarnation;
  j["events_seen"] = s.events_seen;
  j["snapshots"] = s.snapshots;
  j["gaps"] = s.gaps;
  j["error"] = s.last_error;
  j["hosts"] = json::array();
  for (auto& [name, h] : s.hosts)
    j["hosts"].push_back({{"host", h.host},
                          {"up", h.up},
                          {"vm_count", h.vm_count},
                          {"last_seen", secs(h.last_seen_ns)},
                          {"capacity", h.capacity}});
  j["vms"] = json::array();
  for (auto& [uuid, v] : s.vms) {
    json vm = {{"uuid", v.uuid},
               {"name", v.name},
               {"host", v.host},
               {"owner", v.owner},
               {"sla", v.sla},
               {"baseline", v.baseline},
               {"kpis", kpi_series(v.kpis, points)}};
    if (!v.kpis.empty()) {
      auto& k = v.kpis.back();
      vm["latest"] = {{"t", secs(k.t_ns)},
                      {"cpu_pct", k.cpu_pct},
                      {"runq_wait_pct", k.runq_wait_pct},
                      {"disk_read_Bps", k.disk_read_Bps},
                      {"disk_write_Bps", k.disk_write_Bps},
                      {"net_rx_Bps", k.net_rx_Bps},
                      {"net_tx_Bps", k.net_tx_Bps}};
    }
    json alloc = json::object();
    for (auto& [res, d] : v.allocated) {
      json t = json::array(), q = json::array();
      for (size_t i = first_index(d, points); i < d.size(); ++i) {
        t.push_back(secs(d[i].t_ns));
        q.push_back(d[i].quantity);
      }
      alloc[res] = {{"t", t}, {"quantity", q}};
    }
    vm["allocated"] = alloc;
    j["vms"].push_back(vm);
  }
  j["allocations"] = json::array();
  for (auto& [id, a] : s.allocations)
    j["allocations"].push_back({{"bid_id", a.bid_id},
                                {"host", a.host},
                                {"vm_uuid", a.vm_uuid},
                                {"vm", s.vm_name(a.vm_uuid)},
                                {"account", a.account},
                                {"resource", a.resource},
                                {"quantity", a.quantity},
                                {"price", a.price},
                                {"since", secs(a.since_ns)}});
  j["prices"] = json::array();
  for (auto& [book, d] : s.prices) {
    json t = json::array(), p = json::array(), al = json::array();
    for (size_t i = first_index(d, points); i < d.size(); ++i) {
      t.push_back(secs(d[i].t_ns));
      p.push_back(d[i].price);
      al.push_back(d[i].allocated);
    }
    json e = {{"book", book}, {"t", t}, {"price", p}, {"allocated", al}};
    if (!d.empty())
      e["latest"] = {{"price", d.back().price},
                     {"supply", d.back().supply},
                     {"allocated", d.back().allocated},
                     {"tick", d.back().tick}};
    j["prices"].push_back(e);
  }
  j["shifts"] = json::array();
  for (auto& x : s.shifts)
    j["shifts"].push_back({{"t", secs(x.t_ns)},
                           {"host", x.host},
                           {"vm", s.vm_name(x.vm_uuid)},
                           {"command_id", x.command_id},
                           {"phase", x.phase},
                           {"adjustments", x.adjustments},
                           {"error", x.error}});
  j["bids"] = json::array();
  for (auto& b : s.bids)
    j["bids"].push_back({{"t", secs(b.t_ns)},
                         {"bid_id", b.bid_id},
                         {"account", b.account},
                         {"vm", s.vm_name(b.vm_uuid)},
                         {"resource", b.resource},
                         {"outcome", b.outcome},
                         {"reason", b.reason},
                         {"quantity", b.quantity},
                         {"filled", b.filled},
                         {"max_price", b.max_price}});
  return j;
}

}  // namespace morph::dashboard
