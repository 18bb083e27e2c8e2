// The inventory's baseline on a real test-bed VM comes from the domain's persistent definition, not from
// what a shift put in force. The VM is defined with a 250 mc CPU baseline (`--cpu-baseline 250`: a 25 ms
// quota per 100 ms period) and 192 MiB of <currentMemory> under a 256 MiB <memory>. Then, as the Resource
// Shifting Engine does (VIR_DOMAIN_AFFECT_LIVE only), its live quota is raised to 600 mc and its balloon
// shrunk to 160 MiB. The live XML shows both; Inventory::list() must still report 250 mc and 192 MiB, with
// what only exists live (domain id, tap name, pid, cgroup) from the running domain.
// Then the domain is made transient (undefined while it runs): it has only its live definition, so the
// inventory reports the live values (docs/architecture.md "Inventory"); defined again, the baseline is
// the definition's once more.

#include <gtest/gtest.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <sstream>
#include <string>

#include "hostagent/inventory/domain_xml.h"
#include "hostagent/inventory/inventory.h"
#include "tests/support/requirements.h"
#include "tests/support/testbed.h"
#include "tests/support/wait.h"

namespace morph::agent {
namespace {

using namespace std::chrono_literals;

constexpr uint64_t kDefinedMemoryKib = 192 * 1024;  // scripts/testbed: <currentMemory> 192 MiB
constexpr uint64_t kMaxMemoryKib = 256 * 1024;      // <memory> 256 MiB
constexpr uint64_t kLiveMemoryKib = 160 * 1024;     // the balloon a shift sets
constexpr long long kLiveQuotaUs = 60000;           // 600 mc of the one vCPU (period 100 ms)

std::string libvirt_error() {
  virErrorPtr e = virGetLastError();
  return e && e->message ? e->message : "unknown libvirt error";
}

// The domain's XML with `flags`, parsed on its own; nullopt when it cannot be read or parsed.
std::optional<DomainXml> read_xml(virDomainPtr dom, unsigned flags) {
  char* xml = virDomainGetXMLDesc(dom, flags);
  if (xml == nullptr) return std::nullopt;
  auto parsed = parse_domain_xml(xml);
  free(xml);  // NOLINT: libvirt allocates with malloc
  if (!parsed.ok()) return std::nullopt;
  return std::move(*parsed);
}

// The test-bed VM with `uuid` as Inventory::list() reports it; nullopt when it is not listed.
std::optional<VmInfo> listed(Inventory& inv, const std::string& uuid) {
  auto vms = inv.list();
  EXPECT_TRUE(vms.ok()) << vms.error().describe();
  if (!vms.ok()) return std::nullopt;
  for (VmInfo& vm : *vms)
    if (vm.uuid == uuid) return std::move(vm);
  return std::nullopt;
}

struct InventoryBaselineE2e : test::OnTestbed<InventoryBaselineE2e> {
  static test::BedSpec bed_spec() { return {test::unique_prefix("invbase"), 1, {"--cpu-baseline", "250"}}; }
};

TEST_F(InventoryBaselineE2e, BaselineComesFromTheDefinitionNotFromLiveShifts) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string name = bed().vm().name, uuid = bed().vm().uuid;

  virSetErrorFunc(nullptr, [](void*, virErrorPtr) {});
  std::unique_ptr<virConnect, int (*)(virConnectPtr)> conn(virConnectOpen("qemu:///system"), virConnectClose);
  ASSERT_TRUE(conn) << "connecting to qemu:///system: " << libvirt_error();
  std::unique_ptr<virDomain, int (*)(virDomainPtr)> dom(virDomainLookupByUUIDString(conn.get(), uuid.c_str()),
                                                        virDomainFree);
  ASSERT_TRUE(dom) << "looking up " << name << ": " << libvirt_error();

  auto inv_r = Inventory::open();
  ASSERT_TRUE(inv_r.ok()) << inv_r.error().describe();
  Inventory& inv = **inv_r;

  // Unshifted: definition and live agree.
  auto before = listed(inv, uuid);
  ASSERT_TRUE(before) << name << " not listed by the inventory";
  EXPECT_EQ(before->baseline.cpu_millicores, 250u);
  EXPECT_EQ(before->baseline.memory_kib, kDefinedMemoryKib);
  EXPECT_EQ(before->baseline.max_memory_kib, kMaxMemoryKib);
  EXPECT_EQ(before->baseline.vcpus, 1u);

  // A shift: live quota and balloon only, as hostagent/shifter/libvirt_mechanisms does.
  virTypedParameter quota{};
  std::snprintf(quota.field, VIR_TYPED_PARAM_FIELD_LENGTH, "%s", VIR_DOMAIN_SCHEDULER_VCPU_QUOTA);
  quota.type = VIR_TYPED_PARAM_LLONG;
  quota.value.l = kLiveQuotaUs;
  ASSERT_EQ(virDomainSetSchedulerParametersFlags(dom.get(), &quota, 1, VIR_DOMAIN_AFFECT_LIVE), 0)
      << "raising the live vcpu_quota: " << libvirt_error();
  ASSERT_EQ(virDomainSetMemoryFlags(dom.get(), kLiveMemoryKib, VIR_DOMAIN_AFFECT_LIVE), 0)
      << "ballooning to 160 MiB: " << libvirt_error();
  // libvirt updates the live <currentMemory> when the guest's balloon driver has given the memory back.
  std::optional<DomainXml> live;
  const bool shifted = test::wait_until(
      [&] {
        live = read_xml(dom.get(), 0);
        return live && live->vm.baseline.cpu_millicores == 600 && live->vm.baseline.memory_kib == kLiveMemoryKib;
      },
      30s);
  ASSERT_TRUE(live) << "cannot read " << name << "'s live XML";
  ASSERT_TRUE(shifted) << "the live XML never showed the shift: " << live->vm.baseline.cpu_millicores << " mc, "
                       << live->vm.baseline.memory_kib << " KiB";
  auto definition = read_xml(dom.get(), VIR_DOMAIN_XML_INACTIVE);
  ASSERT_TRUE(definition);
  EXPECT_EQ(definition->vm.baseline.cpu_millicores, 250u) << "a live shift changed the persistent definition";
  EXPECT_EQ(definition->vm.baseline.memory_kib, kDefinedMemoryKib);

  auto after = listed(inv, uuid);
  ASSERT_TRUE(after) << name << " not listed by the inventory after the shift";
  EXPECT_EQ(after->baseline.cpu_millicores, 250u) << "the shifted quota was reported as the baseline";
  EXPECT_EQ(after->baseline.memory_kib, kDefinedMemoryKib) << "the balloon was reported as the baseline";
  EXPECT_EQ(after->baseline.max_memory_kib, kMaxMemoryKib);
  EXPECT_EQ(after->baseline.vcpus, 1u);
  // What only exists live still comes from the running domain.
  EXPECT_EQ(after->libvirt_id, static_cast<int>(virDomainGetID(dom.get())));
  EXPECT_GT(after->pid, 0);
  EXPECT_NE(after->cgroup_id, 0u);
  ASSERT_EQ(after->taps.size(), 1u);
  EXPECT_FALSE(after->taps[0].dev.empty());
  EXPECT_EQ(after->taps[0].dev, live->vm.taps.at(0).dev);
  EXPECT_NE(after->taps[0].ifindex, 0u);
  ASSERT_FALSE(after->disks.empty());
  EXPECT_EQ(after->disks[0].source, live->vm.disks.at(0).source);
  EXPECT_EQ(after->ownership.owner, "tenant-1");
  // The balloon in force is still there to read, and differs.
  auto balloon = inv.balloon_kib(uuid);
  ASSERT_TRUE(balloon.ok()) << balloon.error().describe();
  EXPECT_EQ(*balloon, kLiveMemoryKib);

  // Transient: undefined while it runs, the domain has only its live definition.
  char* saved = virDomainGetXMLDesc(dom.get(), VIR_DOMAIN_XML_INACTIVE);
  ASSERT_NE(saved, nullptr) << libvirt_error();
  struct Redefine {  // so that scripts/testbed down finds a persistent domain whatever happens below
    virConnectPtr conn;
    virDomainPtr dom;
    std::string xml;
    bool redefine() {
      if (virDomainIsPersistent(dom) == 1) return true;
      virDomainPtr d = virDomainDefineXML(conn, xml.c_str());
      if (d == nullptr) return false;
      virDomainFree(d);
      return true;
    }
    ~Redefine() { redefine(); }
  } guard{conn.get(), dom.get(), saved};
  free(saved);  // NOLINT: libvirt allocates with malloc
  ASSERT_EQ(virDomainUndefine(dom.get()), 0) << "undefining the running " << name << ": " << libvirt_error();
  ASSERT_EQ(virDomainIsPersistent(dom.get()), 0);
  auto transient = listed(inv, uuid);
  ASSERT_TRUE(transient) << name << " not listed by the inventory while transient";
  EXPECT_EQ(transient->baseline.cpu_millicores, 600u) << "a transient domain's baseline is what is in force";
  EXPECT_EQ(transient->baseline.memory_kib, kLiveMemoryKib);

  ASSERT_TRUE(guard.redefine()) << "defining " << name << " again: " << libvirt_error();
  auto redefined = listed(inv, uuid);
  ASSERT_TRUE(redefined) << name << " not listed by the inventory after it was defined again";
  EXPECT_EQ(redefined->baseline.cpu_millicores, 250u);
  EXPECT_EQ(redefined->baseline.memory_kib, kDefinedMemoryKib);

  std::printf("inventory baseline e2e: %.1f s before teardown (the bed's %.1f s to come up included)\n",
              bed().up_seconds() + std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
              bed().up_seconds());
}

}  // namespace
}  // namespace morph::agent
