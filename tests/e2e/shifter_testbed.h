#pragma once
// A run-unique test-bed VM for the shifter's e2e tests and benchmark: `scripts/testbed up 1 --prefix P`
// on construction, `scripts/testbed down --prefix P` on destruction (and on a fatal signal). Plus the
// libvirt counters the closed-loop checks measure with.

#include <libvirt/libvirt.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

namespace morph::test {

class ShiftTestbed {
 public:
  // Empty error() when the VM is up and its load generator polls.
  explicit ShiftTestbed(const std::string& tag);
  ~ShiftTestbed();
  ShiftTestbed(const ShiftTestbed&) = delete;
  ShiftTestbed& operator=(const ShiftTestbed&) = delete;

  const std::string& error() const { return error_; }
  const std::string& vm() const { return vm_; }
  const std::string& prefix() const { return prefix_; }
  const std::string& uuid() const { return uuid_; }  // the VM's libvirt UUID
  const std::string& tap() const { return tap_; }    // its tap's name on the host
  // A value of the VM's test-bed env file (/var/lib/morph-testbed/P/vms/VM.env: HOST_IP, CTL_DIR, ...);
  // empty when absent.
  std::string env(const std::string& key) const;
  virConnectPtr conn() const { return conn_; }

  // `scripts/testbed load VM targets...`; false on failure.
  bool load(const std::string& targets) const;
  // Counters (monotonic totals).
  uint64_t vcpu_time_ns() const;    // sum of vCPU thread times
  uint64_t disk_read_reqs() const;  // rd_req of the first disk
  uint64_t tap_rx_bytes() const;    // host tap received = guest sent (before tc ingress)

 private:
  std::string prefix_, vm_, error_, disk_ = "vda", tap_, uuid_;
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
