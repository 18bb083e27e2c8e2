// Domain XML parsing against fixtures saved from real libvirt 9.0 `virsh dumpxml` output (running domains
// defined for the purpose on this machine kind, then destroyed) and hand-broken copies of them.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "hostagent/inventory/domain_xml.h"
#include "tests/support/files.h"
#include "tests/support/requirements.h"

namespace morph::agent {
namespace {

std::string fixture(const std::string& name) {
  const std::string path = test::source_dir() + "/tests/fixtures/domains/" + name;
  EXPECT_TRUE(std::ifstream(path).good()) << "missing fixture " << path;
  return test::slurp(path);
}

// The sizes the parser read: vCPUs online and at most, memory now, at most and with hotplug (KiB).
void expect_sizes(const DomainXml& r, uint32_t vcpus, uint32_t max_vcpus, uint64_t memory_kib, uint64_t max_memory_kib,
                  uint64_t hotplug_max_memory_kib) {
  EXPECT_EQ(r.vm.baseline.vcpus, vcpus);
  EXPECT_EQ(r.max_vcpus, max_vcpus);
  EXPECT_EQ(r.vm.baseline.memory_kib, memory_kib);
  EXPECT_EQ(r.vm.baseline.max_memory_kib, max_memory_kib);
  EXPECT_EQ(r.hotplug_max_memory_kib, hotplug_max_memory_kib);
}

// A tap as the parser reports it (not resolved on this host: ifindex 0).
void expect_tap(const VmTap& t, const std::string& dev, const std::string& mac) {
  EXPECT_EQ(t.dev, dev);
  EXPECT_EQ(t.mac, mac) << dev;
  EXPECT_EQ(t.ifindex, 0u) << dev;
}

// A disk as the parser reports it.
void expect_disk(const VmDisk& d, const std::string& target, const std::string& source, const std::string& format,
                 const std::string& cache) {
  EXPECT_EQ(d.target, target);
  EXPECT_EQ(d.source, source) << target;
  EXPECT_EQ(d.format, format) << target;
  EXPECT_EQ(d.cache, cache) << target;
}

TEST(DomainXml, RunningEthernetRawDisk) {
  auto r = parse_domain_xml(fixture("running_ethernet_raw.xml"));
  ASSERT_TRUE(r.ok()) << r.error().describe();
  const VmInfo& vm = r->vm;
  EXPECT_EQ(vm.uuid, "51631e75-2b89-4837-8ecd-78c2caeafece");
  EXPECT_EQ(vm.name, "invtest-6839-fixture");
  EXPECT_EQ(vm.libvirt_id, 1);
  EXPECT_EQ(vm.pid, 0);  // host handles are not the parser's business
  EXPECT_EQ(vm.cgroup_id, 0u);
  EXPECT_EQ(vm.ownership.owner, "tenant-a");
  EXPECT_EQ(vm.ownership.sla_class, "gold");
  expect_sizes(*r, 2, 2, 131072, 131072, 0);
  ASSERT_EQ(vm.taps.size(), 1u);
  expect_tap(vm.taps[0], "vnet0", "52:54:00:aa:bb:01");
  ASSERT_EQ(vm.disks.size(), 1u);
  expect_disk(vm.disks[0], "vda", "/tmp/invtest/disk.raw", "raw", "none");
}

TEST(DomainXml, RunningBridgeNetworkBlockQcow2) {
  auto r = parse_domain_xml(fixture("running_bridge_network_block.xml"));
  ASSERT_TRUE(r.ok()) << r.error().describe();
  const VmInfo& vm = r->vm;
  EXPECT_EQ(vm.libvirt_id, 2);
  // The morph namespace wins over another namespace's <owner> in the same <metadata>.
  EXPECT_EQ(vm.ownership.owner, "tenant-b");
  EXPECT_EQ(vm.ownership.sla_class, "best-effort");
  expect_sizes(*r, 1, 3, 262144, 262144, 1048576);  // 1 vCPU: current='1'
  // type='bridge' and type='network' (live XML shows it as bridge + source network); type='user' has no tap.
  ASSERT_EQ(vm.taps.size(), 2u);
  expect_tap(vm.taps[0], "vnet1", "52:54:00:aa:bb:02");
  expect_tap(vm.taps[1], "vnet2", "52:54:00:aa:bb:03");
  // The empty cdrom is left out.
  ASSERT_EQ(vm.disks.size(), 2u);
  expect_disk(vm.disks[0], "vda", "/tmp/invtest/disk2.qcow2", "qcow2", "writeback");
  expect_disk(vm.disks[1], "vdb", "/dev/loop0", "raw", "directsync");
}

TEST(DomainXml, InactiveDomainHasNoIdAndNoTapNames) {
  auto r = parse_domain_xml(fixture("defined_inactive.xml"));
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->vm.libvirt_id, -1);
  ASSERT_EQ(r->vm.taps.size(), 2u);
  EXPECT_EQ(r->vm.taps[0].dev, "");
  EXPECT_EQ(r->vm.taps[1].mac, "52:54:00:aa:bb:03");
}

struct BadCase {
  const char* fixture;
  const char* message_part;
};

class DomainXmlMalformed : public ::testing::TestWithParam<BadCase> {};

TEST_P(DomainXmlMalformed, IsInvalidArgumentNamingTheProblem) {
  auto r = parse_domain_xml(fixture(GetParam().fixture));
  ASSERT_FALSE(r.ok()) << GetParam().fixture << " parsed";
  EXPECT_EQ(r.error().code(), Errc::invalid_argument);
  EXPECT_NE(r.error().message().find(GetParam().message_part), std::string::npos) << r.error().message();
}

INSTANTIATE_TEST_SUITE_P(Fixtures, DomainXmlMalformed,
                         ::testing::Values(BadCase{"malformed_truncated.xml", "malformed domain XML at line"},
                                           BadCase{"malformed_missing_uuid.xml", "<uuid>"},
                                           BadCase{"malformed_missing_name.xml", "<name>"},
                                           BadCase{"malformed_memory_unit.xml", "unknown memory unit 'furlongs'"},
                                           BadCase{"malformed_vcpu.xml", "<vcpu>: 'two'"},
                                           BadCase{"malformed_root.xml", "expected <domain>"}));

// A <cputune> quota in the definition is the VM's CPU baseline: what the market may not sell on.
TEST(DomainXml, CpuBaselineFromCputuneQuota) {
  const std::string base = fixture("running_ethernet_raw.xml");  // 2 vCPUs, no <cputune>
  auto with_cputune = [&](const std::string& cputune) {
    std::string xml = base;
    const std::string vcpu = "<vcpu placement='static'>2</vcpu>";
    xml.replace(xml.find(vcpu), vcpu.size(), vcpu + cputune);
    return parse_domain_xml(xml);
  };
  auto plain = parse_domain_xml(base);
  ASSERT_TRUE(plain.ok()) << plain.error().describe();
  EXPECT_EQ(plain->vm.baseline.cpu_millicores, 2000u);

  struct Row {
    const char* cputune;
    uint32_t millicores;
  };
  for (const Row& row : {Row{"<cputune><period>100000</period><quota>30000</quota></cputune>", 600u},
                         Row{"<cputune><quota>50000</quota></cputune>", 1000u},  // default period 100 ms
                         Row{"<cputune><period>50000</period><quota>-1</quota></cputune>", 2000u},
                         Row{"<cputune><period>100000</period><quota>250000</quota></cputune>", 2000u},
                         Row{"<cputune><shares>2048</shares></cputune>", 2000u}}) {
    auto r = with_cputune(row.cputune);
    ASSERT_TRUE(r.ok()) << row.cputune << ": " << r.error().describe();
    EXPECT_EQ(r->vm.baseline.cpu_millicores, row.millicores) << row.cputune;
  }
  auto bad = with_cputune("<cputune><period>0</period><quota>1000</quota></cputune>");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().what().find("<cputune><period>"), std::string::npos) << bad.error().what();
  auto junk = with_cputune("<cputune><quota>lots</quota></cputune>");
  ASSERT_FALSE(junk.ok());
  EXPECT_NE(junk.error().what().find("<cputune><quota>"), std::string::npos) << junk.error().what();
}

// Replaces the one occurrence of `from` in `xml` (a failed expectation when there is none).
std::string replaced(std::string xml, const std::string& from, const std::string& to) {
  const size_t at = xml.find(from);
  EXPECT_NE(at, std::string::npos) << "fixture lacks " << from;
  if (at != std::string::npos) xml.replace(at, from.size(), to);
  return xml;
}

// A running persistent domain after a shift: the live XML holds a raised quota and a ballooned
// <currentMemory>, the definition (VIR_DOMAIN_XML_INACTIVE) what the VM was given. The baseline is the
// definition's; what only exists live (id, tap names, disks as in force) and the rest are the live XML's.
TEST(DomainXml, RunningDomainTakesBaselineFromDefinition) {
  const std::string running = fixture("running_ethernet_raw.xml");  // 2 vCPUs, 128 MiB, no <cputune>
  const std::string vcpu = "<vcpu placement='static'>2</vcpu>";
  std::string live = replaced(running, vcpu, vcpu + "<cputune><period>100000</period><quota>60000</quota></cputune>");
  live = replaced(live, "<currentMemory unit='KiB'>131072</currentMemory>",
                  "<currentMemory unit='KiB'>98304</currentMemory>");
  live = replaced(live, "/tmp/invtest/disk.raw", "/tmp/invtest/fast/disk.raw");  // moved live
  std::string def = replaced(running, "<domain type='qemu' id='1'>", "<domain type='qemu'>");
  def = replaced(def, vcpu, vcpu + "<cputune><period>100000</period><quota>25000</quota></cputune>");
  def = replaced(def, "<target dev='vnet0'/>", "");  // libvirt names the tap when the VM starts

  auto r = parse_running_domain_xml(live, def);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  const VmInfo& vm = r->vm;
  EXPECT_EQ(vm.baseline.cpu_millicores, 500u);  // 2 x 25 %, not the live 2 x 60 %
  EXPECT_EQ(vm.baseline.memory_kib, 131072u);   // not the ballooned 98304
  EXPECT_EQ(vm.baseline.max_memory_kib, 131072u);
  EXPECT_EQ(vm.baseline.vcpus, 2u);
  EXPECT_EQ(r->max_vcpus, 2u);
  EXPECT_EQ(vm.uuid, "51631e75-2b89-4837-8ecd-78c2caeafece");
  EXPECT_EQ(vm.libvirt_id, 1);
  EXPECT_EQ(vm.ownership.owner, "tenant-a");
  ASSERT_EQ(vm.taps.size(), 1u);
  EXPECT_EQ(vm.taps[0].dev, "vnet0");
  ASSERT_EQ(vm.disks.size(), 1u);
  EXPECT_EQ(vm.disks[0].source, "/tmp/invtest/fast/disk.raw");

  // The same live XML read on its own (a transient domain) reports what is in force.
  auto alone = parse_domain_xml(live);
  ASSERT_TRUE(alone.ok()) << alone.error().describe();
  EXPECT_EQ(alone->vm.baseline.cpu_millicores, 1200u);
  EXPECT_EQ(alone->vm.baseline.memory_kib, 98304u);

  // vCPU and memory ceilings are the definition's as well.
  std::string grown = replaced(def, vcpu, "<vcpu placement='static' current='1'>3</vcpu>");
  grown =
      replaced(grown, "<memory unit='KiB'>", "<maxMemory slots='2' unit='KiB'>262144</maxMemory><memory unit='KiB'>");
  auto both = parse_running_domain_xml(live, grown);
  ASSERT_TRUE(both.ok()) << both.error().describe();
  EXPECT_EQ(both->vm.baseline.vcpus, 1u);
  EXPECT_EQ(both->max_vcpus, 3u);
  EXPECT_EQ(both->vm.baseline.cpu_millicores, 250u);
  EXPECT_EQ(both->hotplug_max_memory_kib, 262144u);
}

TEST(DomainXml, RunningDomainRejectsABadOrForeignDefinition) {
  const std::string running = fixture("running_ethernet_raw.xml");
  const std::string other_uuid =
      replaced(running, "51631e75-2b89-4837-8ecd-78c2caeafece", "00000000-2b89-4837-8ecd-78c2caeafece");
  auto foreign = parse_running_domain_xml(running, other_uuid);
  ASSERT_FALSE(foreign.ok());
  EXPECT_EQ(foreign.error().code(), Errc::invalid_argument);
  EXPECT_NE(foreign.error().message().find("persistent definition names uuid 00000000-"), std::string::npos)
      << foreign.error().message();

  auto bad_def = parse_running_domain_xml(running, fixture("malformed_memory_unit.xml"));
  ASSERT_FALSE(bad_def.ok());
  EXPECT_EQ(bad_def.error().code(), Errc::invalid_argument);
  EXPECT_NE(bad_def.error().message().find("persistent definition of vm=51631e75-"), std::string::npos)
      << bad_def.error().message();
  EXPECT_NE(bad_def.error().message().find("furlongs"), std::string::npos) << bad_def.error().message();

  auto bad_live = parse_running_domain_xml(fixture("malformed_truncated.xml"), running);
  ASSERT_FALSE(bad_live.ok());
  EXPECT_EQ(bad_live.error().code(), Errc::invalid_argument);
  EXPECT_NE(bad_live.error().message().find("live domain XML"), std::string::npos) << bad_live.error().message();
}

TEST(DomainXml, EmptyAndNonXmlInput) {
  for (const char* s : {"", "not xml at all", "<domain>"}) {
    auto r = parse_domain_xml(s);
    ASSERT_FALSE(r.ok()) << s;
    EXPECT_EQ(r.error().code(), Errc::invalid_argument);
  }
}

TEST(DomainXml, MemoryUnitsAndCurrentMemoryFallback) {
  const char* xml = R"(<domain type='qemu'><name>m</name><uuid>ABCDEF00-0000-4000-8000-000000000000</uuid>
    <maxMemory slots='2' unit='G'>4</maxMemory><memory unit='MiB'>512</memory><vcpu>1</vcpu></domain>)";
  auto r = parse_domain_xml(xml);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->vm.uuid, "abcdef00-0000-4000-8000-000000000000");  // normalised like libvirt prints it
  EXPECT_EQ(r->vm.baseline.max_memory_kib, 512u * 1024);
  EXPECT_EQ(r->vm.baseline.memory_kib, 512u * 1024);  // no <currentMemory>: same as <memory>
  EXPECT_EQ(r->hotplug_max_memory_kib, 4u * 1024 * 1024);
  EXPECT_TRUE(r->vm.ownership.owner.empty());
  EXPECT_TRUE(r->vm.taps.empty());
}

struct UnitCase {
  uint64_t value;
  const char* unit;
  uint64_t kib;
};

TEST(ToKib, ConvertsEveryLibvirtUnit) {
  const UnitCase cases[] = {
      {7, "", 7},
      {7, "KiB", 7},
      {7, "k", 7},
      {7, "K", 7},
      {1, "b", 1},
      {1024, "bytes", 1},
      {1025, "B", 2},
      {0, "bytes", 0},
      {1000, "KB", 977},
      {3, "MiB", 3072},
      {3, "M", 3072},
      {3, "MB", 2930},
      {2, "GiB", 2097152},
      {2, "g", 2097152},
      {2, "GB", 1953125},
      {1, "TiB", 1ull << 30},
      {1, "TB", 976562500},
      {1, "PiB", 1ull << 40},
      {1, "EiB", 1ull << 50},
      {1, "eb", 976562500000000ull},
  };
  for (const UnitCase& c : cases) {
    auto r = to_kib(c.value, c.unit);
    ASSERT_TRUE(r.ok()) << c.value << " " << c.unit << ": " << r.error().describe();
    EXPECT_EQ(*r, c.kib) << c.value << " " << c.unit;
  }
}

TEST(ToKib, RejectsUnknownUnitsAndOverflow) {
  for (const char* u : {"KiBi", "x", "kbb", "mi", "KiB "}) {
    auto r = to_kib(1, u);
    ASSERT_FALSE(r.ok()) << u;
    EXPECT_EQ(r.error().code(), Errc::invalid_argument);
  }
  auto big = to_kib(1ull << 20, "EiB");  // 2^80 bytes
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.error().message().find("does not fit"), std::string::npos) << big.error().message();
  auto edge = to_kib(16383, "PiB");  // ~2^64 bytes: too big for bytes, fine in KiB
  EXPECT_TRUE(edge.ok());
}

TEST(DomstatusPid, ReadsPidAttribute) {
  auto r = parse_domstatus_pid("<domstatus state='running' reason='booted' pid='9118'><domain/></domstatus>");
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(*r, 9118);
  EXPECT_FALSE(parse_domstatus_pid("<domstatus state='running'/>").ok());
  EXPECT_FALSE(parse_domstatus_pid("<domain pid='3'/>").ok());
  EXPECT_FALSE(parse_domstatus_pid("<domstatus pid='0'/>").ok());
}

}  // namespace
}  // namespace morph::agent
