#pragma once
// LibvirtMechanisms: the real Mechanisms. CPU through virDomainSetSchedulerParametersFlags (cpu_shares,
// vcpu_quota/vcpu_period), vCPU placement through virDomainPinVcpuFlags, memory through
// virDomainSetMemoryFlags (balloon, then a bounded wait for the guest to follow), disk limits through
// virDomainSetBlockIoTune on the VM's first disk, network limits through a NetLimiter (the BPF policer),
// the storage tier by moving the first disk between pools with a block copy and pivot (storage_tier.h).
// Every value is read back from libvirt (or the policer) rather than echoed. All changes are live only
// (VIR_DOMAIN_AFFECT_LIVE): the persistent definition stays the baseline. The exception is a storage tier
// move: libvirt points the persistent definition at the copy on pivot, since the old file is removed.

#include <libvirt/libvirt.h>

#include <chrono>
#include <memory>
#include <string>

#include "hostagent/shifter/mechanisms.h"
#include "hostagent/shifter/net_policer.h"
#include "hostagent/shifter/storage_tier.h"

namespace morph::agent::shifter {

class LibvirtMechanisms final : public Mechanisms {
 public:
  struct Options {
    std::string uri = "qemu:///system";
    uint64_t vcpu_period_us = 100000;
    // How long to wait for the guest to follow a balloon target before warning that it did not.
    std::chrono::milliseconds balloon_follow_wait{2000};
    // storage_tier: the pools (empty: the test bed's standard/fast sibling layout) and the copy's bounds.
    StoragePools storage_pools;
    StorageMoveOptions storage_move;
  };
  // net may be null: net_* shifts are then rejected as unavailable.
  static Result<std::unique_ptr<LibvirtMechanisms>> connect(const Options& options, NetLimiter* net);
  ~LibvirtMechanisms() override;
  LibvirtMechanisms(const LibvirtMechanisms&) = delete;
  LibvirtMechanisms& operator=(const LibvirtMechanisms&) = delete;

  Result<VmTarget> resolve(const std::string& vm) override;
  Result<InForce> read(const VmTarget& vm) override;
  Result<std::string> apply(const VmTarget& vm, const Adjustment& adj) override;
  // Only disk and network limits are read back alone; any other change reads everything (read()).
  Result<InForce> read_changed(const VmTarget& vm, const InForce& before,
                               const std::vector<Resource>& changed) override;

  virConnectPtr connection() const { return conn_; }

 private:
  LibvirtMechanisms(virConnectPtr conn, Options options, NetLimiter* net)
      : conn_(conn), opt_(std::move(options)), net_(net) {}

  // Room for every virDomainGetBlockIoTune parameter in one call (libvirt's remote limit is 32).
  static constexpr size_t kIoTuneParamsMax = 32;
  Status read_disk_limits(virDomainPtr dom, const VmTarget& vm, InForce& f);
  Status read_net_limits(const VmTarget& vm, InForce& f);

  virConnectPtr conn_;
  Options opt_;
  NetLimiter* net_;
};

// "message" of libvirt's last error on this thread, for Error messages.
std::string libvirt_last_error();

}  // namespace morph::agent::shifter
