#include "tests/support/requirements.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace morph::test {

bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && (std::strcmp(ci, "true") == 0 || std::strcmp(ci, "1") == 0);
}

bool is_root() {
  return geteuid() == 0;
}

std::string bpf_unavailable_reason() {
  if (!is_root()) return "loading BPF programs needs root";
  if (access("/sys/kernel/btf/vmlinux", R_OK) != 0) return "kernel has no BTF (/sys/kernel/btf/vmlinux missing)";
  struct statfs fs {};
  if (statfs("/sys/fs/bpf", &fs) != 0 || fs.f_type != BPF_FS_MAGIC)
    return "bpffs is not mounted at /sys/fs/bpf (scripts/setup-deps mounts it)";
  return {};
}

std::string libvirtd_unavailable_reason() {
  virSetErrorFunc(nullptr, [](void*, virErrorPtr) {});
  virConnectPtr conn = virConnectOpen("qemu:///system");
  if (conn == nullptr) {
    virErrorPtr e = virGetLastError();
    return std::string("cannot connect to qemu:///system (start it with scripts/testbed up 0): ") +
           (e && e->message ? e->message : "unknown error");
  }
  virConnectClose(conn);
  return {};
}

std::string source_dir() {
  const char* d = std::getenv("MORPH_SOURCE_DIR");
  return d ? d : MORPH_SOURCE_DIR_DEFAULT;
}

std::string binary_dir() {
  const char* d = std::getenv("MORPH_BINARY_DIR");
  return d ? d : MORPH_BINARY_DIR_DEFAULT;
}

}  // namespace morph::test
