#include "tests/support/testbed.h"

#include <libvirt/virterror.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string_view>

namespace morph::test {

namespace {

// The down commands of the beds alive in this process, for a fatal signal: the beds are gone with the
// process, and VMs left behind would load the machine for everyone. Fixed buffers: no allocation in the
// handler.
constexpr size_t kMaxBeds = 8;
std::array<std::array<char, 512>, kMaxBeds> g_down{};

void down_all_and_die(int sig) {
  for (auto& cmd : g_down)
    if (cmd[0] != '\0' && std::system(cmd.data()) != 0) {
    }
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

void remember_down(const std::string& cmd) {
  static bool installed = false;
  if (!installed) {
    for (int sig : {SIGINT, SIGTERM, SIGABRT, SIGSEGV}) std::signal(sig, down_all_and_die);
    installed = true;
  }
  for (auto& slot : g_down)
    if (slot[0] == '\0') {
      std::snprintf(slot.data(), slot.size(), "%s >/dev/null 2>&1", cmd.c_str());
      return;
    }
}

void forget_down(const std::string& cmd) {
  const std::string full = cmd + " >/dev/null 2>&1";
  for (auto& slot : g_down)
    if (full == slot.data()) slot[0] = '\0';
}

std::string down_command(const std::string& script, const std::string& prefix) {
  return script + " down --prefix " + prefix;
}

}  // namespace

std::string unique_prefix(const std::string& tag) {
  return tag + "-" + std::to_string(getpid());
}

Testbed::Testbed(BedSpec spec) : spec_(std::move(spec)), script_(source_dir() + "/scripts/testbed") {
  if (!is_root())
    unavailable_ = "the test bed needs root (run as root or via scripts/test)";
  else if (spec_.needs_bpf)
    unavailable_ = bpf_unavailable_reason();
  if (unavailable_.empty()) unavailable_ = libvirtd_unavailable_reason();
  if (!unavailable_.empty()) return;
  remember_down(down_command(script_, spec_.prefix));
  std::string args;
  for (const auto& a : spec_.up_args) args += " " + a;
  const auto t0 = std::chrono::steady_clock::now();
  ShellResult r = sh(script_ + " up " + std::to_string(spec_.vms) + " --prefix " + spec_.prefix + args);
  up_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!r.ok()) {
    error_ = "scripts/testbed up failed (run scripts/testbed prepare first?): " + r.out;
    return;
  }
  error_ = read_facts();
  if (error_.empty() && vms_.size() != size_t(spec_.vms))
    error_ = "the bed has " + std::to_string(vms_.size()) + " VMs, not " + std::to_string(spec_.vms);
  virSetErrorFunc(nullptr, [](void*, virErrorPtr) {});
  conn_ = virConnectOpen("qemu:///system");
  if (conn_ == nullptr && error_.empty()) error_ = "cannot connect to qemu:///system";
  if (error_.empty()) std::printf("test bed %s: %d VMs up in %.1f s\n", spec_.prefix.c_str(), spec_.vms, up_seconds_);
}

Testbed::~Testbed() {
  if (conn_ != nullptr) virConnectClose(conn_);
  if (!unavailable_.empty()) return;
  const std::string down = down_command(script_, spec_.prefix);
  ShellResult r = sh(down);
  if (!r.ok()) std::fprintf(stderr, "%s failed: %s\n", down.c_str(), r.out.c_str());
  forget_down(down);
}

std::string Testbed::dir() const {
  return "/var/lib/morph-testbed/" + spec_.prefix;
}

std::string Testbed::read_facts() {
  vms_.clear();
  std::error_code ec;
  for (const auto& f : std::filesystem::directory_iterator(dir() + "/vms", ec)) {
    if (f.path().extension() != ".env") continue;
    BedVm vm;
    std::ifstream in(f.path());
    for (std::string line; std::getline(in, line);)
      if (auto eq = line.find('='); eq != std::string::npos) vm.env[line.substr(0, eq)] = line.substr(eq + 1);
    auto fact = [&](const char* key) { return vm.env.count(key) ? vm.env[key] : std::string(); };
    vm.name = fact("NAME");
    vm.uuid = fact("UUID");
    vm.tap = fact("TAP");
    vm.host_ip = fact("HOST_IP");
    vm.guest_ip = fact("GUEST_IP");
    vm.owner = fact("OWNER");
    vm.sla = fact("SLA");
    vm.ctl_dir = fact("CTL_DIR");
    vm.disk = fact("DISK");
    vm.console = fact("CONSOLE");
    vm.index = std::atoi(fact("INDEX").c_str());
    if (vm.name.empty() || vm.uuid.empty() || vm.tap.empty()) return "incomplete facts in " + f.path().string();
    vms_.push_back(std::move(vm));
  }
  if (ec) return "cannot read " + dir() + "/vms: " + ec.message();
  std::sort(vms_.begin(), vms_.end(), [](const BedVm& a, const BedVm& b) { return a.index < b.index; });
  return {};
}

ShellResult Testbed::add(int n) {
  ShellResult r = sh(script_ + " up " + std::to_string(n) + " --prefix " + spec_.prefix);
  if (r.ok())
    if (std::string why = read_facts(); !why.empty()) r = {1, why};
  return r;
}

ShellResult Testbed::load(size_t i, const std::string& targets) const {
  if (i >= vms_.size()) return {-1, "the bed has no VM " + std::to_string(i)};
  return sh(script_ + " load " + vms_[i].name + " " + targets);
}

bool Testbed::load_all(const std::string& targets) const {
  bool ok = true;
  for (size_t i = 0; i < vms_.size(); ++i) ok = load(i, targets).ok() && ok;
  return ok;
}

virDomainPtr Testbed::domain(size_t i) const {
  return conn_ != nullptr && i < vms_.size() ? virDomainLookupByName(conn_, vms_[i].name.c_str()) : nullptr;
}

uint64_t Testbed::vcpu_time_ns(size_t i) const {
  virDomainPtr d = domain(i);
  if (d == nullptr) return 0;
  std::vector<virVcpuInfo> info(64);
  int n = virDomainGetVcpus(d, info.data(), static_cast<int>(info.size()), nullptr, 0);
  virDomainFree(d);
  uint64_t sum = 0;
  for (int k = 0; k < n; ++k) sum += info[static_cast<size_t>(k)].cpuTime;
  return sum;
}

uint64_t Testbed::vm_cpu_time_ns(size_t i) const {
  virDomainPtr d = domain(i);
  if (d == nullptr) return 0;
  virTypedParameter params[4];
  // start_cpu -1, ncpus 1: the domain's totals (cpu_time: its cgroup's, every thread of the QEMU process).
  const int n = virDomainGetCPUStats(d, params, 4, -1, 1, 0);
  virDomainFree(d);
  for (int k = 0; k < n; ++k)
    if (std::string_view(params[k].field) == VIR_DOMAIN_CPU_STATS_CPUTIME) return params[k].value.ul;
  return 0;
}

namespace {

virDomainBlockStatsStruct block_stats(virDomainPtr d) {
  virDomainBlockStatsStruct s{};
  if (d != nullptr) {
    virDomainBlockStats(d, "vda", &s, sizeof s);
    virDomainFree(d);
  }
  return s;
}

uint64_t positive(long long v) {
  return v > 0 ? static_cast<uint64_t>(v) : 0;
}

}  // namespace

uint64_t Testbed::disk_read_reqs(size_t i) const {
  return positive(block_stats(domain(i)).rd_req);
}

uint64_t Testbed::disk_read_bytes(size_t i) const {
  return positive(block_stats(domain(i)).rd_bytes);
}

uint64_t Testbed::tap_rx_bytes(size_t i) const {
  virDomainPtr d = domain(i);
  if (d == nullptr) return 0;
  virDomainInterfaceStatsStruct s{};
  virDomainInterfaceStats(d, vms_[i].tap.c_str(), &s, sizeof s);
  virDomainFree(d);
  // libvirt reports tap counters from the guest's view: tx = what the guest sent.
  return positive(s.tx_bytes);
}

Sched Testbed::sched(size_t i) const {
  Sched s;
  virDomainPtr d = domain(i);
  if (d == nullptr) return s;
  int n = 0;
  free(virDomainGetSchedulerType(d, &n));  // NOLINT(cppcoreguidelines-no-malloc): libvirt's allocation
  std::vector<virTypedParameter> params(size_t(std::max(n, 1)));
  if (virDomainGetSchedulerParametersFlags(d, params.data(), &n, VIR_DOMAIN_AFFECT_LIVE) == 0) {
    virTypedParamsGetLLong(params.data(), n, VIR_DOMAIN_SCHEDULER_VCPU_QUOTA, &s.vcpu_quota);
    virTypedParamsGetULLong(params.data(), n, VIR_DOMAIN_SCHEDULER_CPU_SHARES, &s.cpu_shares);
  }
  virDomainFree(d);
  if (s.vcpu_quota > (1LL << 44)) s.vcpu_quota = -1;  // cgroup v2 "max"
  return s;
}

bool Testbed::set_sched(size_t i, const Sched& s) const {
  virDomainPtr d = domain(i);
  if (d == nullptr) return false;
  virTypedParameterPtr p = nullptr;
  int n = 0, cap = 0;
  virTypedParamsAddLLong(&p, &n, &cap, VIR_DOMAIN_SCHEDULER_VCPU_QUOTA, s.vcpu_quota);
  if (s.cpu_shares != 0) virTypedParamsAddULLong(&p, &n, &cap, VIR_DOMAIN_SCHEDULER_CPU_SHARES, s.cpu_shares);
  const bool ok = virDomainSetSchedulerParametersFlags(d, p, n, VIR_DOMAIN_AFFECT_LIVE) == 0;
  virTypedParamsFree(p, n);
  virDomainFree(d);
  return ok;
}

uint64_t Testbed::iops_limit(size_t i) const {
  virDomainPtr d = domain(i);
  if (d == nullptr) return 0;
  std::vector<virTypedParameter> io(32);
  int n = int(io.size());
  unsigned long long iops = 0;
  if (virDomainGetBlockIoTune(d, "vda", io.data(), &n, VIR_DOMAIN_AFFECT_LIVE) == 0) {
    virTypedParamsGetULLong(io.data(), n, VIR_DOMAIN_BLOCK_IOTUNE_TOTAL_IOPS_SEC, &iops);
    virTypedParamsClear(io.data(), n);
  }
  virDomainFree(d);
  return iops;
}

bool Testbed::set_iops_limit(size_t i, uint64_t iops) const {
  virDomainPtr d = domain(i);
  if (d == nullptr) return false;
  virTypedParameterPtr p = nullptr;
  int n = 0, cap = 0;
  virTypedParamsAddULLong(&p, &n, &cap, VIR_DOMAIN_BLOCK_IOTUNE_TOTAL_IOPS_SEC, iops);
  const bool ok = virDomainSetBlockIoTune(d, "vda", p, n, VIR_DOMAIN_AFFECT_LIVE) == 0;
  virTypedParamsFree(p, n);
  virDomainFree(d);
  return ok;
}

}  // namespace morph::test
