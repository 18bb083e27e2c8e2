#pragma once
// What the agent knows about one VM from libvirt: identity, owner, and the host-side handles that KPI
// attribution needs (cgroup, tap devices, disks). Produced by hostagent/inventory, consumed by probes,
// the KPI collector, the shifter and the wire encoders. Plain data; no libvirt types leak out.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace morph::agent {

struct VmTap {
  std::string dev;       // host-side tap name, e.g. "vnet3" or "mt-abc-0"
  uint32_t ifindex = 0;  // 0 until resolved on this host
  std::string mac;       // guest MAC
};

struct VmDisk {
  std::string target;  // guest device, e.g. "vda"
  std::string source;  // host path of the image (file) or device
  std::string format;  // "raw", "qcow2"
  std::string cache;   // "none", "writeback", ...
};

// Owner and SLA data from <metadata><morph:vm xmlns:morph="https://morph.dev/xmlns/vm/1"> in the domain.
struct VmOwnership {
  std::string owner;      // tenant account; empty when the domain carries none
  std::string sla_class;  // "gold", "silver", "best-effort"; free text from metadata
};

// What the VM has by definition. From libvirt it is read from the persistent definition (the inactive
// XML), never from values a shift put in force; only a transient domain, which has no other definition,
// gives its live values (hostagent/inventory/domain_xml.h parse_running_domain_xml).
struct VmBaseline {
  uint32_t vcpus = 0;
  uint64_t memory_kib = 0;      // <currentMemory> of the definition: the balloon target it starts with
  uint64_t max_memory_kib = 0;  // balloon ceiling
  uint32_t cpu_millicores = 0;  // vcpus x 1000, or less where <cputune> caps each vCPU with quota/period
};

struct VmInfo {
  std::string uuid;  // libvirt UUID: the VM's identity
  std::string name;
  int libvirt_id = -1;      // -1 when not running
  int pid = 0;              // QEMU process id when running
  std::string cgroup_path;  // v2 path relative to the unified root, e.g. "/machine/qemu-3-x.libvirt-qemu"
  uint64_t cgroup_id = 0;   // v2 cgroup id (inode of the directory); what bpf_get_current_cgroup_id() returns
  VmOwnership ownership;
  VmBaseline baseline;
  std::vector<VmTap> taps;
  std::vector<VmDisk> disks;
};

}  // namespace morph::agent
