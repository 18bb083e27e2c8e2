// closed_loop_bench: Morph's closed loop on real VMs, in two modes (docs/benchmarks.md, "Closed loop").
//
// Agent half (default): a `morph-agent run` process (inventory, BPF probes, shifting engine over libvirt)
// on one test-bed VM, connected over ipc to a ControllerServer in this process. Each round sends a
// ShiftCommand (a CPU cap, alternating between two values so every command changes libvirt) and times it
// until the ShiftResult is back at the controller: decode, worker hand-off, virDomainSetSchedulerParameters,
// read-back, result. Prints p50/p99/max.
//
// Full loop (--full): KPI degradation onset -> rescue shift in force, through the controller's real market.
// Three test-bed VMs with 250 mc baselines (owners tenant, other, other), a real `morph-agent run`, and
// ControllerServer + MarketService (ledger, tick loop, rescue) in this process; the tenant's VM has an SLA
// policy (rescue when its run-queue wait share is over the threshold). Each round starts idle, with the VM
// at its baseline; the bench then raises the contending load (all three VMs to cpu=100, written to their
// control files at once: the control write) and polls libvirt every 2 ms until the VM's vcpu_quota and
// cpu_shares show the rescue allocation. The onset is taken in the guest: the first moment its vCPU thread
// is runnable and stays so (VcpuSampler, /proc sampled every 1 ms), since the guest's load generator polls
// its target only every 0.5 s. Stages, from timestamps taken in this process:
//   onset -> first KPI report over the threshold at the controller (the agent's interval has to end),
//   -> rescue bid raised (the policy wants breach_intervals consecutive intervals over: 3 by default,
//      --breach-intervals N sets it through the PolicySet API),
//   -> ShiftCommand sent (the next market tick clears the bid: ticks fall --tick-offset after the
//      wall-clock multiples of the tick, where the agent's intervals end),
//   -> ShiftResult back at the controller, and -> in force as read back from libvirt.
// Then the load goes back to 0, the rescue retires (5 healthy intervals), the VM returns to its baseline,
// and the next round starts.
//
// Usage: closed_loop_bench [ROUNDS=100]
//        closed_loop_bench --full [ROUNDS=20] [--tick MS=500] [--tick-offset MS=50] [--interval MS=500]
//                          [--threshold PERMILLE=500] [--breach-intervals N=3] [--prefix P]
// (root, libvirtd and the test bed prepared; --full takes about 5 s a round)
#include <libvirt/libvirt.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string_view>
#include <thread>

#include "api_reply_generated.h"
#include "common/kpi/derived.h"
#include "common/msg/api_client.h"
#include "common/msg/wire.h"
#include "controller/api/controller_server.h"
#include "controller/runtime/market_service.h"
#include "tests/support/files.h"
#include "tests/support/in_process_controller.h"
#include "tests/support/process.h"
#include "tests/support/requirements.h"
#include "tests/support/testbed.h"
#include "tests/support/wait.h"

using namespace morph;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

namespace {

double pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(p * double(v.size() - 1) + 0.5))];
}

// ---- full loop -------------------------------------------------------------------------------------

double ms_between(SteadyClock::time_point a, SteadyClock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// Timestamps of what the controller sees and does for the SLA VM, taken at the seams around MarketService:
// its KPI observer, its link to the messaging layer, and its MarketApi (shift results).
struct Timeline {
  std::mutex mu;
  std::string vm, account;
  double threshold = 0.3;
  std::vector<std::pair<SteadyClock::time_point, double>> reports;            // received, SLA VM's wait share
  std::vector<SteadyClock::time_point> raises;                                // bid.<account> events (rescue raised)
  std::vector<std::pair<SteadyClock::time_point, uint64_t>> raised_cpu_sent;  // ShiftCommand above the baseline
  std::map<uint64_t, SteadyClock::time_point> results;
  int64_t baseline_mc = 0;

  std::optional<SteadyClock::time_point> first_over(SteadyClock::time_point t0) {
    std::lock_guard lk(mu);
    for (auto& [t, w] : reports)
      if (t >= t0 && w > threshold) return t;
    return std::nullopt;
  }
  bool healthy_since(SteadyClock::time_point t0, size_t n) {
    std::lock_guard lk(mu);
    size_t ok = 0;
    for (auto it = reports.rbegin(); it != reports.rend() && it->first >= t0; ++it) {
      if (it->second > threshold) return false;
      if (++ok >= n) return true;
    }
    return false;
  }
};

class ObservedMarket final : public controller::MarketApi, public controller::KpiObserver {
 public:
  ObservedMarket(std::shared_ptr<controller::MarketService> m, Timeline& t) : m_(std::move(m)), t_(t) {}
  Result<controller::ReplyBody> handle(const controller::Caller& c, const v1::ApiRequest& r,
                                       flatbuffers::FlatBufferBuilder& fbb) override {
    return m_->handle(c, r, fbb);
  }
  void snapshot(const controller::Caller& c, flatbuffers::FlatBufferBuilder& fbb,
                std::vector<flatbuffers::Offset<v1::PriceInfo>>& p,
                std::vector<flatbuffers::Offset<v1::AllocationInfo>>& a) override {
    m_->snapshot(c, fbb, p, a);
  }
  void on_shift_result(const std::string& host, const msg::ShiftOutcome& r) override {
    {
      std::lock_guard lk(t_.mu);
      if (!r.reverted && r.error == v1::ErrorCode::ok) t_.results.emplace(r.command_id, SteadyClock::now());
    }
    m_->on_shift_result(host, r);
  }
  void on_host_change(const std::string& host, bool up) override { m_->on_host_change(host, up); }
  void on_host_hello(const v1::HostHello& hello) override { m_->on_host_hello(hello); }
  void on_kpi_report(const v1::KpiReport& r, uint64_t received) override {
    const auto now = SteadyClock::now();
    if (r.vms())
      for (const auto* k : *r.vms())
        if (k->uuid() && k->uuid()->string_view() == t_.vm) {
          std::lock_guard lk(t_.mu);
          t_.reports.emplace_back(now, kpi::runq_wait_share(k->cpu_run_ns(), k->cpu_wait_ns()));
        }
    m_->on_kpi_report(r, received);  // the rescue is raised in here
  }

 private:
  std::shared_ptr<controller::MarketService> m_;
  Timeline& t_;
};

class ObservedLink final : public controller::ControllerLink {
 public:
  ObservedLink(controller::ControllerLink& l, Timeline& t) : l_(l), t_(t) {}
  void publish_event(std::string topic, v1::MarketEventBody type, controller::EventBodyBuilder build) override {
    if (topic == "bid." + t_.account) {
      std::lock_guard lk(t_.mu);
      t_.raises.push_back(SteadyClock::now());
    }
    l_.publish_event(std::move(topic), type, std::move(build));
  }
  void send_shift(std::string host, msg::ShiftOrder order) override {
    if (order.vm_uuid == t_.vm)
      for (auto& a : order.adjustments)
        if (a.resource == msg::Resource::cpu && a.value > t_.baseline_mc) {
          std::lock_guard lk(t_.mu);
          t_.raised_cpu_sent.emplace_back(SteadyClock::now(), order.command_id);
        }
    l_.send_shift(std::move(host), std::move(order));
  }
  void renew_lease(std::string host, msg::LeaseRenewal r) override { l_.renew_lease(std::move(host), std::move(r)); }

 private:
  controller::ControllerLink& l_;
  Timeline& t_;
};

// The degradation's onset as the VM shows it, independent of Morph: the VM's vCPU threads (QEMU names them
// "CPU <n>/TCG" or "CPU <n>/KVM") go from sleeping (the idle guest halts) to runnable (state R: on a CPU,
// waiting for one, or throttled by the quota) and stay so. /proc/<qemu>/task/<tid>/stat is sampled every
// 1 ms on its own thread; the onset is the first R sample that starts 20 ms of at least 90 % R samples
// (the guest's 0.5 s poll of its load target is a few ms of R, and does not count).
class VcpuSampler {
 public:
  static std::optional<VcpuSampler> of_domain(const std::string& name) {
    std::ifstream pidf("/run/libvirt/qemu/" + name + ".pid");
    long pid = 0;
    if (!(pidf >> pid) || pid <= 0) return std::nullopt;
    VcpuSampler s;
    const std::string task = "/proc/" + std::to_string(pid) + "/task";
    std::error_code ec;
    for (auto& e : std::filesystem::directory_iterator(task, ec)) {
      std::ifstream comm(e.path() / "comm");
      std::string c;
      std::getline(comm, c);
      if (c.rfind("CPU ", 0) == 0) s.paths_.push_back((e.path() / "stat").string());
    }
    if (s.paths_.empty()) return std::nullopt;
    return s;
  }
  VcpuSampler(VcpuSampler&& o) noexcept : paths_(std::move(o.paths_)) {}
  ~VcpuSampler() { stop(); }

  void start() {
    stop();
    samples_.clear();
    run_ = true;
    thread_ = std::thread([this] {
      while (run_) {
        bool r = false;
        for (auto& p : paths_) r = r || running(p);
        samples_.emplace_back(SteadyClock::now(), r);
        std::this_thread::sleep_for(1ms);
      }
    });
  }
  void stop() {
    run_ = false;
    if (thread_.joinable()) thread_.join();
  }
  // After stop(): the onset at or after t0, if the samples show one.
  std::optional<SteadyClock::time_point> onset(SteadyClock::time_point t0) const {
    for (size_t i = 0; i < samples_.size(); ++i) {
      if (samples_[i].first < t0 || !samples_[i].second) continue;
      size_t n = 0, r = 0, j = i;
      for (; j < samples_.size() && samples_[j].first - samples_[i].first < 20ms; ++j, ++n) r += samples_[j].second;
      if (j == samples_.size()) return std::nullopt;  // not 20 ms of samples left
      if (r * 10 >= n * 9) return samples_[i].first;
    }
    return std::nullopt;
  }

 private:
  VcpuSampler() = default;
  static bool running(const std::string& path) {
    // "pid (comm) S ...": the state follows the last ')' (a comm may hold spaces and parentheses).
    char buf[512];
    FILE* f = std::fopen(path.c_str(), "re");
    if (!f) return false;
    size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[n] = 0;
    const char* close = std::strrchr(buf, ')');
    return close && close[1] == ' ' && close[2] == 'R';
  }
  std::vector<std::string> paths_;
  std::vector<std::pair<SteadyClock::time_point, bool>> samples_;
  std::atomic<bool> run_{false};
  std::thread thread_;
};

void pstage(const char* name, const std::vector<double>& v) {
  if (v.empty()) return;
  std::printf("  %-56s p50 %7.1f ms  p99 %7.1f ms  max %7.1f ms\n", name, pct(v, 0.5), pct(v, 0.99),
              *std::max_element(v.begin(), v.end()));
}

int full_loop(int argc, char** argv) {
  int rounds = 20;
  int tick_ms = 500, interval_ms = 500, threshold = 500, breach_intervals = 3, offset_ms = 50;
  std::string prefix = "clbench-" + std::to_string(getpid());
  for (int i = 2; i < argc; ++i) {
    std::string_view a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--tick")
      tick_ms = std::atoi(next());
    else if (a == "--tick-offset")
      offset_ms = std::atoi(next());
    else if (a == "--interval")
      interval_ms = std::atoi(next());
    else if (a == "--threshold")
      threshold = std::atoi(next());
    else if (a == "--breach-intervals")
      breach_intervals = std::atoi(next());
    else if (a == "--prefix")
      prefix = next();
    else
      rounds = std::atoi(argv[i]);
  }
  if (rounds < 1 || tick_ms < 100 || offset_ms < 0 || offset_ms >= tick_ms || interval_ms < 100 || threshold < 1 ||
      threshold > 999 || breach_intervals < 1 || breach_intervals > 100 || prefix.empty()) {
    std::fprintf(stderr,
                 "closed_loop_bench --full: bad arguments (ROUNDS >= 1, --tick/--interval >= 100 ms, 0 <= "
                 "--tick-offset < --tick, "
                 "--threshold 1..999 permille, --breach-intervals 1..100, --prefix non-empty)\n");
    return 2;
  }
  constexpr int64_t kBaselineMc = 250;
  test::Testbed bed(
      {prefix, 3, {"--owners", "tenant,other,other", "--cpu-baseline", std::to_string(kBaselineMc)}, true});
  if (!bed.unavailable().empty()) {
    std::fprintf(stderr, "closed_loop_bench --full: needs root, BPF and libvirtd: %s\n", bed.unavailable().c_str());
    return 77;
  }
  if (!bed.error().empty()) {
    std::fprintf(stderr, "%s\n", bed.error().c_str());
    return 1;
  }
  // Each VM's control file, written directly (not through scripts/testbed load) so the three change at one
  // instant.
  auto set_cpu = [&](int cpu) {
    for (const auto& vm : bed.vms())
      test::write_atomically(vm.ctl_dir + "/targets",
                             "cpu=" + std::to_string(cpu) + " disk_read=0 disk_write=0 net_tx=0 net_rx=0\n");
  };
  set_cpu(0);

  const test::Sched base = bed.sched(0);
  auto sampler = VcpuSampler::of_domain(bed.vm(0).name);
  if (!sampler) {
    std::fprintf(stderr, "closed_loop_bench --full: no vCPU thread found for %s under /proc\n", bed.vm(0).name.c_str());
    return 1;
  }

  test::TempDir dir("closed-loop-full");
  const std::string run = dir.str() + "/run";

  Timeline tl;
  tl.vm = bed.vm(0).uuid;
  tl.account = "tenant";
  tl.threshold = threshold / 1000.0;
  tl.baseline_mc = kBaselineMc;
  controller::MarketServiceConfig mc;
  mc.tick = std::chrono::milliseconds(tick_ms);
  mc.tick_offset = std::chrono::milliseconds(offset_ms);
  mc.lease = std::chrono::milliseconds(std::max(3000, 6 * tick_ms));
  mc.ledger_path = (dir / "ledger.db").string();
  mc.market.set_reserve(Resource::cpu, 1);
  auto opened = controller::MarketService::open(mc);
  if (!opened) {
    std::fprintf(stderr, "market: %s\n", opened.error().what().c_str());
    return 1;
  }
  auto market = *opened;
  auto observed = std::make_shared<ObservedMarket>(market, tl);
  controller::ControllerConfig cc;
  cc.endpoints = test::ipc_endpoints(run);
  cc.kpi_observers = {observed};
  controller::ControllerServer server(cc, observed);
  ObservedLink link(server, tl);
  market->attach(&link);
  if (!server.start()) return 1;
  market->start();
  test::ChildProcess agent(
      test::agent_run_argv("bed", cc.endpoints,
                           {"--interval", std::to_string(interval_ms) + "ms", "--metrics-listen", "",
                            "--lease-state-file", (dir / "leases.json").string(), "--set", "log.level=warn"}),
      dir / "agent.out");
  auto fail = [&](const std::string& why) {
    std::fprintf(stderr, "closed_loop_bench --full: %s\n%s\n", why.c_str(), agent.log().c_str());
    market->stop();
    server.stop();
    agent.stop(SIGTERM);
    set_cpu(0);
    return 1;
  };
  if (!test::wait_until([&] { return server.stats().hosts_up >= 1 || !agent.alive(); }, 30s) || !agent.alive())
    return fail("the agent did not connect");

  zmq::context_t zctx;
  msg::ApiClient api(zctx, cc.endpoints.api, {});
  if (!api.connect()) return fail("api connect");
  auto call_ok = [&](v1::ApiRequestBody type,
                     std::function<flatbuffers::Offset<void>(flatbuffers::FlatBufferBuilder&)> b) {
    auto m = api.call(type, b, 5s);
    if (!m) return false;
    auto* r = flatbuffers::GetRoot<v1::ApiReply>(m->data());
    if (r->error()) std::fprintf(stderr, "api: %s\n", r->error()->message() ? r->error()->message()->c_str() : "?");
    return !r->error();
  };
  for (const char* a : {"tenant", "other"}) {
    if (!call_ok(v1::ApiRequestBody::AccountCreate,
                 [&](auto& b) { return v1::CreateAccountCreateDirect(b, a).Union(); }) ||
        !call_ok(v1::ApiRequestBody::AccountDeposit,
                 [&](auto& b) { return v1::CreateAccountDepositDirect(b, a, 1'000'000'000'000, "bench").Union(); }))
      return fail("accounts");
  }
  // The VM must be known to the market (HostHello) before a policy can name it.
  if (!test::wait_until(
          [&] {
            return call_ok(v1::ApiRequestBody::PolicySet, [&](auto& b) {
              auto vm = b.CreateString(tl.vm);
              v1::PolicySetBuilder pb(b);
              pb.add_vm_uuid(vm);
              pb.add_rescue(true);
              pb.add_runq_wait_permille(static_cast<uint32_t>(threshold));
              pb.add_max_price_ucredits(100);
              pb.add_breach_intervals(static_cast<uint32_t>(breach_intervals));
              return pb.Finish().Union();
            });
          },
          20s))
    return fail("policy set");

  std::printf(
      "full loop: tick %d ms (%d ms after each wall-clock multiple), KPI interval %d ms, rescue when runq wait share > "
      "%d permille for %d "
      "consecutive intervals (policy breach_intervals, set through PolicySet), lease %lld ms; baseline %lld mc, "
      "quota %lld us, shares %llu\n",
      tick_ms, offset_ms, interval_ms, threshold, breach_intervals,
      static_cast<long long>(mc.lease.count() / 1'000'000), static_cast<long long>(kBaselineMc), base.vcpu_quota,
      base.cpu_shares);
  std::fflush(stdout);
  std::vector<double> to_breach, to_raise, to_sent, to_result, to_force, raise_to_force, sent_to_force;
  std::vector<double> phases;  // ms into the agent's interval at the guest's onset
  std::vector<double> to_guest, g_breach, g_raise, g_sent, g_force;  // the guest's onset, and stages from it
  int skipped = 0;
  for (int r = 0; r < rounds; ++r) {
    // Idle, at the baseline, and healthy for a while: a clean start.
    set_cpu(0);
    const auto idle_from = SteadyClock::now();
    if (!test::wait_until([&] { return bed.sched(0) == base && tl.healthy_since(idle_from, 4); }, 60s)) {
      std::fprintf(stderr, "round %d: the VM did not settle at its baseline within 60 s; skipped\n", r);
      ++skipped;
      continue;
    }
    sampler->start();
    const auto t0 = SteadyClock::now();
    set_cpu(100);
    std::optional<SteadyClock::time_point> t_force;
    const auto give_up = t0 + 30s;
    test::Sched want{};
    while (SteadyClock::now() < give_up) {
      test::Sched s = bed.sched(0);
      if (s.vcpu_quota > base.vcpu_quota && s.cpu_shares > base.cpu_shares) {
        t_force = SteadyClock::now();
        want = s;
        break;
      }
      std::this_thread::sleep_for(2ms);
    }
    if (!t_force) {
      std::fprintf(stderr, "round %d: no rescue in force within 30 s; skipped\n", r);
      ++skipped;
      continue;
    }
    std::this_thread::sleep_for(200ms);  // let the ShiftResult arrive
    sampler->stop();
    const auto guest = sampler->onset(t0);
    auto breach = tl.first_over(t0);
    std::optional<SteadyClock::time_point> raise, sent, result;
    uint64_t cmd = 0;
    {
      std::lock_guard lk(tl.mu);
      for (auto& t : tl.raises)
        if (t >= t0) {
          raise = t;
          break;
        }
      for (auto& [t, id] : tl.raised_cpu_sent)
        if (t >= t0) {
          sent = t;
          cmd = id;
          break;
        }
      if (auto it = tl.results.find(cmd); cmd && it != tl.results.end()) result = it->second;
    }
    if (!breach || !raise || !sent || !guest) {
      std::fprintf(stderr, "round %d: a stage was not seen (guest onset %d breach %d raise %d sent %d); skipped\n", r,
                   bool(guest), bool(breach), bool(raise), bool(sent));
      ++skipped;
      continue;
    }
    to_breach.push_back(ms_between(t0, *breach));
    to_raise.push_back(ms_between(t0, *raise));
    to_sent.push_back(ms_between(t0, *sent));
    if (result) to_result.push_back(ms_between(t0, *result));
    to_force.push_back(ms_between(t0, *t_force));
    raise_to_force.push_back(ms_between(*raise, *t_force));
    sent_to_force.push_back(ms_between(*sent, *t_force));
    to_guest.push_back(ms_between(t0, *guest));
    // Where in the agent's interval the onset fell (intervals end on wall-clock multiples of the interval):
    // the loop's length depends on it, so the rounds should cover the interval.
    const auto wall_onset = std::chrono::system_clock::now() - (SteadyClock::now() - *guest);
    const double phase =
        double(std::chrono::duration_cast<std::chrono::microseconds>(wall_onset.time_since_epoch()).count() %
               (int64_t(interval_ms) * 1000)) /
        1000.0;
    phases.push_back(phase);
    g_breach.push_back(ms_between(*guest, *breach));
    g_raise.push_back(ms_between(*guest, *raise));
    g_sent.push_back(ms_between(*guest, *sent));
    g_force.push_back(ms_between(*guest, *t_force));
    std::printf(
        "round %2d: guest onset %4.0f ms after the control write, %3.0f ms into an interval; from it: breach %5.0f  "
        "raised %5.0f  sent %5.0f  "
        "in force %5.0f ms (quota %lld, shares %llu)\n",
        r, to_guest.back(), phase, g_breach.back(), g_raise.back(), g_sent.back(), g_force.back(), want.vcpu_quota,
        want.cpu_shares);
    std::fflush(stdout);
  }
  set_cpu(0);
  market->stop();
  server.stop();
  agent.stop(SIGTERM);
  if (to_force.empty()) {
    std::fprintf(stderr, "no round completed\n");
    return 1;
  }
  std::printf("\nfull loop, %zu rounds (%d skipped); target 2 ticks + 100 ms = %d ms\n", to_force.size(), skipped,
              2 * tick_ms + 100);
  const std::string raised = "rescue bid raised (breach for " + std::to_string(breach_intervals) + " intervals)";
  std::sort(phases.begin(), phases.end());
  double widest = phases.front() + interval_ms - phases.back();  // the gap across the interval's end
  for (size_t i = 1; i < phases.size(); ++i) widest = std::max(widest, phases[i] - phases[i - 1]);
  std::printf("onsets fell %.0f-%.0f ms into the %d ms interval (largest gap between them %.0f ms)\n", phases.front(),
              phases.back(), interval_ms, widest);
  std::printf("from the onset in the guest (its vCPU runnable, sampled from /proc every 1 ms):\n");
  pstage("first KPI report over the threshold (detection starts)", g_breach);
  pstage(raised.c_str(), g_raise);
  pstage("ShiftCommand sent (next tick)", g_sent);
  pstage("in force, read back from libvirt (TOTAL)", g_force);
  std::printf("from the control write (the guest polls its target every 0.5 s):\n");
  pstage("guest onset (the load generator saw its new target)", to_guest);
  pstage("first KPI report over the threshold (detection starts)", to_breach);
  pstage(raised.c_str(), to_raise);
  pstage("ShiftCommand sent (next tick)", to_sent);
  pstage("ShiftResult back at the controller", to_result);
  pstage("in force, read back from libvirt", to_force);
  std::printf("mechanical part:\n");
  pstage("rescue raised -> in force (tick wait + command + apply)", raise_to_force);
  pstage("ShiftCommand sent -> in force", sent_to_force);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "--full") return full_loop(argc, argv);
  const int rounds = argc > 1 ? std::max(1, std::atoi(argv[1])) : 100;
  test::Testbed bed({test::unique_prefix("shift-closedloop"), 1, {}, true});
  if (!bed.up()) {
    std::fprintf(stderr, "closed_loop_bench: %s%s\n", bed.unavailable().c_str(), bed.error().c_str());
    return 77;
  }
  const std::string uuid = bed.vm().uuid;

  test::TempDir dir("closed-loop");
  auto market = std::make_shared<test::ShiftRecorder>();
  controller::ControllerConfig cc;
  cc.endpoints = test::ipc_endpoints(dir.str() + "/run");
  controller::ControllerServer server(cc, market);
  if (!server.start()) return 1;
  const std::string host = "bench-" + std::to_string(getpid());
  test::ChildProcess agent(test::agent_run_argv(host, cc.endpoints,
                                                {"--metrics-listen", "", "--lease-state-file",
                                                 (dir / "leases.json").string(), "--set", "log.level=warn"}),
                           dir / "agent.out");
  if (!test::wait_until([&] { return server.stats().hosts_up >= 1; }, 20s)) {
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
    const auto t0 = SteadyClock::now();
    server.send_shift(host, o);
    auto result = market->wait_result(o.command_id, false, 10s);
    if (!result) {
      std::fprintf(stderr, "no ShiftResult for command %d within 10 s\n", i);
      return 1;
    }
    if (result->first.error != v1::ErrorCode::ok) ++failed;
    ms.push_back(std::chrono::duration<double, std::milli>(result->second - t0).count());
  }
  // Back to the baseline before the VM goes.
  msg::ShiftOrder o{++id, uuid, {{msg::Resource::cpu, 1000, {}}}, 1'000'000'000ULL, msg::now_ns()};
  server.send_shift(host, o);
  std::this_thread::sleep_for(500ms);
  agent.stop(SIGTERM);
  server.stop();
  bed.load("cpu=0");
  std::printf(
      "ShiftCommand sent -> ShiftResult received (real uplink over ipc, real agent, CPU cap on a test-bed VM)\n");
  std::printf("rounds %d, failed %d\n", rounds, failed);
  std::printf("p50 %.2f ms  p99 %.2f ms  max %.2f ms\n", pct(ms, 0.5), pct(ms, 0.99),
              *std::max_element(ms.begin(), ms.end()));
  return failed ? 1 : 0;
}
