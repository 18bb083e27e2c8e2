// Controller ingest throughput: KpiReports of 50 VMs each, verified, decoded and applied to the HostTable
// (and re-published on events, as in production).
//   1. decode+apply only, no sockets, one thread;
//   2. end to end over loopback tcp through ControllerServer, CURVE off and on, side by side. The whole
//      controller (its messaging thread and its libzmq I/O thread, which does the CURVE crypto) is pinned
//      to CPU 0; the sending "agents" run on CPU 1 with their own ZeroMQ context.
//   With history=1 a KpiHistory (controller/ingest/kpi_history.h) takes every report as well, as in
//   `morph-controller run`: in 1. after each apply, in 2. as the server's KPI observer.
// Usage: msg_ingest_bench [seconds-per-run=3] [vms=50] [history=0]
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "common/msg/socket.h"
#include "common/msg/wire.h"
#include "controller/api/controller_server.h"
#include "controller/ingest/host_table.h"
#include "controller/ingest/kpi_history.h"

using namespace morph;
using Clock = std::chrono::steady_clock;

namespace {

void pin(int cpu) {
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(cpu, &s);
  pthread_setaffinity_np(pthread_self(), sizeof(s), &s);
}

std::vector<std::vector<uint8_t>> make_reports(const std::string& host, int vms, int n) {
  std::vector<kpi::VmKpis> ks;
  for (int i = 0; i < vms; ++i) {
    kpi::VmKpis k;
    char uuid[40];
    std::snprintf(uuid, sizeof(uuid), "11111111-2222-4333-8444-%012d", i);
    k.uuid = uuid;
    k.name = "vm-" + std::to_string(i);
    k.interval_ns = 1'000'000'000;
    k.cpu_run_ns = 250'000'000 + i;
    k.cpu_wait_ns = 1'000'000;
    for (int b = 0; b < kpi::kHistBuckets; ++b) k.runq_lat_us[b] = k.blk_lat_us[b] = uint64_t(b * 3 + i);
    k.blk_read_bytes = 1 << 20;
    k.net_rx_bytes = 1 << 18;
    k.mem_rss_bytes = 1ull << 30;
    ks.push_back(k);
  }
  std::vector<std::vector<uint8_t>> out;
  const uint64_t t0 = msg::now_ns();
  for (int s = 1; s <= n; ++s) {
    flatbuffers::FlatBufferBuilder f;
    // Consecutive 1 s intervals, so a KpiHistory closes a downsampled window every 60 reports.
    msg::encode_kpi_report(f, {host, uint64_t(s), 1, 1'000'000'000, t0 + uint64_t(s) * 1'000'000'000}, ks);
    out.emplace_back(f.GetBufferPointer(), f.GetBufferPointer() + f.GetSize());
  }
  return out;
}

double decode_only(const std::vector<std::vector<uint8_t>>& reports, double secs, bool history) {
  pin(0);
  controller::HostTable table;
  controller::KpiHistory kpi_history;
  uint64_t n = 0;
  auto end = Clock::now() + std::chrono::duration<double>(secs);
  auto t0 = Clock::now();
  while (Clock::now() < end) {
    for (int i = 0; i < 100; ++i, ++n) {
      auto& buf = reports[n % reports.size()];
      zmq::message_t m(buf.data(), buf.size());  // as received: one copy out of the socket
      auto r = msg::decode_kpi_report(msg::bytes_of(m));
      if (!r) std::abort();
      controller::HostTable::Change c;
      table.apply_kpi_report(**r, std::move(m), 0, c);
      if (history) {  // as the server does: the report re-rooted in the message the table now holds
        const auto& stored = table.find("bench-host")->latest_report;
        kpi_history.on_kpi_report(*flatbuffers::GetRoot<v1::KpiReport>(stored.data()), 0);
      }
    }
  }
  return double(n) / std::chrono::duration<double>(Clock::now() - t0).count();
}

// CPU seconds used by this process's threads other than `exclude` (the senders), from /proc.
double cpu_seconds_excluding(const std::set<pid_t>& exclude) {
  double total = 0;
  DIR* d = opendir("/proc/self/task");
  while (auto* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    pid_t tid = std::atoi(e->d_name);
    if (exclude.contains(tid)) continue;
    std::ifstream in(std::string("/proc/self/task/") + e->d_name + "/stat");
    std::string line;
    std::getline(in, line);
    auto rp = line.rfind(')');
    if (rp == std::string::npos) continue;
    std::istringstream ss(line.substr(rp + 2));
    std::string f;
    unsigned long ut = 0, st = 0;
    for (int i = 3; i <= 15 && ss >> f; ++i) {
      if (i == 14) ut = std::stoul(f);
      if (i == 15) st = std::stoul(f);
    }
    total += double(ut + st) / double(sysconf(_SC_CLK_TCK));
  }
  closedir(d);
  return total;
}

struct E2E {
  double reports_per_s;
  double reports_per_cpu_s;  // controller threads' CPU time only: independent of other load on the machine
  uint64_t sent, ingested;
};

E2E end_to_end(bool curve, const std::vector<std::vector<uint8_t>>& reports, double secs, int senders, bool history) {
  pin(0);  // the server's threads (messaging loop, libzmq I/O) inherit CPU 0
  auto ctl_keys = *msg::generate_keypair();
  auto agent_keys = *msg::generate_keypair();
  auto allow = std::make_shared<msg::AllowList>();
  (void)allow->add({msg::Role::agent, "bench-host", "", agent_keys.public_z85});
  controller::ControllerConfig cfg;
  cfg.endpoints = {"tcp://127.0.0.1:0", "tcp://127.0.0.1:0", "tcp://127.0.0.1:0", "tcp://127.0.0.1:0"};
  if (curve) {
    cfg.server_key = ctl_keys;
    cfg.allow = allow;
  } else {
    cfg.allow_plaintext_tcp = true;
  }
  if (history) cfg.kpi_observers = {std::make_shared<controller::KpiHistory>()};
  controller::ControllerServer server(cfg);
  if (!server.start()) std::abort();
  std::set<pid_t> server_tids;  // this thread plus everything the server and ZAP started
  {
    DIR* d = opendir("/proc/self/task");
    while (auto* e = readdir(d))
      if (e->d_name[0] != '.') server_tids.insert(std::atoi(e->d_name));
    closedir(d);
  }
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> sent{0};
  std::vector<std::thread> ts;
  std::mutex tid_mu;
  std::set<pid_t> sender_tids;
  for (int s = 0; s < senders; ++s) {
    ts.emplace_back([&] {
      pin(1);
      {
        std::lock_guard lk(tid_mu);
        sender_tids.insert(pid_t(syscall(SYS_gettid)));
      }
      zmq::context_t ctx(1);
      msg::SocketOptions o;
      o.sndhwm = 1000;
      auto pub = msg::make_socket(ctx, zmq::socket_type::pub, o);
      msg::ClientSecurity sec{curve ? std::optional(agent_keys) : std::nullopt, ctl_keys.public_z85, !curve};
      if (!msg::connect_endpoint(pub, server.endpoints().ingest, sec)) std::abort();
      std::this_thread::sleep_for(std::chrono::milliseconds(300));  // subscription propagation
      std::string topic = "kpi.bench-host";
      for (uint64_t i = 0; !stop; ++i) {
        auto& b = reports[i % reports.size()];
        // Blocking send: when the controller falls behind, HWM back-pressure slows the sender instead of
        // dropping (PUB drops at HWM, so pace on the receiver's progress).
        while (!stop && sent - server.stats().kpi_reports > 2000) std::this_thread::yield();
        std::array<std::string_view, 2> p{topic, {reinterpret_cast<const char*>(b.data()), b.size()}};
        if (msg::send_parts(pub, p)) ++sent;
      }
    });
  }
  // Warm up, then measure the controller's ingest rate over the window.
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  std::set<pid_t> excl;
  {
    std::lock_guard lk(tid_mu);
    excl = sender_tids;
  }
  for (auto t : server_tids) excl.erase(t);
  // Anything created after the server started and not the server's is the senders' (their zmq I/O thread).
  DIR* d = opendir("/proc/self/task");
  while (auto* e = readdir(d))
    if (e->d_name[0] != '.' && !server_tids.contains(std::atoi(e->d_name))) excl.insert(std::atoi(e->d_name));
  closedir(d);
  double c0 = cpu_seconds_excluding(excl);
  uint64_t n0 = server.stats().kpi_reports;
  auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(secs));
  uint64_t n1 = server.stats().kpi_reports;
  double el = std::chrono::duration<double>(Clock::now() - t0).count();
  double cpu = cpu_seconds_excluding(excl) - c0;
  stop = true;
  for (auto& t : ts) t.join();
  server.stop();
  return {double(n1 - n0) / el, cpu > 0 ? double(n1 - n0) / cpu : 0, sent.load(), n1};
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  double secs = argc > 1 ? std::atof(argv[1]) : 3.0;
  int vms = argc > 2 ? std::atoi(argv[2]) : 50;
  bool history = argc > 3 && std::atoi(argv[3]) != 0;
  auto reports = make_reports("bench-host", vms, 1000);
  std::printf("KpiReport: %d VMs, %zu bytes; KPI history %s\n", vms, reports[0].size(), history ? "on" : "off");
  double d = decode_only(reports, secs, history);
  std::printf("decode+verify+apply only (1 thread, CPU 0):      %9.0f reports/s  (%.2f us/report)\n", d, 1e6 / d);
  auto off = end_to_end(false, reports, secs, 1, history);
  std::printf(
      "end to end tcp, CURVE off (controller on CPU 0):  %9.0f reports/s wall, %9.0f per controller CPU-second\n",
      off.reports_per_s, off.reports_per_cpu_s);
  auto on = end_to_end(true, reports, secs, 1, history);
  std::printf(
      "end to end tcp, CURVE on  (controller on CPU 0):  %9.0f reports/s wall, %9.0f per controller CPU-second\n",
      on.reports_per_s, on.reports_per_cpu_s);
  std::printf("CURVE on / off: %.2f (wall), %.2f (per CPU-second)\n", on.reports_per_s / off.reports_per_s,
              on.reports_per_cpu_s / off.reports_per_cpu_s);
  std::printf("target >= 20000 reports/s per core with CURVE: %s\n", on.reports_per_cpu_s >= 20000 ? "met" : "NOT met");
  return 0;
}
