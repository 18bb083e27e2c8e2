#pragma once
// The seam between the shifting logic (validation, idempotency, leases, rollback: shift_engine.h) and the
// kernel-facing mechanisms (libvirt + BPF policer: libvirt_mechanisms.h). Unit tests put a gmock fake here.

#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"
#include "hostagent/shifter/shift.h"

namespace morph::agent::shifter {

// What the engine needs to know about a VM to validate and apply a shift.
struct VmTarget {
  std::string uuid;
  std::string name;
  uint32_t vcpus = 0;
  uint64_t max_memory_mib = 0;
  uint32_t host_cpus = 0;
  std::string disk;                     // guest target of the disk that iotune applies to ("vda"); empty if none
  std::vector<uint32_t> tap_ifindexes;  // host taps the policer applies to; empty if none
  bool net_limiter = false;             // a policer is loaded on this host
  int64_t disk_tier = -1;               // storage tier of `disk`'s pool (storage_tier.h); -1: in neither pool
};

class Mechanisms {
 public:
  virtual ~Mechanisms() = default;
  // By UUID or name; not_found when libvirt does not know it or it is not running.
  virtual Result<VmTarget> resolve(const std::string& vm) = 0;
  virtual Result<InForce> read(const VmTarget& vm) = 0;
  // Puts one value in force. The returned string is a warning for the outcome (empty when none), e.g. a
  // balloon target the guest did not follow.
  virtual Result<std::string> apply(const VmTarget& vm, const Adjustment& adj) = 0;
  // What is in force after `changed` were applied to a VM whose values were `before` (read at the start of
  // the same command). A mechanism may re-read only what the changed resources touch and take the rest
  // from `before` (one QEMU monitor round trip for a disk limit instead of a full read); this default
  // reads everything again.
  virtual Result<InForce> read_changed(const VmTarget& vm, const InForce& /*before*/,
                                       const std::vector<Resource>& /*changed*/) {
    return read(vm);
  }
};

}  // namespace morph::agent::shifter
