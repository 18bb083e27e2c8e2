// libvirt typed-parameter mapping and lifecycle event mapping; the field list is the `virsh domstats`
// output of a real running domain on this machine kind (libvirt 9.0, QEMU 7.2).
#include <gtest/gtest.h>
#include <libvirt/libvirt.h>

#include <optional>
#include <utility>
#include <vector>

#include "hostagent/inventory/inventory.h"
#include "hostagent/inventory/libvirt_counters.h"

namespace morph::agent {
namespace {

TEST(LibvirtCounters, MapsDomstatsFields) {
  std::vector<StatField> f = {
      {"state.state", 1, ""},
      {"cpu.time", 401739000, ""},
      {"cpu.user", 229578000, ""},
      {"balloon.current", 262144, ""},
      {"balloon.maximum", 262144, ""},
      {"vcpu.current", 1, ""},
      {"vcpu.maximum", 3, ""},
      {"vcpu.0.state", 1, ""},
      {"vcpu.0.time", 160000000, ""},
      {"vcpu.0.delay", 2930429, ""},
      {"net.count", 2, ""},
      {"net.1.name", 0, "vnet2"},
      {"net.1.rx.bytes", 110, ""},
      {"net.0.name", 0, "vnet1"},
      {"net.0.rx.bytes", 111, ""},
      {"net.0.tx.bytes", 5, ""},
      {"net.0.rx.pkts", 1, ""},
      {"net.0.tx.drop", 3, ""},
      {"block.count", 2, ""},
      {"block.0.name", 0, "vda"},
      {"block.0.path", 0, "/tmp/d.qcow2"},
      {"block.0.rd.bytes", 512, ""},
      {"block.0.rd.reqs", 1, ""},
      {"block.1.name", 0, "vdb"},
      {"block.1.wr.bytes", 4096, ""},
      {"block.1.wr.reqs", 2, ""},
      {"net.x.rx.bytes", 9, ""},
  };
  LibvirtCounters c = counters_from_fields("u", "n", f);
  EXPECT_EQ(c.uuid, "u");
  EXPECT_EQ(c.cpu_time_ns, 401739000u);
  EXPECT_EQ(c.balloon_current_kib, 262144u);
  EXPECT_EQ(c.balloon_maximum_kib, 262144u);
  ASSERT_EQ(c.vcpu_delay_ns.size(), 1u);
  EXPECT_EQ(c.vcpu_delay_ns[0], 2930429u);
  ASSERT_EQ(c.net.size(), 2u);
  EXPECT_EQ(c.net[0].dev, "vnet1");
  EXPECT_EQ(c.net[0].rx_bytes, 111u);
  EXPECT_EQ(c.net[0].tx_bytes, 5u);
  EXPECT_EQ(c.net[0].rx_pkts, 1u);
  EXPECT_EQ(c.net[0].tx_drop, 3u);
  EXPECT_EQ(c.net[1].dev, "vnet2");
  EXPECT_EQ(c.net[1].rx_bytes, 110u);
  ASSERT_EQ(c.block.size(), 2u);
  EXPECT_EQ(c.block[0].target, "vda");
  EXPECT_EQ(c.block[0].path, "/tmp/d.qcow2");
  EXPECT_EQ(c.block[0].rd_bytes, 512u);
  EXPECT_EQ(c.block[0].rd_reqs, 1u);
  EXPECT_EQ(c.block[1].wr_bytes, 4096u);
  EXPECT_EQ(c.block[1].wr_reqs, 2u);
}

TEST(LibvirtCounters, AbsentSectionsStayEmpty) {
  LibvirtCounters c = counters_from_fields("u", "n", {{"cpu.time", 5, ""}, {"vcpu.7.delay", 9, ""}});
  EXPECT_FALSE(c.balloon_current_kib.has_value());
  EXPECT_TRUE(c.net.empty());
  ASSERT_EQ(c.vcpu_delay_ns.size(), 8u);
  EXPECT_FALSE(c.vcpu_delay_ns[0].has_value());  // vCPU 0 reported no delay
  EXPECT_EQ(c.vcpu_delay_ns[7], 9u);
  // An absurd index is ignored rather than resizing to it.
  LibvirtCounters huge = counters_from_fields("u", "n", {{"net.99999999.rx.bytes", 1, ""}});
  EXPECT_TRUE(huge.net.empty());
}

TEST(LifecycleEventKind, MapsLibvirtEvents) {
  // Per libvirt event: its details and the kind each is reported as (nullopt: not reported).
  using Details = std::vector<std::pair<int, std::optional<VmEventKind>>>;
  const std::vector<std::pair<int, Details>> events = {
      {VIR_DOMAIN_EVENT_STARTED,
       {{VIR_DOMAIN_EVENT_STARTED_BOOTED, VmEventKind::started},
        {VIR_DOMAIN_EVENT_STARTED_RESTORED, VmEventKind::started},
        {VIR_DOMAIN_EVENT_STARTED_MIGRATED, VmEventKind::migrated_in}}},
      {VIR_DOMAIN_EVENT_STOPPED,
       {{VIR_DOMAIN_EVENT_STOPPED_DESTROYED, VmEventKind::stopped},
        {VIR_DOMAIN_EVENT_STOPPED_FAILED, VmEventKind::stopped},
        {VIR_DOMAIN_EVENT_STOPPED_MIGRATED, VmEventKind::migrated_out}}},
      {VIR_DOMAIN_EVENT_SUSPENDED, {{VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED, VmEventKind::suspended}}},
      {VIR_DOMAIN_EVENT_RESUMED, {{VIR_DOMAIN_EVENT_RESUMED_MIGRATED, VmEventKind::resumed}}},
      {VIR_DOMAIN_EVENT_DEFINED, {{VIR_DOMAIN_EVENT_DEFINED_UPDATED, VmEventKind::defined}}},
      {VIR_DOMAIN_EVENT_UNDEFINED, {{VIR_DOMAIN_EVENT_UNDEFINED_REMOVED, VmEventKind::undefined}}},
      {VIR_DOMAIN_EVENT_SHUTDOWN, {{VIR_DOMAIN_EVENT_SHUTDOWN_FINISHED, std::nullopt}}},
      {VIR_DOMAIN_EVENT_CRASHED, {{VIR_DOMAIN_EVENT_CRASHED_PANICKED, std::nullopt}}},
  };
  for (const auto& [event, details] : events)
    for (const auto& [detail, want] : details) {
      VmEventKind k = VmEventKind::started;
      EXPECT_EQ(lifecycle_event_kind(event, detail, k), want.has_value()) << event << "/" << detail;
      if (want) {
        EXPECT_EQ(k, *want) << event << "/" << detail << " → " << vm_event_kind_name(k);
      }
    }
}

}  // namespace
}  // namespace morph::agent
