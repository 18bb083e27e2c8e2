#include "controller/dashboard/dashboard.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <thread>

#include "common/config.h"

namespace morph::dashboard {

using nlohmann::json;

namespace {

double secs(uint64_t ns) { return static_cast<double>(ns) / 1e9; }

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
  return {{"t", t}, {"cpu_pct", cpu}, {"runq_wait_pct", runq}, {"disk_read_Bps", dr}, {"disk_write_Bps", dw},
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
    j["hosts"].push_back({{"host", h.host}, {"up", h.up}, {"vm_count", h.vm_count}, {"last_seen", secs(h.last_seen_ns)},
                          {"capacity", h.capacity}});
  j["vms"] = json::array();
  for (auto& [uuid, v] : s.vms) {
    json vm = {{"uuid", v.uuid}, {"name", v.name}, {"host", v.host}, {"owner", v.owner}, {"sla", v.sla},
               {"baseline", v.baseline}, {"kpis", kpi_series(v.kpis, points)}};
    if (!v.kpis.empty()) {
      auto& k = v.kpis.back();
      vm["latest"] = {{"t", secs(k.t_ns)},          {"cpu_pct", k.cpu_pct},     {"runq_wait_pct", k.runq_wait_pct},
                      {"disk_read_Bps", k.disk_read_Bps}, {"disk_write_Bps", k.disk_write_Bps},
                      {"net_rx_Bps", k.net_rx_Bps}, {"net_tx_Bps", k.net_tx_Bps}};
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
    j["allocations"].push_back({{"bid_id", a.bid_id}, {"host", a.host}, {"vm_uuid", a.vm_uuid},
                                {"vm", s.vm_name(a.vm_uuid)}, {"account", a.account}, {"resource", a.resource},
                                {"quantity", a.quantity}, {"price", a.price}, {"since", secs(a.since_ns)}});
  j["prices"] = json::array();
  for (auto& [book, d] : s.prices) {
    json t = json::array(), p = json::array(), al = json::array();
    for (size_t i = first_index(d, points); i < d.size(); ++i) {
      t.push_back(secs(d[i].t_ns));
      p.push_back(d[i].price);
      al.push_back(d[i].allocated);
    }
    json e = {{"book", book}, {"t", t}, {"price", p}, {"allocated", al}};
    if (!d.empty()) e["latest"] = {{"price", d.back().price}, {"supply", d.back().supply},
                                   {"allocated", d.back().allocated}, {"tick", d.back().tick}};
    j["prices"].push_back(e);
  }
  j["shifts"] = json::array();
  for (auto& x : s.shifts)
    j["shifts"].push_back({{"t", secs(x.t_ns)}, {"host", x.host}, {"vm", s.vm_name(x.vm_uuid)}, {"command_id", x.command_id},
                           {"phase", x.phase}, {"adjustments", x.adjustments}, {"error", x.error}});
  j["bids"] = json::array();
  for (auto& b : s.bids)
    j["bids"].push_back({{"t", secs(b.t_ns)}, {"bid_id", b.bid_id}, {"account", b.account}, {"vm", s.vm_name(b.vm_uuid)},
                         {"resource", b.resource}, {"outcome", b.outcome}, {"reason", b.reason},
                         {"quantity", b.quantity}, {"filled", b.filled}, {"max_price", b.max_price}});
  return j;
}

struct Dashboard::Impl {
  httplib::Server server;
  std::thread thread;
};

Dashboard::~Dashboard() {
  if (impl_) {
    impl_->server.stop();
    if (impl_->thread.joinable()) impl_->thread.join();
  }
}

std::string Dashboard::url() const {
  std::string h = host_ == "0.0.0.0" ? "127.0.0.1" : host_;
  if (h.find(':') != std::string::npos) h = "[" + h + "]";
  return "http://" + h + ":" + std::to_string(port_);
}

Result<std::unique_ptr<Dashboard>> start_dashboard(const DashboardOptions& opts) {
  auto addr = config::parse_listen(opts.listen);
  if (!addr) return std::move(addr).error().with_context("dashboard");
  std::unique_ptr<Dashboard> d(new Dashboard());
  auto fv = fleet::FleetView::start(opts.fleet);
  if (!fv) return std::move(fv).error().with_context("dashboard");
  d->fleet_ = std::move(fv).value();
  d->impl_ = std::make_unique<Dashboard::Impl>();
  auto& svr = d->impl_->server;
  svr.new_task_queue = [] { return new httplib::ThreadPool(2); };
  svr.set_keep_alive_timeout(1);
  svr.set_socket_options([](socket_t sock) {  // no SO_REUSEPORT: a second dashboard must not share the port
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  svr.set_read_timeout(5);
  svr.set_write_timeout(5);
  const fleet::FleetView* fleet = d->fleet_.get();
  svr.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_header("Cache-Control", "no-store");
    res.set_content(page_html(), "text/html; charset=utf-8");
  });
  svr.Get("/api/state", [fleet](const httplib::Request& req, httplib::Response& res) {
    size_t points = 0;
    if (req.has_param("points")) {
      try {
        points = std::stoul(req.get_param_value("points"));
      } catch (const std::exception&) {
        res.status = 400;
        res.set_content("points: expected a whole number\n", "text/plain; charset=utf-8");
        return;
      }
    }
    res.set_header("Cache-Control", "no-store");
    res.set_content(state_json(fleet->state(), points).dump(), "application/json");
  });
  svr.Get("/healthz", [fleet](const httplib::Request&, httplib::Response& res) {
    auto s = fleet->state();
    if (s.snapshots > 0 || s.events_seen > 0) {
      res.set_content("ok\n", "text/plain; charset=utf-8");
    } else {
      res.status = 503;
      res.set_content("no data from the controller yet" + (s.last_error.empty() ? "" : ": " + s.last_error) + "\n",
                      "text/plain; charset=utf-8");
    }
  });
  std::string host = addr->host.empty() ? "0.0.0.0" : addr->host;
  int port = addr->port;
  if (port == 0) {
    port = svr.bind_to_any_port(host);
    if (port < 0) return Error::from_errno("dashboard: cannot bind " + host + " on any port");
  } else if (!svr.bind_to_port(host, port)) {
    return Error::from_errno("dashboard: cannot bind " + opts.listen);
  }
  d->host_ = host;
  d->port_ = port;
  d->impl_->thread = std::thread([&svr] { svr.listen_after_bind(); });
  for (int i = 0; i < 5000 && !svr.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (!svr.is_running()) return Error(Errc::internal, "dashboard on " + opts.listen + " did not start");
  spdlog::info("dashboard: serving {} (events {}, api {})", d->url(), opts.fleet.events, opts.fleet.api);
  return d;
}

}  // namespace morph::dashboard
