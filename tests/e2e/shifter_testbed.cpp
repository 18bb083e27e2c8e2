#include "tests/e2e/shifter_testbed.h"

#include <libvirt/virterror.h>
#include <unistd.h>

#include <array>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <thread>
#include <vector>

#include "tests/support/requirements.h"

namespace morph::test {

namespace {

std::string g_teardown;  // the down command for the fatal-signal path

std::string run(const std::string& cmd, int* status) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) {
    *status = -1;
    return "popen failed";
  }
  std::array<char, 512> buf{};
  while (fgets(buf.data(), buf.size(), p) != nullptr) out += buf.data();
  *status = pclose(p);
  return out;
}

}  // namespace

ShiftTestbed::ShiftTestbed(const std::string& tag) {
  if (auto why = libvirtd_unavailable_reason(); !why.empty()) {
    error_ = why;
    return;
  }
  prefix_ = "shift-" + tag + "-" + std::to_string(getpid());
  vm_ = prefix_ + "-vm1";
  const std::string tb = source_dir() + "/scripts/testbed";
  g_teardown = tb + " down --prefix " + prefix_ + " >/dev/null 2>&1";
  for (int sig : {SIGINT, SIGTERM, SIGABRT, SIGSEGV})
    std::signal(sig, [](int s) {
      if (std::system(g_teardown.c_str()) != 0) {
      }
      std::signal(s, SIG_DFL);
      std::raise(s);
    });
  int st = 0;
  std::string out = run(tb + " up 1 --prefix " + prefix_, &st);
  if (st != 0) {
    error_ = "scripts/testbed up failed (run scripts/testbed prepare first?): " + out;
    return;
  }
  out = run(tb + " ls --prefix " + prefix_, &st);
  // VM UUID TAP ...: the VM's row.
  if (auto pos = out.find(vm_ + " "); pos != std::string::npos) {
    char name[128], uuid[64], tap[64];
    if (std::sscanf(out.c_str() + pos, "%127s %63s %63s", name, uuid, tap) == 3) {
      uuid_ = uuid;
      tap_ = tap;
    }
  }
  virSetErrorFunc(nullptr, [](void*, virErrorPtr) {});
  conn_ = virConnectOpen("qemu:///system");
  if (conn_ == nullptr) error_ = "cannot connect to qemu:///system";
}

std::string ShiftTestbed::env(const std::string& key) const {
  std::ifstream in("/var/lib/morph-testbed/" + prefix_ + "/vms/" + vm_ + ".env");
  for (std::string line; std::getline(in, line);)
    if (line.size() > key.size() && line.compare(0, key.size(), key) == 0 && line[key.size()] == '=')
      return line.substr(key.size() + 1);
  return {};
}

ShiftTestbed::~ShiftTestbed() {
  if (conn_ != nullptr) virConnectClose(conn_);
  if (!prefix_.empty()) {
    int st = 0;
    run(source_dir() + "/scripts/testbed down --prefix " + prefix_, &st);
  }
}

bool ShiftTestbed::load(const std::string& targets) const {
  int st = 0;
  run(source_dir() + "/scripts/testbed load " + vm_ + " " + targets, &st);
  return st == 0;
}

uint64_t ShiftTestbed::vcpu_time_ns() const {
  virDomainPtr d = virDomainLookupByName(conn_, vm_.c_str());
  if (d == nullptr) return 0;
  std::vector<virVcpuInfo> info(64);
  int n = virDomainGetVcpus(d, info.data(), static_cast<int>(info.size()), nullptr, 0);
  virDomainFree(d);
  uint64_t sum = 0;
  for (int i = 0; i < n; ++i) sum += info[static_cast<size_t>(i)].cpuTime;
  return sum;
}

uint64_t ShiftTestbed::disk_read_reqs() const {
  virDomainPtr d = virDomainLookupByName(conn_, vm_.c_str());
  if (d == nullptr) return 0;
  virDomainBlockStatsStruct s{};
  virDomainBlockStats(d, disk_.c_str(), &s, sizeof s);
  virDomainFree(d);
  return s.rd_req > 0 ? static_cast<uint64_t>(s.rd_req) : 0;
}

uint64_t ShiftTestbed::tap_rx_bytes() const {
  virDomainPtr d = virDomainLookupByName(conn_, vm_.c_str());
  if (d == nullptr) return 0;
  virDomainInterfaceStatsStruct s{};
  virDomainInterfaceStats(d, tap_.c_str(), &s, sizeof s);
  virDomainFree(d);
  // libvirt reports tap counters from the guest's view: tx = what the guest sent.
  return s.tx_bytes > 0 ? static_cast<uint64_t>(s.tx_bytes) : 0;
}

}  // namespace morph::test
