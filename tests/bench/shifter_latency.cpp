// shifter_latency: time from a shift command entering the engine to its value being in force and read
// back (ShiftEngine::shift returns only after reading libvirt / the policer), per resource, on a fresh
// test-bed VM running cpu=50. Two engines run side by side, interleaved shift by shift so both see the
// same machine load:
//   changed    the engine as the agent runs it: after applying, only what the command changed is read
//              back (Mechanisms::read_changed; a disk limit is one virDomainGetBlockIoTune)
//   full       the same engine over mechanisms that read everything back after applying (the old path)
// With --state-file the pair is instead:
//   state      the engine exactly as the agent runs it, with a lease state file on disk (the lease record
//              is written before each shift is applied)
//   nostate    the same engine without a state file
// Then, with --calls, the libvirt calls on the disk path timed one by one (where the time goes).
// Prints p50/p99/max per resource and engine, the p50/p99 ratios, and the load average before and after.
//   sudo build/tests/bench/shifter_latency [ROUNDS] [--calls] [--state-file]
#include <libvirt/libvirt.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "hostagent/lease_state/lease_state_file.h"
#include "hostagent/shifter/libvirt_mechanisms.h"
#include "hostagent/shifter/net_policer.h"
#include "hostagent/shifter/shift_engine.h"
#include "tests/support/measure.h"
#include "tests/support/testbed.h"

using namespace morph::agent::shifter;
using morph::Resource;
using Ms = std::chrono::duration<double, std::milli>;
using morph::test::loadavg;
using morph::test::percentile;

namespace {

// The engine's read-back as it was: everything, after every command.
class FullReadBack final : public Mechanisms {
 public:
  explicit FullReadBack(Mechanisms& m) : m_(m) {}
  morph::Result<VmTarget> resolve(const std::string& vm) override { return m_.resolve(vm); }
  morph::Result<InForce> read(const VmTarget& vm) override { return m_.read(vm); }
  morph::Result<std::string> apply(const VmTarget& vm, const Adjustment& a) override { return m_.apply(vm, a); }
  morph::Result<InForce> read_changed(const VmTarget& vm, const InForce&, const std::vector<Resource>&) override {
    return m_.read(vm);
  }

 private:
  Mechanisms& m_;
};

struct Stats {
  double p50, p99, max;
};
Stats stats(const std::vector<double>& v) {
  return {percentile(v, 0.50), percentile(v, 0.99), percentile(v, 1.0)};
}

// The disk path's libvirt calls, each timed on its own, `n` times.
void time_calls(virConnectPtr conn, const std::string& vm, int n) {
  virDomainPtr d = virDomainLookupByName(conn, vm.c_str());
  if (d == nullptr) return;
  std::map<std::string, std::vector<double>> t;
  auto timed = [&](const char* name, const std::function<void()>& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t[name].push_back(Ms(std::chrono::steady_clock::now() - t0).count());
  };
  for (int i = 0; i < n; ++i) {
    timed("virDomainSetBlockIoTune (1 param)", [&] {
      virTypedParameterPtr p = nullptr;
      int np = 0, cap = 0;
      virTypedParamsAddULLong(&p, &np, &cap, VIR_DOMAIN_BLOCK_IOTUNE_TOTAL_IOPS_SEC, i % 2 ? 200 : 100);
      virDomainSetBlockIoTune(d, "vda", p, np, VIR_DOMAIN_AFFECT_LIVE);
      virTypedParamsFree(p, np);
    });
    timed("virDomainSetBlockIoTune (2 params)", [&] {
      virTypedParameterPtr p = nullptr;
      int np = 0, cap = 0;
      virTypedParamsAddULLong(&p, &np, &cap, VIR_DOMAIN_BLOCK_IOTUNE_TOTAL_IOPS_SEC, i % 2 ? 200 : 100);
      virTypedParamsAddULLong(&p, &np, &cap, VIR_DOMAIN_BLOCK_IOTUNE_TOTAL_BYTES_SEC, i % 2 ? 2 << 20 : 1 << 20);
      virDomainSetBlockIoTune(d, "vda", p, np, VIR_DOMAIN_AFFECT_LIVE);
      virTypedParamsFree(p, np);
    });
    int count = 0;
    timed("virDomainGetBlockIoTune (count)",
          [&] { virDomainGetBlockIoTune(d, "vda", nullptr, &count, VIR_DOMAIN_AFFECT_LIVE); });
    timed("virDomainGetBlockIoTune (values)", [&] {
      std::vector<virTypedParameter> p(32);
      int np = static_cast<int>(p.size());
      if (virDomainGetBlockIoTune(d, "vda", p.data(), &np, VIR_DOMAIN_AFFECT_LIVE) == 0)
        virTypedParamsClear(p.data(), np);
    });
    timed("virDomainMemoryStats", [&] {
      virDomainMemoryStatStruct s[VIR_DOMAIN_MEMORY_STAT_NR];
      virDomainMemoryStats(d, s, VIR_DOMAIN_MEMORY_STAT_NR, 0);
    });
    timed("virDomainGetSchedulerParameters", [&] {
      int np = 0;
      free(virDomainGetSchedulerType(d, &np));  // NOLINT(cppcoreguidelines-no-malloc)
      std::vector<virTypedParameter> p(static_cast<size_t>(std::max(np, 1)));
      virDomainGetSchedulerParametersFlags(d, p.data(), &np, VIR_DOMAIN_AFFECT_LIVE);
    });
    timed("virDomainGetXMLDesc", [&] { free(virDomainGetXMLDesc(d, 0)); });  // NOLINT(cppcoreguidelines-no-malloc)
  }
  virTypedParameterPtr p = nullptr;
  int np = 0, cap = 0;
  virTypedParamsAddULLong(&p, &np, &cap, VIR_DOMAIN_BLOCK_IOTUNE_TOTAL_IOPS_SEC, 0);
  virTypedParamsAddULLong(&p, &np, &cap, VIR_DOMAIN_BLOCK_IOTUNE_TOTAL_BYTES_SEC, 0);
  virDomainSetBlockIoTune(d, "vda", p, np, VIR_DOMAIN_AFFECT_LIVE);
  virTypedParamsFree(p, np);
  virDomainFree(d);
  std::printf("\n%-36s %6s %10s %10s %10s   (ms, each libvirt call alone)\n", "call", "n", "p50", "p99", "max");
  for (auto& [name, v] : t) {
    Stats s = stats(v);
    std::printf("%-36s %6zu %10.2f %10.2f %10.2f\n", name.c_str(), v.size(), s.p50, s.p99, s.max);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int n = 200;
  bool calls = false, state = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--calls") == 0) {
      calls = true;
    } else if (std::strcmp(argv[i], "--state-file") == 0) {
      state = true;
    } else if (int v = std::atoi(argv[i]); v > 0) {
      n = v;
    } else {
      std::fprintf(stderr, "usage: shifter_latency [ROUNDS] [--calls] [--state-file]\n");
      return 2;
    }
  }
  spdlog::set_level(spdlog::level::warn);
  morph::test::Testbed bed({morph::test::unique_prefix("shift-bench")});
  if (!bed.up()) {
    std::fprintf(stderr, "shifter_latency: %s%s\n", bed.unavailable().c_str(), bed.error().c_str());
    return 77;
  }
  auto bpf = morph::agent::BpfRuntime::load({.kpi = false, .pin_dir = ""});
  auto policer = bpf ? NetPolicer::open(*bpf) : morph::Result<std::unique_ptr<NetPolicer>>(bpf.error());
  if (!policer) {
    std::fprintf(stderr, "shifter_latency: %s\n", policer.error().what().c_str());
    return 1;
  }
  auto mech = LibvirtMechanisms::connect({}, policer->get());
  if (!mech) {
    std::fprintf(stderr, "shifter_latency: %s\n", mech.error().what().c_str());
    return 1;
  }
  FullReadBack full_mech(**mech);
  // --state-file: the engine as the agent runs it, writing its lease record before each shift
  // (lease.state_file, on disk), against the same engine without a state file.
  const std::string state_path = "/var/tmp/morph-shifter-latency-" + std::to_string(getpid()) + ".json";
  std::shared_ptr<LeaseStore> store;
  if (state) store = std::make_shared<morph::agent::LeaseStateFile>(state_path);
  ShiftEngine changed(**mech, [] { return WallClock::now(); }, {.store = store});
  ShiftEngine full(state ? static_cast<Mechanisms&>(**mech) : full_mech, [] { return WallClock::now(); }, {});
  struct Engine {
    const char* name;
    ShiftEngine* engine;
  };
  const Engine engines[] = {{state ? "state" : "changed", &changed}, {state ? "nostate" : "full", &full}};
  bed.load("cpu=50");  // a guest doing something, as in production

  struct Case {
    const char* name;
    Resource r;
    int64_t a, b;
  };
  const Case cases[] = {{"cpu", Resource::cpu, 200, 800},
                        {"disk", Resource::disk_iops, 100, 200},
                        {"net", Resource::net_out_kbps, 10000, 20000}};
  const std::string load_before = loadavg();
  // Rounds: every resource, every engine, one shift each, alternating values so each one changes the VM.
  std::map<std::pair<int, int>, std::vector<double>> ms;  // (case, engine) -> latencies
  uint64_t id = 1;
  for (int i = 0; i < n; ++i) {
    for (int c = 0; c < 3; ++c) {
      for (int e = 0; e < 2; ++e) {
        const Case& k = cases[c];
        // The two engines set different values, so every shift changes what the one before it set.
        const int64_t v = e ? k.b : k.a;
        const auto t0 = std::chrono::steady_clock::now();
        ShiftOutcome out = engines[e].engine->shift({id++, bed.vm().name, {{k.r, v, {}}}, std::chrono::seconds(600)});
        const auto t1 = std::chrono::steady_clock::now();
        if (!out.ok() || out.in_force.value(k.r) != v) {
          std::fprintf(stderr, "shift %s=%lld failed or not in force: %s\n", k.name, static_cast<long long>(v),
                       out.ok() ? "read back differs" : out.error->what().c_str());
          return 1;
        }
        ms[{c, e}].push_back(Ms(t1 - t0).count());
      }
    }
  }
  std::printf("load average before: %s, after: %s (2 cores)\n", load_before.c_str(), loadavg().c_str());
  std::printf("%-6s %-8s %6s %10s %10s %10s   (ms, command -> value read back in force; %d rounds, interleaved)\n",
              "res", "readback", "n", "p50", "p99", "max", n);
  for (int c = 0; c < 3; ++c) {
    Stats s[2];
    for (int e = 0; e < 2; ++e) {
      s[e] = stats(ms[{c, e}]);
      std::printf("%-6s %-8s %6zu %10.2f %10.2f %10.2f\n", cases[c].name, engines[e].name, ms[{c, e}].size(), s[e].p50,
                  s[e].p99, s[e].max);
    }
    std::printf("%-6s %-8s %6s %9.2fx %9.2fx\n", cases[c].name, "ratio", "", s[0].p50 / s[1].p50, s[0].p99 / s[1].p99);
  }
  // The full engine captured its baselines after the first shifts of the other: end it first.
  full.controller_lost();
  changed.controller_lost();
  if (state) std::filesystem::remove(state_path);
  if (calls) time_calls((*mech)->connection(), bed.vm().name, n);
  return 0;
}
