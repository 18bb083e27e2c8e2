#include "controller/dashboard/dashboard.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <thread>

#include "common/config.h"

namespace morph::dashboard {

using nlohmann::json;

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
