#pragma once
// The test bed for tests and benchmarks: N real QEMU guests brought up under a prefix of their own with
// `scripts/testbed up` (the script's options passed through), their facts read from the bed's .env files,
// their load steered with `scripts/testbed load`, libvirt's own counters and live settings read as the
// referee of what Morph measures and shifts, and the bed torn down with `scripts/testbed down` when it goes
// out of scope (also on a fatal signal). OnTestbed<Suite> is the gtest fixture on one bed per suite. This
// file never touches VMs of other prefixes and never changes a domain except through the script.

#include <gtest/gtest.h>
#include <libvirt/libvirt.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/requirements.h"
#include "tests/support/shell.h"

namespace morph::test {

// "TAG-PID": a prefix no other run on this host uses.
std::string unique_prefix(const std::string& tag);

struct BedSpec {
  std::string prefix;                // see unique_prefix
  int vms = 1;                       // scripts/testbed up N
  std::vector<std::string> up_args;  // more of its options, e.g. {"--cpu-baseline", "250"}
  bool needs_bpf = false;            // not brought up where BPF cannot be loaded (the tests would skip)
};

// One VM of the bed: its .env file (/var/lib/morph-testbed/P/vms/VM.env).
struct BedVm {
  std::string name, uuid, tap, host_ip, guest_ip, owner, sla, ctl_dir, disk, console;
  int index = 0;                           // the N of P-vmN
  std::map<std::string, std::string> env;  // every KEY=value of the file
};

// A VM's CPU settings in force, as libvirt reads them back.
struct Sched {
  long long vcpu_quota = 0;  // µs per 100 ms period; -1 for none (cgroup v2 "max")
  unsigned long long cpu_shares = 0;
  bool operator==(const Sched&) const = default;
};

inline constexpr const char* kIdle = "cpu=0 disk_read=0 disk_write=0 net_tx=0 net_rx=0";

class Testbed {
 public:
  explicit Testbed(BedSpec spec);
  ~Testbed();  // scripts/testbed down --prefix P
  Testbed(const Testbed&) = delete;
  Testbed& operator=(const Testbed&) = delete;

  // Why the bed cannot be had on this machine (not root, no libvirtd, no BPF when needed); empty when it can.
  const std::string& unavailable() const { return unavailable_; }
  // Why bringing it up failed (the script's output); empty when it is up.
  const std::string& error() const { return error_; }
  bool up() const { return unavailable_.empty() && error_.empty(); }

  const std::string& prefix() const { return spec_.prefix; }
  std::string dir() const;  // /var/lib/morph-testbed/P
  double up_seconds() const { return up_seconds_; }
  const std::vector<BedVm>& vms() const { return vms_; }
  const BedVm& vm(size_t i = 0) const { return vms_.at(i); }
  // `scripts/testbed up N --prefix P` again: N more VMs in this bed, their facts added. Not thread-safe
  // against the other methods.
  ShellResult add(int n);

  // `scripts/testbed load VM TARGETS` (e.g. "cpu=50 disk_read=4M"): false (with the script's words) when it
  // fails.
  ShellResult load(size_t i, const std::string& targets) const;
  ShellResult load(const std::string& targets) const { return load(0, targets); }
  bool load_all(const std::string& targets) const;

  // This process's libvirt connection (qemu:///system), opened with the bed.
  virConnectPtr conn() const { return conn_; }
  // libvirt's counters of VM i (monotonic totals; 0 when unreadable).
  uint64_t vcpu_time_ns(size_t i = 0) const;     // sum of the vCPU threads' times
  uint64_t vm_cpu_time_ns(size_t i = 0) const;   // the whole VM's (vCPUs, emulator, I/O threads), as cpu_run_ns
  uint64_t disk_read_reqs(size_t i = 0) const;   // rd_req of vda
  uint64_t disk_read_bytes(size_t i = 0) const;  // rd_bytes of vda
  uint64_t tap_rx_bytes(size_t i = 0) const;     // the host tap's received bytes = what the guest sent
  // Live settings of VM i.
  Sched sched(size_t i = 0) const;
  bool set_sched(size_t i, const Sched& s) const;  // a zero cpu_shares is left as it is
  uint64_t iops_limit(size_t i = 0) const;         // vda's total_iops_sec; 0 for none
  bool set_iops_limit(size_t i, uint64_t iops) const;

 private:
  std::string read_facts();
  virDomainPtr domain(size_t i) const;  // caller frees
  BedSpec spec_;
  std::string unavailable_, error_, script_;
  double up_seconds_ = 0;
  std::vector<BedVm> vms_;
  virConnectPtr conn_ = nullptr;
};

// Rate per second of `counter` over `window`.
template <class F>
double rate_over(F counter, std::chrono::milliseconds window) {
  const auto t0 = std::chrono::steady_clock::now();
  const double c0 = static_cast<double>(counter());
  std::this_thread::sleep_for(window);
  const double c1 = static_cast<double>(counter());
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return (c1 - c0) / dt;
}

}  // namespace morph::test

// In a test (or its SetUp): skips (fails under CI) when the bed cannot be had here; fails when it did not
// come up.
#define MORPH_REQUIRE_TESTBED(bed)                                       \
  do {                                                                   \
    MORPH_REQUIRE((bed).unavailable());                                  \
    ASSERT_TRUE((bed).error().empty()) << "test bed: " << (bed).error(); \
  } while (0)

namespace morph::test {

// A gtest suite on one bed, brought up before its first test (Suite::bed_spec()) and torn down after its
// last whatever happened. Each test requires the bed (MORPH_REQUIRE_TESTBED), then runs the suite's
// SetUpOnBed(); after it, the suite's TearDownOnBed(), then every VM is made idle again. A suite that
// overrides SetUpTestSuite or TearDownTestSuite calls OnTestbed's first or last, respectively.
template <class Suite>
class OnTestbed : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { bed_ = new Testbed(Suite::bed_spec()); }
  static void TearDownTestSuite() {
    delete bed_;
    bed_ = nullptr;
  }
  virtual void SetUpOnBed() {}
  virtual void TearDownOnBed() {}
  static Testbed& bed() { return *bed_; }

 private:
  void SetUp() final {
    MORPH_REQUIRE_TESTBED(bed());
    SetUpOnBed();
  }
  void TearDown() final {
    TearDownOnBed();
    if (bed_ != nullptr && bed_->up()) bed_->load_all(kIdle);
  }
  static inline Testbed* bed_ = nullptr;
};

}  // namespace morph::test
