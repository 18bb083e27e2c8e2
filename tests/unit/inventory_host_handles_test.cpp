// Host handle rules on a fake /proc, libvirt run directory and cgroup tree in a temporary directory, shaped
// like what libvirt 9.0 creates on this machine kind (checked on a real domain: QEMU's main thread sits in
// machine/qemu-1-NAME.libvirt-qemu/emulator, vCPU threads in .../vcpuN).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "hostagent/inventory/host_handles.h"
#include "tests/support/files.h"

namespace morph::agent {
namespace {

namespace fs = std::filesystem;

class FakeHost : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dir_.ok());
    paths_.cgroup2_root = root_ + "/cgroup";
    paths_.libvirt_run_dir = root_ + "/run";
    paths_.proc_root = root_ + "/proc";
    fs::create_directories(paths_.libvirt_run_dir);
    fs::create_directories(paths_.proc_root + "/4242");
    for (const char* d : {"vcpu0", "vcpu1", "emulator"}) fs::create_directories(paths_.cgroup2_root + kVm + "/" + d);
    write(paths_.proc_root + "/4242/cgroup",
          "4:memory:/machine/qemu-1-vm1.libvirt-qemu\n1:cpu:/machine/qemu-1-vm1.libvirt-qemu/emulator\n"
          "0::/machine/qemu-1-vm1.libvirt-qemu/emulator\n");
  }

  static void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }
  static uint64_t ino(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
    return st.st_ino;
  }

  static constexpr const char* kVm = "/machine/qemu-1-vm1.libvirt-qemu";
  test::TempDir dir_{"inv"};
  std::string root_ = dir_.str();
  HostPaths paths_;
};

TEST(ProcCgroup, PicksTheV2Line) {
  auto r = parse_proc_cgroup_v2("9:name=systemd:/\n3:cpuset:/x\n0::/machine/a.libvirt-qemu/emulator\n");
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(*r, "/machine/a.libvirt-qemu/emulator");
  auto none = parse_proc_cgroup_v2("4:memory:/\n1:cpu:/\n");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code(), Errc::not_found);
  EXPECT_FALSE(parse_proc_cgroup_v2("0::\n").ok());
}

TEST(VmCgroupOf, WalksUpToTheLibvirtQemuScope) {
  EXPECT_EQ(vm_cgroup_of("/machine/qemu-1-vm1.libvirt-qemu/emulator"), "/machine/qemu-1-vm1.libvirt-qemu");
  EXPECT_EQ(vm_cgroup_of("/machine/qemu-1-vm1.libvirt-qemu/vcpu12"), "/machine/qemu-1-vm1.libvirt-qemu");
  EXPECT_EQ(vm_cgroup_of("/machine/qemu-1-vm1.libvirt-qemu"), "/machine/qemu-1-vm1.libvirt-qemu");
  EXPECT_EQ(vm_cgroup_of("/machine.slice/machine-qemu\\x2d1\\x2dvm1.scope/libvirt/emulator"),
            "/machine.slice/machine-qemu\\x2d1\\x2dvm1.scope/libvirt/emulator");  // not libvirt's layout here
  EXPECT_EQ(vm_cgroup_of("/"), "/");
}

TEST_F(FakeHost, ReadsPidFromPidFileThenDomstatus) {
  write(paths_.libvirt_run_dir + "/vm1.pid", "4242");
  auto r = read_qemu_pid(paths_.libvirt_run_dir, "vm1");
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(*r, 4242);

  write(paths_.libvirt_run_dir + "/vm2.pid", "garbage");
  write(paths_.libvirt_run_dir + "/vm2.xml", "<domstatus state='running' pid='777'><domain/></domstatus>");
  auto fallback = read_qemu_pid(paths_.libvirt_run_dir, "vm2");
  ASSERT_TRUE(fallback.ok()) << fallback.error().describe();
  EXPECT_EQ(*fallback, 777);

  auto missing = read_qemu_pid(paths_.libvirt_run_dir, "nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), Errc::not_found);
  EXPECT_NE(missing.error().message().find("nope.pid"), std::string::npos);
}

TEST_F(FakeHost, ResolvesCgroupPathIdAndSubtree) {
  write(paths_.libvirt_run_dir + "/vm1.pid", "4242\n");
  VmInfo vm;
  vm.name = "vm1";
  vm.taps.push_back(VmTap{"lo", 0, "52:54:00:00:00:01"});  // any existing device stands in for a tap
  vm.taps.push_back(VmTap{"", 0, "52:54:00:00:00:02"});    // inactive-style entry: left alone
  Status s = resolve_host_handles(vm, paths_);
  ASSERT_TRUE(s.ok()) << s.error().describe();
  EXPECT_EQ(vm.pid, 4242);
  EXPECT_EQ(vm.cgroup_path, kVm);
  EXPECT_EQ(vm.cgroup_id, ino(paths_.cgroup2_root + kVm));
  EXPECT_EQ(vm.taps[0].ifindex, 1u);  // loopback
  EXPECT_EQ(vm.taps[1].ifindex, 0u);

  auto ids = subtree_cgroup_ids(paths_.cgroup2_root, vm.cgroup_path);
  ASSERT_TRUE(ids.ok()) << ids.error().describe();
  ASSERT_EQ(ids->size(), 4u);
  EXPECT_EQ(ids->front(), vm.cgroup_id);
  for (const char* d : {"vcpu0", "vcpu1", "emulator"})
    EXPECT_NE(std::find(ids->begin(), ids->end(), ino(paths_.cgroup2_root + kVm + "/" + d)), ids->end()) << d;
}

TEST_F(FakeHost, MissingPiecesAreNamed) {
  VmInfo vm;
  vm.name = "vm1";
  write(paths_.libvirt_run_dir + "/vm1.pid", "4243");  // no /proc/4243
  Status s = resolve_host_handles(vm, paths_);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("vm=vm1"), std::string::npos) << s.error().message();
  EXPECT_NE(s.error().message().find("4243/cgroup"), std::string::npos) << s.error().message();

  auto id = cgroup_id(paths_.cgroup2_root, "/machine/gone.libvirt-qemu");
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.error().sys_errno(), ENOENT);

  auto tap = tap_ifindex("morphnotap0");
  ASSERT_FALSE(tap.ok());
  EXPECT_EQ(tap.error().code(), Errc::not_found);
  EXPECT_FALSE(tap_ifindex("a-name-far-too-long-for-ifnamsiz").ok());
}

}  // namespace
}  // namespace morph::agent
