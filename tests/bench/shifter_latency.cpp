// shifter_latency: time from a shift command entering the engine to its value being in force and read
// back (ShiftEngine::shift returns only after reading libvirt / the policer), per resource, on a fresh
// test-bed VM. Prints p50/p99 over N alternating shifts per resource.
//   sudo build/tests/bench/shifter_latency [N]
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "hostagent/shifter/libvirt_mechanisms.h"
#include "hostagent/shifter/net_policer.h"
#include "hostagent/shifter/shift_engine.h"
#include "tests/e2e/shifter_testbed.h"

using namespace morph::agent::shifter;

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 50;
  spdlog::set_level(spdlog::level::warn);
  morph::test::ShiftTestbed bed("bench");
  if (!bed.error().empty()) {
    std::fprintf(stderr, "shifter_latency: %s\n", bed.error().c_str());
    return 77;
  }
  auto policer = NetPolicer::open({.pin_dir = ""});
  if (!policer) {
    std::fprintf(stderr, "shifter_latency: %s\n", policer.error().what().c_str());
    return 1;
  }
  auto mech = LibvirtMechanisms::connect({}, policer->get());
  if (!mech) {
    std::fprintf(stderr, "shifter_latency: %s\n", mech.error().what().c_str());
    return 1;
  }
  ShiftEngine engine(**mech, [] { return WallClock::now(); }, {});
  bed.load("cpu=50");  // a guest doing something, as in production

  struct Case {
    const char* name;
    Resource r;
    int64_t a, b;
  };
  const Case cases[] = {{"cpu", Resource::cpu_millicores, 200, 800},
                        {"disk", Resource::disk_iops, 100, 200},
                        {"net", Resource::net_out_kbps, 10000, 20000}};
  uint64_t id = 1;
  std::printf("%-6s %6s %10s %10s %10s   (ms, command -> value read back in force; %d shifts)\n", "res", "n", "p50",
              "p99", "max", n);
  for (const Case& c : cases) {
    std::vector<double> ms;
    for (int i = 0; i < n; ++i) {
      const int64_t v = i % 2 ? c.b : c.a;
      const auto t0 = std::chrono::steady_clock::now();
      ShiftOutcome out = engine.shift({id++, bed.vm(), {{c.r, v, {}}}, std::chrono::seconds(60)});
      const auto t1 = std::chrono::steady_clock::now();
      if (!out.ok() || out.in_force.value(c.r) != v) {
        std::fprintf(stderr, "shift %s=%lld failed or not in force: %s\n", c.name, static_cast<long long>(v),
                     out.ok() ? "read back differs" : out.error->what().c_str());
        return 1;
      }
      ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    auto pct = [&](double p) { return ms[std::min(ms.size() - 1, static_cast<size_t>(p * static_cast<double>(ms.size())))]; };
    std::printf("%-6s %6zu %10.2f %10.2f %10.2f\n", c.name, ms.size(), pct(0.50), pct(0.99), ms.back());
  }
  engine.controller_lost();
  return 0;
}
