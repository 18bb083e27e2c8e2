// Agent → controller latency over loopback tcp with CURVE: a paced PUB (the agent's socket, options and
// security) sends KpiReports stamped at send time; the controller's KpiObserver takes the difference when
// each report has been verified, decoded and applied. Prints p50/p90/p99/max.
// Usage: msg_latency_bench [samples=3000] [rate_hz=500] [vms=50]
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <mutex>
#include <thread>

#include "common/msg/socket.h"
#include "common/msg/wire.h"
#include "controller/api/controller_server.h"

using namespace morph;

namespace {
class Recorder final : public controller::KpiObserver {
 public:
  void on_kpi_report(const v1::KpiReport& r, uint64_t received_ns) override {
    std::lock_guard lk(mu);
    lat_ns.push_back(received_ns - r.timestamp_ns());
  }
  std::mutex mu;
  std::vector<uint64_t> lat_ns;
};
}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  size_t samples = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 3000;
  int rate = argc > 2 ? std::atoi(argv[2]) : 500;
  int vms = argc > 3 ? std::atoi(argv[3]) : 50;
  auto ctl_keys = *msg::generate_keypair();
  auto agent_keys = *msg::generate_keypair();
  auto allow = std::make_shared<msg::AllowList>();
  (void)allow->add({msg::Role::agent, "bench-host", "", agent_keys.public_z85});
  auto rec = std::make_shared<Recorder>();
  controller::ControllerConfig cfg;
  cfg.endpoints = {"tcp://127.0.0.1:0", "tcp://127.0.0.1:0", "tcp://127.0.0.1:0", "tcp://127.0.0.1:0"};
  cfg.server_key = ctl_keys;
  cfg.allow = allow;
  cfg.kpi_observers = {rec};
  controller::ControllerServer server(cfg);
  if (!server.start()) return 1;

  zmq::context_t ctx(1);
  auto pub = msg::make_socket(ctx, zmq::socket_type::pub);
  if (!msg::connect_endpoint(pub, server.endpoints().ingest, {agent_keys, ctl_keys.public_z85, false})) return 1;
  std::vector<kpi::VmKpis> ks(vms);
  for (int i = 0; i < vms; ++i) {
    char uuid[40];
    std::snprintf(uuid, sizeof(uuid), "11111111-2222-4333-8444-%012d", i);
    ks[i].uuid = uuid;
    ks[i].name = "vm";
    ks[i].cpu_run_ns = 1000;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  flatbuffers::FlatBufferBuilder f;
  std::string topic = "kpi.bench-host";
  auto period = std::chrono::nanoseconds(1'000'000'000 / rate);
  auto next = std::chrono::steady_clock::now();
  for (size_t s = 1; s <= samples + 100; ++s) {
    f.Clear();
    msg::encode_kpi_report(f, {"bench-host", s, 1, 1'000'000'000, msg::now_ns()}, ks);  // stamped at send
    std::array<std::string_view, 2> p{topic, {reinterpret_cast<const char*>(f.GetBufferPointer()), f.GetSize()}};
    msg::send_parts(pub, p);
    next += period;
    std::this_thread::sleep_until(next);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  server.stop();
  std::vector<uint64_t> l;
  {
    std::lock_guard lk(rec->mu);
    l.assign(rec->lat_ns.begin() + std::min<size_t>(100, rec->lat_ns.size()), rec->lat_ns.end());  // skip warm-up
  }
  if (l.empty()) {
    std::printf("no samples received\n");
    return 1;
  }
  std::sort(l.begin(), l.end());
  auto pct = [&](double q) { return double(l[std::min(l.size() - 1, size_t(q * double(l.size())))]) / 1000.0; };
  std::printf("agent->controller over loopback tcp, CURVE on, %d VMs/report, %d reports/s, %zu samples\n", vms, rate,
              l.size());
  std::printf(
      "latency (encode+send -> verified, decoded, applied): p50 %.1f us  p90 %.1f us  p99 %.1f us  max %.1f us\n",
      pct(0.50), pct(0.90), pct(0.99), double(l.back()) / 1000.0);
  return 0;
}
