// BPF cost per event: run_time_ns / run_cnt (kernel.bpf_stats_enabled) of Morph's KPI programs and, in the
// same run under the same load, of libbpf-tools' runqlat (/usr/sbin/runqlat), as the reference.
// Load: pipe ping-pong between two processes in a cgroup registered as a VM, so our programs take their
// full VM path (slot hit on both sides, CPU time, faults, run-queue wait) on most context switches.
//
// Phases:
//  1. `runs` runs, each with a fresh KpiProbes (default: sched_info) and a fresh runqlat, `windows` windows
//     each: per program ns/event and events/s, and the sched_switch-path total per context switch (every
//     scheduler program of the tool, weighted by its events, over the switches), ours and runqlat's.
//  2. The same without the per-task run_delay baseline (KpiProgramOptions::runq_baseline = false), `runs` runs.
//  3. One run of the wakeup fallback (KpiProgramOptions::sched_info = false), same load, with runqlat.
//  4. The floor: tests/bench/bpf_cost_floor.bpf.c, one ingredient of the switch path per program.
//
//   sudo build/tests/bench/bpf_cost_bench [runs=5] [windows=5] [window_ms=1000]
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bpf_cost_floor.skel.h"
#include "hostagent/probes/kpi_probes.h"
#include "tests/support/process.h"

namespace {

struct ProgStat {
  std::string name;
  uint64_t run_ns = 0, runs = 0;
};

std::map<uint32_t, ProgStat> read_stats(const std::set<uint32_t>& ids) {
  std::map<uint32_t, ProgStat> out;
  for (uint32_t id : ids) {
    int fd = bpf_prog_get_fd_by_id(id);
    if (fd < 0) continue;
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) out[id] = {info.name, info.run_time_ns, info.run_cnt};
    close(fd);
  }
  return out;
}

std::set<uint32_t> all_prog_ids() {
  std::set<uint32_t> ids;
  for (uint32_t id = 0; bpf_prog_get_next_id(id, &id) == 0;) ids.insert(id);
  return ids;
}

uint32_t prog_id(const bpf_program* p) {
  if (bpf_program__fd(p) < 0) return 0;  // not loaded
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  return bpf_obj_get_info_by_fd(bpf_program__fd(p), &info, &len) == 0 ? info.id : 0;
}

pid_t ping_pong(const std::string& cgroup_dir) {
  pid_t pid = fork();
  if (pid == 0) {
    std::ofstream(cgroup_dir + "/cgroup.procs") << getpid() << std::flush;
    int ab[2], ba[2];
    if (pipe(ab) || pipe(ba)) _exit(1);
    char c = 0;
    if (fork() == 0) {
      while (read(ab[0], &c, 1) == 1)
        if (write(ba[1], &c, 1) != 1) break;
      _exit(0);
    }
    for (;;) {
      if (write(ab[1], &c, 1) != 1 || read(ba[0], &c, 1) != 1) break;
    }
    _exit(0);
  }
  return pid;
}

void stop_load(const std::string& dir, pid_t load) {
  // Both ping-pong processes live in the bench cgroup: cgroup.kill ends them together.
  std::ofstream(dir + "/cgroup.kill") << "1" << std::flush;
  waitpid(load, nullptr, 0);
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

bool is_sched(const std::string& name) {
  return name.find("sched_") != std::string::npos || name.find("runq") != std::string::npos;
}
bool is_switch(const std::string& name) {
  return name.find("sched_switch") != std::string::npos;
}

struct RunResult {
  std::map<std::string, double> ours_ns, ours_rate, theirs_ns, theirs_rate;
  double ours_path = 0, theirs_path = 0;
};

// libbpf-tools' runqlat for an hour (stopped with SIGINT, as at a terminal), its output discarded.
std::unique_ptr<morph::test::ChildProcess> start_runqlat() {
  return std::make_unique<morph::test::ChildProcess>(std::vector<std::string>{"/usr/sbin/runqlat", "3600", "1"},
                                                     "/dev/null", morph::test::ChildOptions{.stop_signal = SIGINT});
}

// One run: our probes (with `opts`) and runqlat attached together, the ping-pong load, `windows` windows.
bool one_run(const morph::agent::KpiProgramOptions& opts, const std::string& rel, const std::string& dir, int windows,
             int window_ms, RunResult& r, std::string& mode) {
  // The KPI programs as the agent loads them; the policer has no program on sched_switch.
  auto runtime = morph::agent::BpfRuntime::load({.kpi_programs = opts, .policer = false});
  if (!runtime) {
    std::fprintf(stderr, "%s\n", runtime.error().what().c_str());
    return false;
  }
  auto probes = morph::agent::KpiProbes::create(*runtime);
  if (!probes) {
    std::fprintf(stderr, "%s\n", probes.error().what().c_str());
    return false;
  }
  morph::agent::VmInfo vm;
  vm.uuid = vm.name = "bench";
  vm.cgroup_path = rel;
  if (auto st = (*probes)->add_vm(vm); !st) {
    std::fprintf(stderr, "%s\n", st.error().what().c_str());
    return false;
  }
  mode = std::string((*probes)->attach_mode()) + ", run-queue wait from " + (*probes)->runq_source();
  std::set<uint32_t> ours;
  std::map<uint32_t, std::string> our_names;  // full names (the kernel keeps 15 characters)
  for (const bpf_program* p : (*runtime)->kpi()->tracing)
    if (uint32_t id = prog_id(p)) {
      ours.insert(id);
      our_names[id] = bpf_program__name(p);
    }

  const std::set<uint32_t> before = all_prog_ids();
  auto runqlat = start_runqlat();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  // runqlat's programs: the new ones named after its tracepoints (another tool starting meanwhile, e.g. an
  // agent, is left out).
  std::set<uint32_t> theirs;
  std::set<uint32_t> fresh;
  for (uint32_t id : all_prog_ids())
    if (!before.count(id)) fresh.insert(id);
  for (auto& [id, st] : read_stats(fresh))
    if (st.name.rfind("sched_", 0) == 0 || st.name.rfind("handle_", 0) == 0) theirs.insert(id);
  if (theirs.empty()) std::fprintf(stderr, "runqlat's programs not found (is /usr/sbin/runqlat installed?)\n");

  pid_t load = ping_pong(dir);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::set<uint32_t> both = ours;
  both.insert(theirs.begin(), theirs.end());
  // Our and their windows are the same windows: sample both sets at once, split by id afterwards.
  auto prev = read_stats(both);
  std::map<uint32_t, std::vector<double>> ns, rate;
  std::vector<double> our_path, their_path;
  for (int w = 0; w < windows; w++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(window_ms));
    auto cur = read_stats(both);
    double o_ns = 0, o_sw = 0, t_ns = 0, t_sw = 0;
    for (auto& [id, s] : cur) {
      const uint64_t runs = s.runs - prev[id].runs, d = s.run_ns - prev[id].run_ns;
      if (runs) ns[id].push_back(double(d) / double(runs));
      rate[id].push_back(double(runs) * 1000.0 / window_ms);
      const bool mine = ours.count(id);
      const std::string& name = mine ? our_names[id] : s.name;
      if (is_sched(name)) (mine ? o_ns : t_ns) += double(d);
      if (is_switch(name)) (mine ? o_sw : t_sw) += double(runs);
    }
    if (o_sw > 0) our_path.push_back(o_ns / o_sw);
    if (t_sw > 0) their_path.push_back(t_ns / t_sw);
    prev = cur;
  }
  stop_load(dir, load);
  runqlat->stop(SIGINT);
  for (uint32_t id : ours) {
    const std::string& name = our_names[id];
    r.ours_ns[name] = median(ns[id]);
    r.ours_rate[name] = median(rate[id]);
  }
  // runqlat's programs are gone once it exits: name them by what prev held.
  for (uint32_t id : theirs) {
    const std::string name = prev.count(id) ? prev[id].name : std::to_string(id);
    r.theirs_ns[name] = median(ns[id]);
    r.theirs_rate[name] = median(rate[id]);
  }
  r.ours_path = median(our_path);
  r.theirs_path = median(their_path);
  (void)(*probes)->remove_vm("bench");
  return true;
}

// Phase 3: the floor programs on the same load, the bench cgroup given a slot in both lookup maps (hits).
void floor_phase(const std::string& dir, int windows, int window_ms) {
  bpf_cost_floor* skel = bpf_cost_floor__open_and_load();
  if (!skel) {
    std::perror("loading bpf_cost_floor.bpf.o");
    return;
  }
  const uint32_t slot = 7;
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    bpf_map__update_elem(skel->maps.floor_cgrp, &fd, sizeof(fd), &slot, sizeof(slot), BPF_ANY);
    close(fd);
  }
  if (auto id = morph::agent::cgroup_id_of(dir); id)
    bpf_map__update_elem(skel->maps.floor_hash, &*id, sizeof(*id), &slot, sizeof(slot), BPF_ANY);
  if (bpf_cost_floor__attach(skel) != 0) {
    std::perror("attaching bpf_cost_floor");
    bpf_cost_floor__destroy(skel);
    return;
  }
  std::set<uint32_t> ids;
  std::vector<std::pair<std::string, uint32_t>> order;
  bpf_program* p = nullptr;
  bpf_object__for_each_program(p, skel->obj) {
    if (uint32_t id = prog_id(p)) {
      ids.insert(id);
      order.emplace_back(bpf_program__name(p), id);
    }
  }
  pid_t load = ping_pong(dir);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto prev = read_stats(ids);
  std::map<uint32_t, std::vector<double>> ns;
  for (int w = 0; w < windows; w++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(window_ms));
    auto cur = read_stats(ids);
    for (auto& [id, s] : cur)
      if (uint64_t runs = s.runs - prev[id].runs) ns[id].push_back(double(s.run_ns - prev[id].run_ns) / double(runs));
    prev = cur;
  }
  stop_load(dir, load);
  bpf_cost_floor__destroy(skel);
  std::printf("\nFloor on sched_switch, same load, median of %d windows (each program adds one ingredient to f1):\n",
              windows);
  const double base = median(ns[order.front().second]);
  for (auto& [name, id] : order) {
    const double m = median(ns[id]);
    std::printf("  %-16s %8.1f ns/event   (+%.1f over f1_empty)\n", name.c_str(), m, m - base);
  }
}

void print_run_table(const std::vector<RunResult>& runs) {
  std::map<std::string, std::vector<double>> ons, orate, tns, trate;
  std::vector<double> opath, tpath, ratio;
  for (const RunResult& r : runs) {
    for (auto& [n, v] : r.ours_ns) ons[n].push_back(v);
    for (auto& [n, v] : r.ours_rate) orate[n].push_back(v);
    for (auto& [n, v] : r.theirs_ns) tns[n].push_back(v);
    for (auto& [n, v] : r.theirs_rate) trate[n].push_back(v);
    opath.push_back(r.ours_path);
    tpath.push_back(r.theirs_path);
    if (r.theirs_path > 0) ratio.push_back(r.ours_path / r.theirs_path);
  }
  std::printf("%-8s %-24s %12s %14s\n", "who", "program", "ns/event", "events/s");
  for (auto& [n, v] : tns) std::printf("%-8s %-24s %12.1f %14.0f\n", "runqlat", n.c_str(), median(v), median(trate[n]));
  for (auto& [n, v] : ons) std::printf("%-8s %-24s %12.1f %14.0f\n", "morph", n.c_str(), median(v), median(orate[n]));
  std::printf("sched_switch path per context switch: morph %.1f ns, runqlat %.1f ns, morph/runqlat %.2f", median(opath),
              median(tpath), median(ratio));
  if (runs.size() > 1) {
    std::printf("   (per run: morph");
    for (double v : opath) std::printf(" %.1f", v);
    std::printf("; runqlat");
    for (double v : tpath) std::printf(" %.1f", v);
    std::printf(")");
  }
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  const int runs = argc > 1 ? std::atoi(argv[1]) : 5;
  const int windows = argc > 2 ? std::atoi(argv[2]) : 5;
  const int window_ms = argc > 3 ? std::atoi(argv[3]) : 1000;
  if (runs < 1 || windows < 1 || window_ms < 10) {
    std::fprintf(stderr, "usage: bpf_cost_bench [runs>=1] [windows>=1] [window_ms>=10]\n");
    return 2;
  }
  int stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);  // on while the fd is open
  if (stats_fd < 0) {
    std::perror("bpf_enable_stats (needs root)");
    return 1;
  }
  const std::string rel = "/morph-bench-" + std::to_string(getpid());
  const std::string dir = "/sys/fs/cgroup/unified" + rel;
  mkdir(dir.c_str(), 0755);

  std::vector<RunResult> results;
  std::string mode;
  for (int i = 0; i < runs; i++) {
    RunResult r;
    if (!one_run({}, rel, dir, windows, window_ms, r, mode)) return 1;
    results.push_back(r);
  }
  // Without the per-task run_delay baseline (KpiProgramOptions::runq_baseline = false): what it costs.
  morph::agent::KpiProgramOptions lean;
  lean.runq_baseline = false;
  std::vector<RunResult> lean_results;
  std::string lean_mode;
  for (int i = 0; i < runs; i++) {
    RunResult r;
    if (!one_run(lean, rel, dir, windows, window_ms, r, lean_mode)) return 1;
    lean_results.push_back(r);
  }
  morph::agent::KpiProgramOptions fallback;
  fallback.sched_info = false;
  RunResult fb;
  std::string fb_mode;
  const bool have_fb = one_run(fallback, rel, dir, windows, window_ms, fb, fb_mode);

  std::printf(
      "\nBPF cost per event, pipe ping-pong load in a VM cgroup; %d runs x %d windows of %d ms, medians "
      "(of each run's window median)\n",
      runs, windows, window_ms);
  std::printf("\n[%s]\n", mode.c_str());
  print_run_table(results);
  std::printf("\n[%s]\n", lean_mode.c_str());
  print_run_table(lean_results);
  if (have_fb) {
    std::printf("\n[%s] (1 run)\n", fb_mode.c_str());
    print_run_table({fb});
  }
  floor_phase(dir, windows, window_ms);
  rmdir(dir.c_str());
  close(stats_fd);
  return 0;
}
