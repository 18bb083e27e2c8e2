// BPF cost per event: run_time_ns / run_cnt (kernel.bpf_stats_enabled) of Morph's KPI programs and, in the
// same run under the same load, of libbpf-tools' runqlat (/usr/sbin/runqlat), as the reference.
// Load: pipe ping-pong between two processes in a cgroup registered as a VM, so our programs take their
// full VM path (cgroup hit, task storage, histogram) on most context switches.
//
//   sudo build/tests/bench/bpf_cost_bench [windows=7] [window_ms=1000]
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <fcntl.h>
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
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "hostagent/probes/kpi_probes.h"
#include "morph_kpi_bpf.skel.h"

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

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int windows = argc > 1 ? std::atoi(argv[1]) : 7;
  const int window_ms = argc > 2 ? std::atoi(argv[2]) : 1000;
  int stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);  // on while the fd is open
  if (stats_fd < 0) {
    std::perror("bpf_enable_stats (needs root)");
    return 1;
  }
  const std::string rel = "/morph-bench-" + std::to_string(getpid());
  const std::string dir = "/sys/fs/cgroup/unified" + rel;
  mkdir(dir.c_str(), 0755);

  auto probes = morph::agent::KpiProbes::create();
  if (!probes) {
    std::fprintf(stderr, "%s\n", probes.error().what().c_str());
    return 1;
  }
  morph::agent::VmInfo vm;
  vm.uuid = vm.name = "bench";
  vm.cgroup_path = rel;
  if (auto st = (*probes)->add_vm(vm); !st) {
    std::fprintf(stderr, "%s\n", st.error().what().c_str());
    return 1;
  }
  const morph_kpi_bpf* skel = (*probes)->skeleton();
  std::map<uint32_t, std::string> ours;
  for (const bpf_program* p : {skel->progs.morph_sched_switch, skel->progs.morph_sched_wakeup,
                               skel->progs.morph_sched_wakeup_new, skel->progs.morph_block_io_start,
                               skel->progs.morph_block_rq_complete})
    if (uint32_t id = prog_id(p)) ours[id] = bpf_program__name(p);

  const std::set<uint32_t> before = all_prog_ids();
  pid_t runqlat = fork();
  if (runqlat == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    execl("/usr/sbin/runqlat", "runqlat", "3600", "1", nullptr);
    _exit(127);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  std::set<uint32_t> theirs;
  for (uint32_t id : all_prog_ids())
    if (!before.count(id)) theirs.insert(id);
  if (theirs.empty()) std::fprintf(stderr, "runqlat's programs not found (is /usr/sbin/runqlat installed?)\n");

  pid_t load = ping_pong(dir);
  std::set<uint32_t> ids = theirs;
  for (auto& [id, n] : ours) ids.insert(id);
  std::map<uint32_t, std::vector<double>> per_event;
  std::map<uint32_t, std::vector<double>> rate;
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto prev = read_stats(ids);
  for (int w = 0; w < windows; w++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(window_ms));
    auto cur = read_stats(ids);
    for (auto& [id, s] : cur) {
      uint64_t runs = s.runs - prev[id].runs, ns = s.run_ns - prev[id].run_ns;
      if (runs) per_event[id].push_back(double(ns) / double(runs));
      rate[id].push_back(double(runs) * 1000.0 / window_ms);
    }
    prev = cur;
  }
  // Both ping-pong processes live in the bench cgroup: cgroup.kill ends them together.
  std::ofstream(dir + "/cgroup.kill") << "1" << std::flush;
  waitpid(load, nullptr, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  kill(runqlat, SIGINT);
  waitpid(runqlat, nullptr, 0);

  std::printf("BPF cost per event, median of %d windows of %d ms, pipe ping-pong load in a VM cgroup (%s)\n",
              windows, window_ms, (*probes)->attach_mode());
  std::printf("%-6s %-28s %12s %14s\n", "who", "program", "ns/event", "events/s");
  std::map<std::string, double> theirs_by_name;
  for (uint32_t id : theirs) {
    const std::string name = read_stats({id})[id].name;
    double m = median(per_event[id]);
    theirs_by_name[name] = m;
    std::printf("%-6s %-28s %12.1f %14.0f\n", "runqlat", name.c_str(), m, median(rate[id]));
  }
  for (auto& [id, name] : ours) {
    double m = median(per_event[id]);
    std::printf("%-6s %-28s %12.1f %14.0f", "morph", name.c_str(), m, median(rate[id]));
    for (auto& [tname, tm] : theirs_by_name) {
      // Same tracepoint: runqlat names its programs sched_switch / sched_wakeup / sched_wakeup_ne(w).
      if (tm > 0 && name.find(tname) != std::string::npos && name.size() - tname.size() <= 7)
        std::printf("   ours/runqlat %.2f", m / tm);
    }
    std::printf("\n");
  }
  (void)(*probes)->remove_vm("bench");
  rmdir(dir.c_str());
  close(stats_fd);
  return 0;
}
