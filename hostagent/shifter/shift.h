#pragma once
// Resource Shifting Engine: the domain types. A ShiftRequest sets absolute values for some of a VM's
// resources for the length of a lease; a ShiftOutcome says what is in force afterwards, read back from
// libvirt and the BPF policer (never what was asked for). No FlatBuffers or libvirt types here: the
// messaging layer converts ShiftCommand/ShiftResult to and from these.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/resource.h"

namespace morph::agent::shifter {

using WallClock = std::chrono::system_clock;
using TimePoint = WallClock::time_point;

// Adjustments name a morph::Resource (common/resource.h), every one of which the engine shifts, in its
// units: cpu millicores (whole VM, 1000 = one host core), cpu_shares (cgroup weight), vcpu_pin (host cpu
// list in Adjustment::target, e.g. "0-1"; value ignored), memory MiB (balloon target), disk_iops ops/s,
// disk_bps bytes/s, net_*_kbps kbit/s (1000 bit/s). For the limits, 0 means "no limit".
struct Adjustment {
  Resource resource = Resource::cpu;
  int64_t value = 0;
  std::string target;  // vcpu_pin: host cpu list
};

struct ShiftRequest {
  uint64_t command_id = 0;
  std::string vm;  // UUID (or name, for the operator command)
  std::vector<Adjustment> adjustments;
  std::chrono::milliseconds lease{5000};
};

// What is in force on a VM right now, read back from libvirt and the policer.
struct InForce {
  int64_t cpu_millicores = 0;  // from vcpu_quota/vcpu_period x vCPUs; vCPUs x 1000 when uncapped
  int64_t vcpu_quota_us = -1;  // raw libvirt values behind cpu_millicores
  uint64_t vcpu_period_us = 0;
  uint64_t cpu_shares = 0;
  std::string vcpu_pin;             // union of the vCPUs' host cpu lists, e.g. "0-1"
  uint64_t memory_mib = 0;          // balloon size now (the "actual" stat when the guest reports one)
  uint64_t balloon_actual_mib = 0;  // memory stat "actual"; 0 when the guest reports none
  uint64_t disk_iops = 0;           // total_iops_sec of the VM's first disk; 0 = unlimited
  uint64_t disk_bps = 0;            // total_bytes_sec
  uint64_t net_out_kbps = 0;        // policer on the tap ingress; 0 = off
  uint64_t net_in_kbps = 0;         // policer on the tap egress
  int64_t storage_tier = 0;

  // The value of one resource in the units of Adjustment::value (vcpu_pin: number of host cpus).
  int64_t value(Resource r) const noexcept;
  bool operator==(const InForce&) const = default;
};

std::string describe(const InForce& f);

struct ShiftOutcome {
  uint64_t command_id = 0;
  std::string vm_uuid;
  std::optional<Error> error;         // empty on success
  InForce in_force;                   // read back after the shift (or after the rollback)
  std::vector<std::string> warnings;  // e.g. "guest did not follow balloon target"
  std::optional<TimePoint> lease_expiry;

  bool ok() const noexcept { return !error.has_value(); }
};

// Host cpu lists ("0-2,5") <-> bit masks. Returns invalid_argument on malformed lists or cpus >= 64.
Result<uint64_t> parse_cpu_list(std::string_view list);
std::string format_cpu_list(uint64_t mask);

}  // namespace morph::agent::shifter
