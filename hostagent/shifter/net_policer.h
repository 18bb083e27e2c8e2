#pragma once
// NetPolicer: user-space side of bpf/policer.bpf.c. It takes the policer's programs and maps from the agent's
// one BpfRuntime (hostagent/bpf_runtime, which loads the object and pins these maps so limits survive an
// agent restart and a restarted agent reads them back), attaches the policer's tc programs to a tap's
// clsact ingress (guest transmit) and egress (guest receive) hooks at POLICER_TC_PRIORITY/POLICER_TC_HANDLE,
// writes rate/burst per (ifindex, direction) into policer_cfg and reads the per-slot counters.
// It owns only the policer's filters and map entries: it never loads BPF, and the KPI counting programs on
// the same taps belong to hostagent/probes.

#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <utility>

#include "bpf/policer.h"
#include "common/error.h"
#include "hostagent/bpf_runtime/bpf_runtime.h"

namespace morph::agent::shifter {

enum class NetDirection { guest_out = POLICER_DIR_OUT, guest_in = POLICER_DIR_IN };

// The seam the libvirt mechanisms use for net_out/net_in; a fake in unit tests.
class NetLimiter {
 public:
  virtual ~NetLimiter() = default;
  // kbps = kilobits per second (1000 bit/s); 0 removes the limit.
  virtual Status set_limit(uint32_t ifindex, NetDirection dir, uint64_t kbps) = 0;
  virtual Result<uint64_t> limit(uint32_t ifindex, NetDirection dir) = 0;
};

class NetPolicer final : public NetLimiter {
 public:
  // Errc::unavailable when `runtime` has no policer (not asked for, or it could not load: its reason).
  static Result<std::unique_ptr<NetPolicer>> open(std::shared_ptr<BpfRuntime> runtime);
  ~NetPolicer() override;
  NetPolicer(const NetPolicer&) = delete;
  NetPolicer& operator=(const NetPolicer&) = delete;

  Status set_limit(uint32_t ifindex, NetDirection dir, uint64_t kbps) override;
  Result<uint64_t> limit(uint32_t ifindex, NetDirection dir) override;
  // Writes a slot's bucket parameters without attaching anything (set_limit attaches, then calls this).
  Status configure(uint32_t ifindex, NetDirection dir, uint64_t rate_bytes_per_sec, uint64_t burst_bytes);
  // Counters summed over CPUs; zero when the slot never saw a policed packet.
  Result<policer_stats> stats(uint32_t ifindex, NetDirection dir);
  // Detaches the policer from a tap's hooks (the clsact qdisc stays: probes may use it).
  Status detach(uint32_t ifindex);

  int test_prog_fd() const;
  // Burst for a rate: 20 ms of traffic, at least 64 KiB so one GSO super-packet on a tap can pass.
  static uint64_t burst_for(uint64_t rate_bytes_per_sec);

 private:
  explicit NetPolicer(std::shared_ptr<BpfRuntime> runtime)
      : runtime_(std::move(runtime)), objects_(*runtime_->policer()) {}
  Status attach(uint32_t ifindex);
  Status configure_locked(const policer_key& key, uint64_t rate, uint64_t burst);

  std::shared_ptr<BpfRuntime> runtime_;
  const PolicerObjects& objects_;  // runtime_'s
  std::mutex mu_;
  std::set<uint32_t> attached_;
};

}  // namespace morph::agent::shifter
