// KpiProbes against the real kernel: the KPI programs loaded by a BpfRuntime and attached (tp_btf and the raw_tp
// fallback), a test cgroup registered as a VM, and busy children whose own kernel accounting
// (/proc/<pid>/schedstat, /proc/<pid>/stat) is the reference for on-CPU time, run-queue wait and faults.
#include "hostagent/probes/kpi_probes.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bpf/morph_kpi.h"
#include "common/kpi/derived.h"
#include "tests/support/requirements.h"
#include "tests/support/shell.h"

using morph::agent::BpfRuntime;
using morph::agent::BpfRuntimeOptions;
using morph::agent::KpiProbes;
using morph::agent::VmInfo;
using morph::kpi::VmKpis;
namespace kpi = morph::kpi;

namespace {

const char* kCgroup2 = "/sys/fs/cgroup/unified";

// A cgroup subtree like libvirt's: <root>/morph-test-PID with a child "vcpu0" holding the workers.
struct TestCgroup {
  std::string rel, root, leaf;
  TestCgroup() {
    rel = "/morph-test-" + std::to_string(getpid());
    root = kCgroup2 + rel;
    leaf = root + "/vcpu0";
    mkdir(root.c_str(), 0755);
    mkdir(leaf.c_str(), 0755);
  }
  ~TestCgroup() {
    rmdir(leaf.c_str());
    rmdir(root.c_str());
  }
  bool ok() const { return std::filesystem::is_directory(leaf); }
};

struct TaskRef {
  uint64_t run_ns = 0, wait_ns = 0, minflt = 0;
};

struct Worker {
  pid_t pid = -1;
  int go_fd = -1;
  uint64_t run0 = 0, wait0 = 0;  // its kernel accounting when it joined the test cgroup
};

double clock_s(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

// Forks a worker that waits for go(), then (optionally pinned) touches `touch_mib` of fresh memory, writes
// `direct_mib` with O_DIRECT to `direct_path`, and spins for `busy_ms` of wall time (or of its own CPU time
// with `cpu_time`, so the figure does not depend on how loaded the machine is).
Worker spawn(int cpu, int busy_ms, int touch_mib = 0, int direct_mib = 0, const std::string& direct_path = "",
             bool cpu_time = false) {
  int fds[2];
  if (pipe(fds) != 0) return {};
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[1]);
    char c;
    if (read(fds[0], &c, 1) != 1) _exit(1);
    if (cpu >= 0) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(cpu, &set);
      sched_setaffinity(0, sizeof(set), &set);
    }
    if (touch_mib) {
      size_t len = size_t(touch_mib) << 20;
      auto* p =
          static_cast<volatile char*>(mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
      for (size_t off = 0; off < len; off += 4096) p[off] = 1;
    }
    if (direct_mib) {
      int fd = open(direct_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT, 0600);
      void* buf = nullptr;
      if (fd < 0 || posix_memalign(&buf, 4096, 1 << 20) != 0) _exit(2);
      std::memset(buf, 0x5a, 1 << 20);
      for (int i = 0; i < direct_mib; i++)
        if (write(fd, buf, 1 << 20) != (1 << 20)) _exit(3);
      fsync(fd);
      close(fd);
    }
    const clockid_t clock = cpu_time ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC;
    double end = clock_s(clock) + busy_ms / 1000.0;
    volatile uint64_t x = 0;
    while (clock_s(clock) < end) x = x + 1;
    _exit(0);
  }
  close(fds[0]);
  if (cpu >= 0 && pid > 0) {
    // Pinned before it first waits as a member: this test is about sharing one CPU, not about moves.
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(pid, sizeof(set), &set);
  }
  return {pid, fds[1]};
}

void move_to(const std::string& cgroup_dir, pid_t pid) {
  std::ofstream(cgroup_dir + "/cgroup.procs") << pid << std::flush;
}

// Moves a worker into the cgroup and notes its kernel accounting then: the reference is what it does as a
// member (the run delay of its first scheduling after fork, which can be long on a loaded host, is not).
void join(const std::string& cgroup_dir, Worker& w) {
  // Once it sleeps waiting for go(): no wait of its is in progress across the move (the wakeup fallback
  // could not see one that began outside the cgroup).
  for (int i = 0; i < 400; i++) {
    std::ifstream statf("/proc/" + std::to_string(w.pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(statf)), {});
    const size_t paren = stat.rfind(')');
    if (paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'S') break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  move_to(cgroup_dir, w.pid);
  std::ifstream(("/proc/" + std::to_string(w.pid) + "/schedstat")) >> w.run0 >> w.wait0;
}

void go(Worker& w) {
  EXPECT_EQ(write(w.go_fd, "g", 1), 1);
  close(w.go_fd);
}

// Waits for the worker to exit, reads its accounting while it is a zombie, then reaps it.
// The absolute slack of the run-queue comparisons: the wakeup fallback (per-task stamps, as on kernels
// without sched_info) misses a few ms that the kernel's own run_delay has on a quiet host.
double wait_slack_ns(bool sched_info) {
  return sched_info ? 5e6 : 12e6;
}

TaskRef finish(const Worker& w) {
  TaskRef ref;
  siginfo_t info{};
  EXPECT_EQ(waitid(P_PID, w.pid, &info, WEXITED | WNOWAIT), 0);
  std::ifstream(("/proc/" + std::to_string(w.pid) + "/schedstat")) >> ref.run_ns >> ref.wait_ns;
  ref.run_ns -= std::min(ref.run_ns, w.run0);
  ref.wait_ns -= std::min(ref.wait_ns, w.wait0);
  std::ifstream statf("/proc/" + std::to_string(w.pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(statf)), {});
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));
  std::string field;
  for (int i = 3; i <= 10; i++) rest >> field;  // field 10 = minflt
  ref.minflt = std::stoull(field);
  int status = 0;
  waitpid(w.pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "worker status " << status;
  return ref;
}

// Attach mode and run-queue source: tp_btf and its raw_tp twin with sched_info (this kernel has it), and
// the wakeup fallback for kernels without sched_info.
struct Mode {
  bool raw_tp;
  bool sched_info;
  const char* name;
};

class KpiProbesTest : public ::testing::TestWithParam<Mode> {
 protected:
  void SetUp() override {
    MORPH_REQUIRE_BPF();
    ASSERT_TRUE(cg_.ok()) << "cannot create " << cg_.leaf;
    BpfRuntimeOptions opts;
    opts.kpi_programs.force_raw_tp = GetParam().raw_tp;
    opts.kpi_programs.sched_info = GetParam().sched_info;
    opts.policer = false;
    auto rt = BpfRuntime::load(opts);
    ASSERT_TRUE(rt.ok()) << rt.error().describe();
    runtime_ = *rt;
    auto p = KpiProbes::create(runtime_);
    ASSERT_TRUE(p.ok()) << p.error().describe();
    probes_ = std::move(p).value();
    EXPECT_STREQ(probes_->attach_mode(), GetParam().raw_tp ? "raw_tp" : "tp_btf");
    EXPECT_STREQ(probes_->runq_source(), GetParam().sched_info ? "sched_info" : "wakeup");
    vm_.uuid = "00000000-0000-0000-0000-0000000000aa";
    vm_.name = "test-vm";
    vm_.cgroup_path = cg_.rel;  // the leaf (vcpu0) is found as a descendant
    auto st = probes_->add_vm(vm_);
    ASSERT_TRUE(st.ok()) << st.error().describe();
  }

  VmKpis read_one() {
    auto r = probes_->read();
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(r->size(), 1u);
    return r->empty() ? VmKpis{} : r->front();
  }

  TestCgroup cg_;
  VmInfo vm_;
  std::shared_ptr<BpfRuntime> runtime_;
  std::unique_ptr<KpiProbes> probes_;
};

TEST_P(KpiProbesTest, OnCpuTimeFaultsAndBlockMatchTheKernel) {
  const std::string file = morph::test::binary_dir() + "/kpi_probes_test.direct." + std::to_string(getpid());
  (void)read_one();  // start of the measured interval
  Worker w = spawn(-1, 300, /*touch_mib=*/32, /*direct_mib=*/4, file, /*cpu_time=*/true);
  ASSERT_GT(w.pid, 0);
  join(cg_.leaf, w);
  go(w);
  TaskRef ref = finish(w);
  std::filesystem::remove(file);
  VmKpis k = read_one();

  // On-CPU: the growth of the kernel's sum_exec_runtime of the worker since it joined the cgroup.
  EXPECT_NEAR(double(k.cpu_run_ns), double(ref.run_ns), 0.05 * double(ref.run_ns) + 3e6)
      << "ours " << k.cpu_run_ns << " kernel " << ref.run_ns;
  EXPECT_GT(k.cpu_run_ns, 250'000'000u);
  // Run-queue wait: the growth of the kernel's run_delay since it joined (a wait in progress then counts
  // whole on both sides).
  EXPECT_NEAR(double(k.cpu_wait_ns), double(ref.wait_ns),
              0.10 * double(ref.wait_ns) + wait_slack_ns(GetParam().sched_info));
  const uint64_t hist_total = kpi::hist_count(k.runq_lat_us);
  // At least the wakeup by go(), when it waited at all: on an idle machine the kernel's own run_delay can
  // grow by 0 ns (woken onto an idle CPU on the same rq clock), and a zero wait is not a histogram sample.
  if (ref.wait_ns > 0) {
    EXPECT_GE(hist_total, 1u) << "kernel run_delay grew " << ref.wait_ns << " ns";
  }
  // Faults: 32 MiB touched page by page (some may be THP-backed, hence the lower bound of 1/4).
  EXPECT_GE(k.mem_minor_faults, 2048u);
  EXPECT_LE(k.mem_minor_faults, ref.minflt);
  // 4 MiB of O_DIRECT writes from the worker.
  EXPECT_GE(k.blk_write_bytes, 4u << 20) << "write ops " << k.blk_write_ops;
  EXPECT_GE(k.blk_write_ops, 1u);
  EXPECT_EQ(kpi::hist_count(k.blk_lat_us), kpi::blk_ops(k));
  std::printf(
      "on-cpu ours=%.1fms kernel=%.1fms | wait ours=%.2fms kernel=%.2fms | minflt ours=%llu task=%llu | "
      "blk write %llu B in %llu ops\n",
      k.cpu_run_ns / 1e6, ref.run_ns / 1e6, k.cpu_wait_ns / 1e6, ref.wait_ns / 1e6,
      (unsigned long long)k.mem_minor_faults, (unsigned long long)ref.minflt, (unsigned long long)k.blk_write_bytes,
      (unsigned long long)k.blk_write_ops);
}

TEST_P(KpiProbesTest, RunQueueWaitRisesWhenThreeShareOneCpu) {
  const int cpu = 1 % libbpf_num_possible_cpus();
  auto measure = [&](int n) {
    (void)read_one();
    std::vector<Worker> ws;
    for (int i = 0; i < n; i++) {
      ws.push_back(spawn(cpu, 600));
      join(cg_.leaf, ws.back());
    }
    for (auto& w : ws) go(w);
    uint64_t kernel_wait = 0, kernel_run = 0;
    for (auto& w : ws) {
      TaskRef r = finish(w);
      kernel_wait += r.wait_ns;
      kernel_run += r.run_ns;
    }
    VmKpis k = read_one();
    std::printf("%d busy on cpu %d: run ours=%.1fms kernel=%.1fms wait ours=%.1fms kernel=%.1fms\n", n, cpu,
                k.cpu_run_ns / 1e6, kernel_run / 1e6, k.cpu_wait_ns / 1e6, kernel_wait / 1e6);
    EXPECT_NEAR(double(k.cpu_wait_ns), double(kernel_wait),
                0.15 * double(kernel_wait) + wait_slack_ns(GetParam().sched_info));
    EXPECT_NEAR(double(k.cpu_run_ns), double(kernel_run), 0.05 * double(kernel_run) + 5e6);
    return kpi::runq_wait_per_run(k.cpu_run_ns, k.cpu_wait_ns);
  };
  double alone = measure(1);
  double shared = measure(3);
  // Three runnable tasks on one CPU: each waits about twice as long as it runs. The rise over the lone
  // worker only shows on a CPU it had mostly to itself: when other work already crowds that CPU, the lone
  // worker waits as much (the figures above still have to match the kernel's).
  EXPECT_GT(shared, 1.2);
  if (alone < 1.0) {
    EXPECT_GT(shared, alone + 0.5) << "wait/run alone " << alone << ", three sharing " << shared;
  }
}

TEST_P(KpiProbesTest, ThreadAlreadyRunningWhenItsCgroupIsMapped) {
  // A busy thread that has been running in a cgroup before the cgroup is registered (sched_switch has seen
  // and cached it as no VM's): from registration on, all of its CPU time counts.
  const std::string late_rel = cg_.rel + "-late", late = std::string(kCgroup2) + late_rel;
  ASSERT_EQ(mkdir(late.c_str(), 0755), 0) << late;
  // 700 ms of its own CPU time: at least 400 ms of it after the 300 ms wait below, however loaded the host.
  Worker w = spawn(0, 700, 0, 0, "", /*cpu_time=*/true);
  ASSERT_GT(w.pid, 0);
  join(late, w);
  go(w);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  VmInfo vm;
  vm.uuid = "00000000-0000-0000-0000-0000000000cc";
  vm.name = "late-vm";
  vm.cgroup_path = late_rel;
  uint64_t run_before = 0;
  std::ifstream("/proc/" + std::to_string(w.pid) + "/schedstat") >> run_before;
  auto st = probes_->add_vm(vm);
  ASSERT_TRUE(st.ok()) << st.error().describe();
  TaskRef ref = finish(w);
  // ref is since it joined the cgroup; `expected` since the cgroup was registered.
  const double expected = double(ref.run_ns) - double(run_before - w.run0);
  // Its parent can reap it before its CPU makes the final switch-out (exit_notify precedes it), and the
  // read-time credit needs the thread alive: its last slice shows up once that switch has happened. Sum
  // the reads (deltas) until it has, for at most 2 s.
  double ours = 0;
  for (int i = 0; i < 40 && ours < 0.95 * expected - 12e6; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto r = probes_->read();
    ASSERT_TRUE(r.ok());
    for (const auto& v : *r)
      if (v.uuid == vm.uuid) ours += double(v.cpu_run_ns);
  }
  std::printf("late: run ours=%.1fms kernel since registration=%.1fms, since joining=%.1fms\n", ours / 1e6,
              expected / 1e6, ref.run_ns / 1e6);
  EXPECT_GT(expected, 390e6);
  // Nothing after registration is lost; the slice running at registration counts whole (its part before
  // registration included: docs/kpis.md, cpu_run_ns), so at most everything since it joined.
  EXPECT_GE(ours, 0.95 * expected - 12e6);
  EXPECT_LE(ours, double(ref.run_ns) + 12e6);
  ASSERT_TRUE(probes_->remove_vm(vm.uuid).ok());
  rmdir(late.c_str());
}

TEST_P(KpiProbesTest, TapCountingAndCleanDetach) {
  const std::string a = "mkt" + std::to_string(getpid() % 100000), b = a + "p";
  auto link = morph::test::sh("ip link add " + a + " type veth peer name " + b + " && ip link set " + a +
                              " up && ip link set " + b + " up");
  ASSERT_EQ(link.status, 0) << link.out;
  const uint32_t ifindex = if_nametoindex(a.c_str());
  ASSERT_NE(ifindex, 0u);
  VmInfo net_vm;
  net_vm.uuid = "00000000-0000-0000-0000-0000000000bb";
  net_vm.name = "net-vm";
  net_vm.cgroup_path = cg_.rel;
  net_vm.taps.push_back({a, ifindex, ""});
  auto st = probes_->add_vm(net_vm);
  ASSERT_TRUE(st.ok()) << st.error().describe();

  auto attached = [&](bool ingress) {
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = int(ifindex), .attach_point = ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS);
    LIBBPF_OPTS(bpf_tc_opts, opts, .handle = MORPH_KPI_TC_HANDLE, .priority = MORPH_KPI_TC_PRIORITY);
    return bpf_tc_query(&hook, &opts) == 0;
  };
  EXPECT_TRUE(attached(true));
  EXPECT_TRUE(attached(false));

  // Crafted frames through the attached programs: egress = guest rx, ingress = guest tx.
  struct Row {
    bool egress;
    uint32_t len;
  } rows[] = {{true, 98}, {true, 1514}, {true, 60}, {false, 342}};
  const morph::agent::KpiObjects* objects = runtime_->kpi();
  for (const Row& r : rows) {
    std::vector<uint8_t> frame(r.len, 0);
    frame[12] = 0x08;  // EtherType IPv4
    frame[14] = 0x45;
    __sk_buff ctx{};
    ctx.ifindex = ifindex;
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_size_in = uint32_t(frame.size()),
                .ctx_in = &ctx, .ctx_size_in = sizeof(ctx));
    int fd = bpf_program__fd(r.egress ? objects->tc_egress : objects->tc_ingress);
    ASSERT_EQ(bpf_prog_test_run_opts(fd, &opts), 0);
    EXPECT_EQ(int(opts.retval), -1) << "TC_ACT_UNSPEC: later filters still run";
  }
  auto r = probes_->read();
  ASSERT_TRUE(r.ok());
  const VmKpis* k = nullptr;
  for (const auto& v : *r)
    if (v.uuid == net_vm.uuid) k = &v;
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->net_rx_pkts, 3u);
  EXPECT_EQ(k->net_rx_bytes, 98u + 1514 + 60);
  EXPECT_EQ(k->net_tx_pkts, 1u);
  EXPECT_EQ(k->net_tx_bytes, 342u);

  ASSERT_TRUE(probes_->remove_vm(net_vm.uuid).ok());
  EXPECT_FALSE(attached(true));
  EXPECT_FALSE(attached(false));
  morph::test::sh("ip link del " + a);
}

INSTANTIATE_TEST_SUITE_P(AttachModes, KpiProbesTest,
                         ::testing::Values(Mode{false, true, "tp_btf"}, Mode{true, true, "raw_tp"},
                                           Mode{false, false, "tp_btf_wakeup"}),
                         [](const auto& p) { return std::string(p.param.name); });

}  // namespace
