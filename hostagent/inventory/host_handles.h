#pragma once
// Host-side handles of a running VM: QEMU pid, cgroup v2 path and id, tap ifindex. Reads /proc, the
// cgroup2 mount and libvirt's run directory; never writes anything. Every path root is a parameter so the
// rules are unit-tested on a fake tree in a temporary directory.
//
// How a VM's cgroup is found: libvirt moves QEMU into machine/qemu-N-NAME.libvirt-qemu and then the main
// thread into its emulator/ child, vCPU threads into vcpuN/ children. The "0::" line of /proc/PID/cgroup
// therefore names .../emulator; the VM's cgroup is the nearest ancestor whose name ends in ".libvirt-qemu"
// (or the process's own cgroup when no such ancestor exists, e.g. a non-libvirt launcher). Its cgroup id is
// the inode number of that directory on the cgroup2 mount — what bpf_get_current_cgroup_id() returns for
// a thread in exactly that cgroup. A BPF program sees the ids of the children (vcpu0, emulator, ...), so
// probes map every id returned by subtree_cgroup_ids().

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "hostagent/inventory/vm.h"

namespace morph::agent {

struct HostPaths {
  std::string cgroup2_root;  // empty: detect_cgroup2_root()
  std::string libvirt_run_dir = "/run/libvirt/qemu";
  std::string proc_root = "/proc";
};

// /sys/fs/cgroup/unified if it is a cgroup2 mount (hybrid hosts like this one), else /sys/fs/cgroup if that
// is cgroup2 (unified hosts); Errc::unavailable otherwise.
Result<std::string> detect_cgroup2_root();

// The path of the "0::" line of a /proc/PID/cgroup text, e.g. "/machine/qemu-1-x.libvirt-qemu/emulator".
Result<std::string> parse_proc_cgroup_v2(std::string_view proc_cgroup);

// Nearest ancestor-or-self of a process cgroup path whose last component ends in ".libvirt-qemu";
// the path itself when there is none.
std::string vm_cgroup_of(std::string_view process_cgroup_path);

// QEMU pid of a running domain: NAME.pid in run_dir, falling back to <domstatus pid> of NAME.xml.
Result<int> read_qemu_pid(const std::string& libvirt_run_dir, const std::string& domain_name);

// Cgroup v2 path of a process: the "0::" line of PROC/PID/cgroup.
Result<std::string> process_cgroup_v2(const std::string& proc_root, int pid);

// Cgroup id (directory inode) of a path relative to the cgroup2 root.
Result<uint64_t> cgroup_id(const std::string& cgroup2_root, const std::string& cgroup_path);

// Ids of the cgroup and of all its descendants (vcpuN, emulator, ...), the cgroup's own id first.
// Children that vanish while being walked are skipped.
Result<std::vector<uint64_t>> subtree_cgroup_ids(const std::string& cgroup2_root, const std::string& cgroup_path);

// Kernel ifindex of a network device; Errc::not_found when there is none of that name.
Result<uint32_t> tap_ifindex(const std::string& dev);

// Fills vm.pid, vm.cgroup_path, vm.cgroup_id and each tap's ifindex for a running domain. Taps without a
// device name are left at ifindex 0. `paths.cgroup2_root` must be set (resolve it once with
// detect_cgroup2_root()). The first failure is returned; fields already resolved stay filled.
Status resolve_host_handles(VmInfo& vm, const HostPaths& paths);

}  // namespace morph::agent
