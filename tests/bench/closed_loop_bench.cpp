// closed_loop_bench: the agent half of Morph's closed loop, through the real uplink. A `morph-agent run`
// process (inventory, BPF probes, shifting engine over libvirt) on one test-bed VM, connected over ipc to
// a ControllerServer in this process. Each round sends a ShiftCommand (a CPU cap, alternating between two
// values so every command changes libvirt) and times it until the ShiftResult is back at the controller:
// decode, worker hand-off, virDomainSetSchedulerParameters, read-back, result. Prints p50/p99/max.
//
// The full loop (KPI degradation onset -> the controller's rescue -> shift in force) needs the
// controller's rescue wired to ControllerLink::send_shift; until then this is the figure reported in
// docs/benchmarks.md, "Agent closed loop".
//
// Usage: closed_loop_bench [ROUNDS=100]   (root, libvirtd and the test bed prepared)
#include <libvirt/libvirt.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>

#include "common/msg/wire.h"
#include "controller/api/controller_server.h"
#include "tests/e2e/shifter_testbed.h"
#include "tests/integration/agent_run_support.h"
#include "tests/support/requirements.h"

using namespace morph;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

class ResultClock final : public controller::MarketApi {
 public:
  Result<controller::ReplyBody> handle(const controller::Caller&, const v1::ApiRequest&,
                                       flatbuffers::FlatBufferBuilder&) override {
    return Error(Errc::unavailable, "no market in this benchmark");
  }
  void on_shift_result(const std::string&, const msg::ShiftOutcome& r) override {
    std::lock_guard lk(mu);
    if (!r.reverted) done[r.command_id] = {Clock::now(), r.error == v1::ErrorCode::ok};
    cv.notify_all();
  }
  std::mutex mu;
  std::condition_variable cv;
  std::map<uint64_t, std::pair<Clock::time_point, bool>> done;
};

double pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(p * double(v.size() - 1) + 0.5))];
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::max(1, std::atoi(argv[1])) : 100;
  if (!test::is_root() || !test::bpf_unavailable_reason().empty()) {
    std::fprintf(stderr, "closed_loop_bench: needs root and BPF\n");
    return 77;
  }
  test::ShiftTestbed bed("closedloop");
  if (!bed.error().empty()) {
    std::fprintf(stderr, "closed_loop_bench: %s\n", bed.error().c_str());
    return 77;
  }
  virDomainPtr dom = virDomainLookupByName(bed.conn(), bed.vm().c_str());
  char uuid[VIR_UUID_STRING_BUFLEN] = {};
  if (!dom || virDomainGetUUIDString(dom, uuid) != 0) return 1;
  virDomainFree(dom);

  auto dir = std::filesystem::temp_directory_path() / ("morph-closed-loop-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string run = (dir / "run").string();
  auto market = std::make_shared<ResultClock>();
  controller::ControllerConfig cc;
  cc.endpoints = {"ipc://" + run + "/ingest", "ipc://" + run + "/control", "ipc://" + run + "/api",
                  "ipc://" + run + "/events"};
  controller::ControllerServer server(cc, market);
  if (!server.start()) return 1;
  const std::string host = "bench-" + std::to_string(getpid());
  test::AgentProcess agent({test::binary_dir() + "/hostagent/morph-agent", "run", "--host", host, "--ingest",
                            cc.endpoints.ingest, "--control", cc.endpoints.control, "--metrics-listen", "",
                            "--lease-state-file", (dir / "leases.json").string(), "--set", "log.level=warn"},
                           (dir / "agent.out").string());
  const auto up_by = Clock::now() + 20s;
  while (server.stats().hosts_up < 1 && Clock::now() < up_by) std::this_thread::sleep_for(20ms);
  if (server.stats().hosts_up < 1) {
    std::fprintf(stderr, "agent did not connect:\n%s\n", agent.log().c_str());
    return 1;
  }
  bed.load("cpu=50");
  std::vector<double> ms;
  int failed = 0;
  uint64_t id = uint64_t(msg::now_ns());
  for (int i = 0; i < rounds; ++i) {
    msg::ShiftOrder o;
    o.command_id = ++id;
    o.vm_uuid = uuid;
    o.adjustments = {{msg::Resource::cpu, i % 2 ? 700 : 600, {}}};
    o.lease_ns = 30'000'000'000ULL;
    const auto t0 = Clock::now();
    server.send_shift(host, o);
    std::unique_lock lk(market->mu);
    if (!market->cv.wait_for(lk, 10s, [&] { return market->done.count(o.command_id) > 0; })) {
      std::fprintf(stderr, "no ShiftResult for command %d within 10 s\n", i);
      return 1;
    }
    auto [t1, ok] = market->done[o.command_id];
    if (!ok) ++failed;
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  // Back to the baseline before the VM goes.
  msg::ShiftOrder o{++id, uuid, {{msg::Resource::cpu, 1000, {}}}, 1'000'000'000ULL, msg::now_ns()};
  server.send_shift(host, o);
  std::this_thread::sleep_for(500ms);
  agent.stop(SIGTERM);
  server.stop();
  bed.load("cpu=0");
  std::filesystem::remove_all(dir);
  std::printf("ShiftCommand sent -> ShiftResult received (real uplink over ipc, real agent, CPU cap on a test-bed VM)\n");
  std::printf("rounds %d, failed %d\n", rounds, failed);
  std::printf("p50 %.2f ms  p99 %.2f ms  max %.2f ms\n", pct(ms, 0.5), pct(ms, 0.99), *std::max_element(ms.begin(), ms.end()));
  return failed ? 1 : 0;
}
