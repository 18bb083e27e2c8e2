#pragma once
// Domain XML → VmInfo. Pure functions over text: no libvirt connection, no file system, so every rule here
// is unit-tested against fixtures saved from real `virsh dumpxml` output (tests/fixtures/domains/).
// Must never guess: malformed XML or a domain without <uuid>/<name> is an Errc::invalid_argument naming
// what was wrong, never a half-filled VmInfo.

#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.h"
#include "hostagent/inventory/vm.h"

namespace morph::agent {

// XML namespace of Morph's owner metadata inside <metadata>.
inline constexpr std::string_view kMorphVmXmlns = "https://morph.dev/xmlns/vm/1";

// What a domain definition says beyond the shared VmInfo model: the ceilings a shifter may grow into.
struct DomainXml {
  VmInfo vm;                            // uuid, name, libvirt_id (id attribute of a live domain), ownership,
                                        // baseline, taps (dev, mac; ifindex 0), disks. pid/cgroup unresolved.
  uint32_t max_vcpus = 0;               // <vcpu> value; vm.baseline.vcpus is its current='' (online) count
  uint64_t hotplug_max_memory_kib = 0;  // <maxMemory>; 0 when the domain allows no memory hotplug
};

// Parses one domain XML (live or inactive) on its own. Rules:
//  - taps: <interface> of type ethernet, bridge or network (a live type='network' shows as type='bridge'
//    with <source network=...>), in document order; dev is <target dev> (empty for an inactive domain).
//  - disks: <disk device='disk'|'lun'> with a source (file=, dev=, or name= for network disks); empty
//    drives and cdroms are left out because they carry no guest I/O worth attributing.
//  - baseline: vcpus = current='' or the <vcpu> value; memory_kib = <currentMemory> (else <memory>);
//    max_memory_kib = <memory>, the balloon ceiling. Unit attributes are honoured (see to_kib).
//  - ownership: <morph:owner>, <morph:sla> of the kMorphVmXmlns element in <metadata>; empty when absent.
Result<DomainXml> parse_domain_xml(std::string_view xml);

// A running, persistent domain read twice: its live XML (virDomainGetXMLDesc flags 0: what is in force)
// and its persistent definition (VIR_DOMAIN_XML_INACTIVE). The Resource Shifting Engine changes only live
// values (a raised <cputune> quota, a ballooned <currentMemory>), so the baseline (vcpus, cpu_millicores,
// memory_kib, max_memory_kib) and the ceilings (max_vcpus, hotplug_max_memory_kib) come from the
// definition; everything else (uuid, name, libvirt id, ownership, taps with their device names, disks as
// in force, e.g. after a storage-tier move) from the live XML. A definition that does not parse, or names
// another uuid, is Errc::invalid_argument saying which of the two it was.
Result<DomainXml> parse_running_domain_xml(std::string_view live_xml, std::string_view definition_xml);

// The merge behind parse_running_domain_xml for a caller that has parsed both: `live` with the baseline and
// ceilings of `definition`; Errc::invalid_argument when the two name different uuids.
Result<DomainXml> with_definition_baseline(DomainXml live, const DomainXml& definition);

// The QEMU pid from libvirt's status file (/run/libvirt/qemu/NAME.xml, root element <domstatus pid=...>).
Result<int> parse_domstatus_pid(std::string_view xml);

// Converts a libvirt scaled integer to KiB, rounding bytes up to the next KiB as libvirt does.
// Units (case as libvirt accepts): b, bytes; KB (10^3), k, KiB (2^10); MB, M, MiB; GB, G, GiB; TB, T, TiB;
// PB, P, PiB; EB, E, EiB. An empty unit means KiB. Unknown unit or overflow → Errc::invalid_argument.
Result<uint64_t> to_kib(uint64_t value, std::string_view unit);

}  // namespace morph::agent
