// Inventory against the real libvirtd: throwaway TCG domains named invtest-<pid>-<n> (no guest OS; QEMU
// still runs with its cgroups and tap), destroyed and undefined by an RAII guard even when a check fails.
// Every handle the Inventory reports is checked against an independent source: the pid file, the cgroup
// directory libvirt names after the domain id, /sys/class/net, and the cgroups of every QEMU thread.
#include <gtest/gtest.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "hostagent/inventory/inventory.h"
#include "tests/support/files.h"
#include "tests/support/requirements.h"
#include "tests/support/shell.h"

namespace morph::agent {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using test::slurp;

uint64_t inode_of(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// Defines a throwaway domain; destroys and undefines it (and deletes its disk) on scope exit.
class ThrowawayDomain {
 public:
  ThrowawayDomain() {
    static int n = 0;
    name_ = "invtest-" + std::to_string(getpid()) + "-" + std::to_string(n++);
    disk_ = "/tmp/" + name_ + ".raw";
    std::ofstream(disk_).close();
    fs::resize_file(disk_, 1 << 20);
    conn_ = virConnectOpen("qemu:///system");
    if (conn_ == nullptr) return;
    const std::string xml = R"(<domain type='qemu'>
  <name>)" + name_ + R"(</name>
  <metadata><morph:vm xmlns:morph="https://morph.dev/xmlns/vm/1"><morph:owner>tenant-it</morph:owner><morph:sla>gold</morph:sla></morph:vm></metadata>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <features><acpi/></features>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'><driver name='qemu' type='raw' cache='none'/><source file=')" +
                            disk_ +
                            R"('/><target dev='vda' bus='virtio'/></disk>
    <interface type='ethernet'><model type='virtio'/></interface>
    <memballoon model='virtio'/>
  </devices>
</domain>)";
    dom_ = virDomainDefineXML(conn_, xml.c_str());
  }
  ~ThrowawayDomain() {
    if (dom_ != nullptr) {
      if (virDomainIsActive(dom_) == 1) virDomainDestroy(dom_);
      virDomainUndefine(dom_);
      virDomainFree(dom_);
    }
    if (conn_ != nullptr) virConnectClose(conn_);
    std::error_code ec;
    fs::remove(disk_, ec);
  }
  ThrowawayDomain(const ThrowawayDomain&) = delete;
  ThrowawayDomain& operator=(const ThrowawayDomain&) = delete;

  bool defined() const { return dom_ != nullptr; }
  bool start() { return virDomainCreate(dom_) == 0; }
  bool destroy() { return virDomainDestroy(dom_) == 0; }
  bool attach(const std::string& xml) { return virDomainAttachDevice(dom_, xml.c_str()) == 0; }
  const std::string& name() const { return name_; }
  std::string uuid() const {
    char buf[VIR_UUID_STRING_BUFLEN] = {};
    virDomainGetUUIDString(dom_, buf);
    return buf;
  }
  int id() const { return static_cast<int>(virDomainGetID(dom_)); }
  static std::string last_error() {
    virErrorPtr e = virGetLastError();
    return e && e->message ? e->message : "unknown";
  }

 private:
  std::string name_, disk_;
  virConnectPtr conn_ = nullptr;
  virDomainPtr dom_ = nullptr;
};

// Collects events from the dispatcher thread for the test thread.
class EventLog {
 public:
  void operator()(const VmEvent& ev) {
    std::lock_guard lk(mu_);
    events_.push_back(ev);
    cv_.notify_all();
  }
  std::optional<VmEvent> wait_for(const std::string& uuid, VmEventKind kind, std::chrono::milliseconds timeout) {
    std::unique_lock lk(mu_);
    std::optional<VmEvent> found;
    cv_.wait_for(lk, timeout, [&] {
      for (const VmEvent& e : events_)
        if (e.kind == kind && (uuid.empty() || e.vm.uuid == uuid)) {
          found = e;
          return true;
        }
      return false;
    });
    return found;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<VmEvent> events_;
};

class InventoryLibvirt : public ::testing::Test {
 protected:
  void SetUp() override {
    MORPH_REQUIRE_ROOT();
    MORPH_REQUIRE_LIBVIRTD();
    auto inv = Inventory::open();
    ASSERT_TRUE(inv.ok()) << inv.error().describe();
    inv_ = std::move(*inv);
  }
  std::unique_ptr<Inventory> inv_;
};

TEST_F(InventoryLibvirt, ListResolvesPidCgroupAndTap) {
  ThrowawayDomain dom;
  ASSERT_TRUE(dom.defined()) << ThrowawayDomain::last_error();
  ASSERT_TRUE(dom.start()) << ThrowawayDomain::last_error();

  auto vms = inv_->list();
  ASSERT_TRUE(vms.ok()) << vms.error().describe();
  auto it = std::find_if(vms->begin(), vms->end(), [&](const VmInfo& v) { return v.uuid == dom.uuid(); });
  ASSERT_NE(it, vms->end()) << dom.name() << " not in list()";
  const VmInfo& vm = *it;
  EXPECT_EQ(vm.name, dom.name());
  EXPECT_EQ(vm.libvirt_id, dom.id());
  EXPECT_EQ(vm.ownership.owner, "tenant-it");
  EXPECT_EQ(vm.baseline.vcpus, 1u);
  EXPECT_EQ(vm.baseline.max_memory_kib, 65536u);

  // pid: libvirt's pid file, and the process is QEMU.
  std::string pid_file = slurp("/run/libvirt/qemu/" + dom.name() + ".pid");
  pid_file.erase(pid_file.find_last_not_of(" \n") + 1);
  EXPECT_EQ(std::to_string(vm.pid), pid_file);
  EXPECT_NE(slurp("/proc/" + std::to_string(vm.pid) + "/cmdline").find("qemu-system"), std::string::npos);

  // cgroup: the directory libvirt names machine/qemu-<id>-<name>.libvirt-qemu, and its inode.
  const std::string expected_path = "/machine/qemu-" + std::to_string(dom.id()) + "-" + dom.name() + ".libvirt-qemu";
  EXPECT_EQ(vm.cgroup_path, expected_path);
  const std::string root = inv_->paths().cgroup2_root;
  EXPECT_EQ(vm.cgroup_id, inode_of(root + expected_path));
  ASSERT_NE(vm.cgroup_id, 0u);

  // Every QEMU thread sits in a cgroup whose id subtree_cgroup_ids() reports (vcpuN, emulator, ...).
  auto ids = subtree_cgroup_ids(root, vm.cgroup_path);
  ASSERT_TRUE(ids.ok()) << ids.error().describe();
  EXPECT_GE(ids->size(), 3u) << "expected the VM cgroup plus emulator and vcpu0 children";
  size_t threads = 0;
  for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(vm.pid) + "/task")) {
    auto cg = parse_proc_cgroup_v2(slurp(task.path().string() + "/cgroup"));
    if (!cg.ok()) continue;  // thread exited mid-walk
    ++threads;
    EXPECT_NE(std::find(ids->begin(), ids->end(), inode_of(root + *cg)), ids->end())
        << "thread " << task.path() << " in " << *cg << " is outside the VM's subtree";
  }
  EXPECT_GE(threads, 2u);

  // tap: the name libvirt chose, and the kernel's ifindex for it.
  ASSERT_EQ(vm.taps.size(), 1u);
  ASSERT_FALSE(vm.taps[0].dev.empty());
  EXPECT_EQ(std::to_string(vm.taps[0].ifindex) + "\n", slurp("/sys/class/net/" + vm.taps[0].dev + "/ifindex"));
  EXPECT_EQ(vm.taps[0].mac.size(), 17u);
  ASSERT_EQ(vm.disks.size(), 1u);
  EXPECT_EQ(vm.disks[0].cache, "none");

  // libvirt's reference counters and balloon for the same VM.
  auto counters = inv_->counters();
  ASSERT_TRUE(counters.ok()) << counters.error().describe();
  auto c =
      std::find_if(counters->begin(), counters->end(), [&](const LibvirtCounters& x) { return x.uuid == vm.uuid; });
  ASSERT_NE(c, counters->end());
  EXPECT_EQ(c->name, vm.name);
  EXPECT_GT(c->cpu_time_ns, 0u);
  ASSERT_EQ(c->net.size(), 1u);
  EXPECT_EQ(c->net[0].dev, vm.taps[0].dev);
  ASSERT_GE(c->block.size(), 1u);
  EXPECT_EQ(c->block[0].target, "vda");
  ASSERT_TRUE(c->balloon_current_kib.has_value());
  auto balloon = inv_->balloon_kib(vm.uuid);
  ASSERT_TRUE(balloon.ok()) << balloon.error().describe();
  EXPECT_EQ(*balloon, 65536u);  // no guest driver: the balloon stays at the defined size
  auto unknown = inv_->balloon_kib("00000000-0000-4000-8000-000000000000");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code(), Errc::not_found);
}

TEST_F(InventoryLibvirt, StartHotplugAndDestroyDeliverEventsWithin2s) {
  EventLog log;
  auto sub = inv_->subscribe([&log](const VmEvent& e) { log(e); });
  ThrowawayDomain dom;
  ASSERT_TRUE(dom.defined()) << ThrowawayDomain::last_error();
  const std::string uuid = dom.uuid();
  EXPECT_TRUE(log.wait_for(uuid, VmEventKind::defined, 2s).has_value());

  ASSERT_TRUE(dom.start()) << ThrowawayDomain::last_error();
  auto started = log.wait_for(uuid, VmEventKind::started, 2s);
  ASSERT_TRUE(started.has_value()) << "no started event within 2 s of virDomainCreate returning";
  EXPECT_EQ(started->vm.name, dom.name());
  EXPECT_EQ(started->vm.libvirt_id, dom.id());
  EXPECT_GT(started->vm.pid, 0);
  EXPECT_NE(started->vm.cgroup_id, 0u);
  ASSERT_EQ(started->vm.taps.size(), 1u);
  EXPECT_NE(started->vm.taps[0].ifindex, 0u);

  // A hot-plugged NIC arrives as device_added with the new tap resolved.
  ASSERT_TRUE(dom.attach("<interface type='ethernet'><model type='virtio'/></interface>"))
      << ThrowawayDomain::last_error();
  auto added = log.wait_for(uuid, VmEventKind::device_added, 2s);
  ASSERT_TRUE(added.has_value()) << "no device_added event within 2 s";
  EXPECT_FALSE(added->device.empty());
  ASSERT_EQ(added->vm.taps.size(), 2u);
  EXPECT_NE(added->vm.taps[1].ifindex, 0u);

  ASSERT_TRUE(dom.destroy()) << ThrowawayDomain::last_error();
  auto stopped = log.wait_for(uuid, VmEventKind::stopped, 2s);
  ASSERT_TRUE(stopped.has_value()) << "no stopped event within 2 s of virDomainDestroy returning";
  EXPECT_EQ(stopped->vm.libvirt_id, -1);
  // The last known handles travel with the stop so probes can drop their map entries.
  EXPECT_EQ(stopped->vm.cgroup_id, started->vm.cgroup_id);
  EXPECT_EQ(stopped->vm.taps.size(), 2u);

  auto vms = inv_->list();
  ASSERT_TRUE(vms.ok()) << vms.error().describe();
  EXPECT_EQ(std::count_if(vms->begin(), vms->end(), [&](const VmInfo& v) { return v.uuid == uuid; }), 0);
  inv_->unsubscribe(sub);
}

// Runs a shell command, returning what it printed.
std::string run(const std::string& cmd) {
  return test::sh(cmd).out;
}

// libvirtd going away, without disturbing anyone else on this shared daemon: the admin interface drops
// only this process's client connections, which the Inventory sees as EOF — the path a libvirtd restart
// takes too.
TEST_F(InventoryLibvirt, ReconnectsAfterTheDaemonDropsTheConnection) {
  MORPH_REQUIRE(access("/usr/bin/virt-admin", X_OK) == 0 ? std::string() : std::string("needs virt-admin"));
  EventLog log;
  inv_->subscribe([&log](const VmEvent& e) { log(e); });
  std::vector<std::string> mine;
  std::istringstream clients(run("virt-admin srv-clients-list libvirtd 2>/dev/null"));
  for (std::string line; std::getline(clients, line);) {
    std::istringstream ls(line);
    std::string id;
    if (!(ls >> id) || id.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string info = run("virt-admin client-info libvirtd " + id + " 2>/dev/null");
    if (info.find("unix_process_id") != std::string::npos &&
        info.find(": " + std::to_string(getpid()) + "\n") != std::string::npos)
      mine.push_back(id);
  }
  ASSERT_FALSE(mine.empty()) << "no libvirtd client of this process found via virt-admin";
  for (const std::string& id : mine) run("virt-admin client-disconnect libvirtd " + id + " >/dev/null 2>&1");

  ASSERT_TRUE(log.wait_for("", VmEventKind::disconnected, 5s).has_value()) << "connection loss not noticed";
  ASSERT_TRUE(log.wait_for("", VmEventKind::reconnected, 10s).has_value()) << "no reconnect within 10 s";
  EXPECT_TRUE(inv_->connected());
  auto vms = inv_->list();
  EXPECT_TRUE(vms.ok()) << vms.error().describe();

  // Events flow on the new connection.
  ThrowawayDomain dom;
  ASSERT_TRUE(dom.defined()) << ThrowawayDomain::last_error();
  EXPECT_TRUE(log.wait_for(dom.uuid(), VmEventKind::defined, 2s).has_value()) << "no events after reconnect";
}

}  // namespace
}  // namespace morph::agent
