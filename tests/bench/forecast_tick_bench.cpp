// forecast_tick_bench: what forecasting costs the controller per tick. For N VMs (default 20,000), one tick
// feeds every VM its demand for the step that ended (DemandModel::observe, where the learned forecaster also
// learns) and asks every VM's forecast at one horizon (forecast), as a predictive-bid pass would. Timed per
// tick on one core (the thread is pinned), for the learned forecaster and, interleaved tick by tick so all
// see the same machine, the baselines: last value (the cheapest possible), EWMA, moving average and VPA's
// decaying histogram. Prints median and p99 per tick of wall time and of the thread's CPU time (which a
// loaded machine inflates less: the wall time includes waits for the core), CPU ns per VM, and the heap
// each model's per-VM state takes.
//
// Demand: a PlanetLab trace (--trace; VM i replays trace VM i mod n from a step offset that differs per
// copy) or, without one, a seeded synthetic mix of levels, noise and spikes.
//
//   forecast_tick_bench [--vms 20000] [--ticks 300] [--warmup 50] [--horizon 6] [--cpu 1] [--trace FILE]
#include <malloc.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "controller/forecast/baselines.h"
#include "controller/forecast/cli/trace.h"
#include "controller/forecast/quantile_forecaster.h"

using namespace morph::forecast;
using Clock = std::chrono::steady_clock;

namespace {

std::string loadavg() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

// Bytes the heap has handed out: a model's per-VM state is all on the heap.
size_t heap_in_use() {
  return mallinfo2().uordblks;
}

double thread_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

double quantile_of(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

// demand[t][vm] in millicores, for `ticks` steps.
std::vector<std::vector<float>> make_demand(size_t vms, size_t ticks, const std::string& trace_path) {
  std::vector<std::vector<float>> d(ticks, std::vector<float>(vms));
  if (!trace_path.empty()) {
    auto trace = read_trace(trace_path);
    if (!trace) {
      std::fprintf(stderr, "forecast_tick_bench: %s\n", trace.error().what().c_str());
      std::exit(1);
    }
    const size_t n = trace->vms.size();
    for (size_t v = 0; v < vms; ++v) {
      const auto& s = trace->cpu_pct[v % n];
      const size_t offset = (v / n) * 17;
      for (size_t t = 0; t < ticks; ++t) d[t][v] = static_cast<float>(pct_to_millicores(s[(t + offset) % s.size()]));
    }
    return d;
  }
  std::mt19937 rng(14);
  std::uniform_real_distribution<double> level(0, 800);
  std::normal_distribution<double> noise(0, 60);
  for (size_t v = 0; v < vms; ++v) {
    double l = level(rng);
    for (size_t t = 0; t < ticks; ++t) {
      if (rng() % 50 == 0) l = level(rng);
      const double spike = rng() % 20 == 0 ? 400 : 0;
      d[t][v] = static_cast<float>(std::clamp(l + noise(rng) + spike, 0.0, 1000.0));
    }
  }
  return d;
}

}  // namespace

int main(int argc, char** argv) {
  size_t vms = 20000, ticks = 300, warmup = 50;
  int horizon = 6, cpu = 1;
  std::string trace;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--vms")
      vms = std::strtoul(argv[i + 1], nullptr, 10);
    else if (k == "--ticks")
      ticks = std::strtoul(argv[i + 1], nullptr, 10);
    else if (k == "--warmup")
      warmup = std::strtoul(argv[i + 1], nullptr, 10);
    else if (k == "--horizon")
      horizon = std::atoi(argv[i + 1]);
    else if (k == "--cpu")
      cpu = std::atoi(argv[i + 1]);
    else if (k == "--trace")
      trace = argv[i + 1];
    else {
      std::fprintf(stderr, "usage: %s [--vms N] [--ticks N] [--warmup N] [--horizon H] [--cpu C] [--trace FILE]\n",
                   argv[0]);
      return 2;
    }
  }
  if (vms == 0 || ticks == 0 || horizon < 1 || horizon > 6) {
    std::fprintf(stderr, "forecast_tick_bench: --vms and --ticks must be positive, --horizon 1..6\n");
    return 2;
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) {
    std::fprintf(stderr, "forecast_tick_bench: cannot pin to cpu %d: %s\n", cpu, std::strerror(errno));
    return 1;
  }
  const auto demand = make_demand(vms, warmup + ticks, trace);

  std::vector<std::unique_ptr<DemandModel>> models;
  std::vector<double> bytes_per_vm;
  const auto add = [&](std::unique_ptr<DemandModel> m) {
    const size_t before = heap_in_use();
    m->resize(vms);
    for (size_t v = 0; v < vms; ++v) m->observe(v, demand[0][v]);
    bytes_per_vm.push_back(static_cast<double>(heap_in_use() - before) / static_cast<double>(vms));
    models.push_back(std::move(m));
  };
  add(std::make_unique<QuantileForecaster>());
  add(std::make_unique<LastValueModel>());
  add(std::make_unique<EwmaModel>(6));
  add(std::make_unique<MovingAverageModel>(12));
  add(std::make_unique<DecayingHistogramModel>());

  const std::string load_before = loadavg();
  std::vector<std::vector<double>> wall_ms(models.size()), cpu_ms(models.size());
  double sink = 0;  // keeps the forecasts alive
  for (size_t t = 1; t < warmup + ticks; ++t) {
    for (size_t i = 0; i < models.size(); ++i) {
      DemandModel& m = *models[i];
      const auto start = Clock::now();
      const double cpu_start = thread_cpu_ms();
      for (size_t v = 0; v < vms; ++v) m.observe(v, demand[t][v]);
      for (size_t v = 0; v < vms; ++v) sink += m.forecast(v, horizon).p90;
      const double used = thread_cpu_ms() - cpu_start;
      const double wall = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
      if (t >= warmup) {
        wall_ms[i].push_back(wall);
        cpu_ms[i].push_back(used);
      }
    }
  }
  std::printf("forecast_tick_bench: %zu VMs, %zu ticks timed after %zu, horizon %d, pinned to cpu %d, %s demand\n", vms,
              ticks, warmup, horizon, cpu, trace.empty() ? "synthetic" : trace.c_str());
  std::printf("%-14s %22s %22s %12s %12s\n", "", "wall ms/tick", "cpu ms/tick", "cpu ns/VM", "heap/VM");
  std::printf("%-14s %11s %10s %11s %10s %12s %12s\n", "model", "p50", "p99", "p50", "p99", "p50", "bytes");
  for (size_t i = 0; i < models.size(); ++i) {
    const double cpu50 = quantile_of(cpu_ms[i], 0.5);
    std::printf("%-14s %11.3f %10.3f %11.3f %10.3f %12.1f %12.0f\n", models[i]->name().c_str(),
                quantile_of(wall_ms[i], 0.5), quantile_of(wall_ms[i], 0.99), cpu50, quantile_of(cpu_ms[i], 0.99),
                cpu50 * 1e6 / static_cast<double>(vms), bytes_per_vm[i]);
  }
  std::printf("load average before: %s, after: %s (%ld cores)\n", load_before.c_str(), loadavg().c_str(),
              sysconf(_SC_NPROCESSORS_ONLN));
  return sink < 0 ? 1 : 0;
}
