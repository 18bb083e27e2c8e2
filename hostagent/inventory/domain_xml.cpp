#include "hostagent/inventory/domain_xml.h"

#include <libxml/parser.h>
#include <libxml/tree.h>

#include <cctype>
#include <charconv>
#include <limits>
#include <memory>
#include <mutex>

namespace morph::agent {
namespace {

struct DocFree {
  void operator()(xmlDoc* d) const { xmlFreeDoc(d); }
};
struct CtxtFree {
  void operator()(xmlParserCtxt* c) const { xmlFreeParserCtxt(c); }
};
using DocPtr = std::unique_ptr<xmlDoc, DocFree>;
__extension__ using U128 = unsigned __int128;  // -Wpedantic: a GCC/Clang extension, used only for overflow checks

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

// Parses with the network off and libxml2's own printing off; the parser context carries the error so
// concurrent parses on different threads do not race on a global.
Result<DocPtr> parse_xml(std::string_view xml, const char* what) {
  static std::once_flag init;
  std::call_once(init, [] { xmlInitParser(); });
  if (xml.size() > static_cast<size_t>(std::numeric_limits<int>::max()))
    return Error(Errc::invalid_argument, std::string(what) + " XML is too large");
  std::unique_ptr<xmlParserCtxt, CtxtFree> ctxt(xmlNewParserCtxt());
  if (!ctxt) return Error(Errc::internal, "cannot allocate an XML parser context");
  xmlDoc* doc = xmlCtxtReadMemory(ctxt.get(), xml.data(), static_cast<int>(xml.size()), what, nullptr,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  if (doc == nullptr) {
    const xmlError* e = &ctxt->lastError;
    std::string msg = std::string("malformed ") + what + " XML";
    if (e->message != nullptr) msg += " at line " + std::to_string(e->line) + ": " + trim(e->message);
    return Error(Errc::invalid_argument, msg);
  }
  return DocPtr(doc);
}

bool is(const xmlNode* n, const char* name) {
  return n->type == XML_ELEMENT_NODE && xmlStrEqual(n->name, reinterpret_cast<const xmlChar*>(name));
}

// First element child named `name` (any namespace: libvirt's own elements have none).
const xmlNode* child(const xmlNode* parent, const char* name) {
  if (parent == nullptr) return nullptr;
  for (const xmlNode* c = parent->children; c != nullptr; c = c->next)
    if (is(c, name)) return c;
  return nullptr;
}

std::string attr(const xmlNode* n, const char* name) {
  if (n == nullptr) return {};
  xmlChar* v = xmlGetNoNsProp(n, reinterpret_cast<const xmlChar*>(name));
  if (v == nullptr) return {};
  std::string out(reinterpret_cast<const char*>(v));
  xmlFree(v);
  return out;
}

std::string text(const xmlNode* n) {
  if (n == nullptr) return {};
  xmlChar* v = xmlNodeGetContent(n);
  if (v == nullptr) return {};
  std::string out = trim(reinterpret_cast<const char*>(v));
  xmlFree(v);
  return out;
}

Result<uint64_t> parse_u64(const std::string& s, const std::string& what) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size())
    return Error(Errc::invalid_argument, what + ": '" + s + "' is not a non-negative integer");
  return v;
}

// <memory unit='MiB'>128</memory> and friends → KiB. Absent element → 0.
Result<uint64_t> memory_element_kib(const xmlNode* dom, const char* name) {
  const xmlNode* n = child(dom, name);
  if (n == nullptr) return uint64_t{0};
  std::string where = std::string("<") + name + ">";
  MORPH_TRY_ASSIGN(uint64_t v, parse_u64(text(n), where));
  auto kib = to_kib(v, attr(n, "unit"));
  if (!kib.ok()) return std::move(kib).error().with_context(where);
  return kib;
}

VmOwnership parse_ownership(const xmlNode* metadata) {
  VmOwnership own;
  if (metadata == nullptr) return own;
  const auto* ns = reinterpret_cast<const xmlChar*>(kMorphVmXmlns.data());
  auto in_ns = [&](const xmlNode* n, const char* local) {
    return is(n, local) && n->ns != nullptr && xmlStrEqual(n->ns->href, ns);
  };
  for (const xmlNode* vm = metadata->children; vm != nullptr; vm = vm->next) {
    if (!in_ns(vm, "vm")) continue;
    for (const xmlNode* c = vm->children; c != nullptr; c = c->next) {
      if (in_ns(c, "owner")) own.owner = text(c);
      if (in_ns(c, "sla")) own.sla_class = text(c);
    }
    break;
  }
  return own;
}

std::vector<VmTap> parse_taps(const xmlNode* devices) {
  std::vector<VmTap> taps;
  if (devices == nullptr) return taps;
  for (const xmlNode* c = devices->children; c != nullptr; c = c->next) {
    if (!is(c, "interface")) continue;
    const std::string type = attr(c, "type");
    if (type != "ethernet" && type != "bridge" && type != "network") continue;
    VmTap tap;
    tap.dev = attr(child(c, "target"), "dev");
    tap.mac = to_lower(attr(child(c, "mac"), "address"));
    taps.push_back(std::move(tap));
  }
  return taps;
}

std::vector<VmDisk> parse_disks(const xmlNode* devices) {
  std::vector<VmDisk> disks;
  if (devices == nullptr) return disks;
  for (const xmlNode* c = devices->children; c != nullptr; c = c->next) {
    if (!is(c, "disk")) continue;
    const std::string device = attr(c, "device");
    if (!device.empty() && device != "disk" && device != "lun") continue;  // device defaults to disk
    const xmlNode* src = child(c, "source");
    std::string source;
    for (const char* a : {"file", "dev", "name"}) {
      source = attr(src, a);
      if (!source.empty()) break;
    }
    if (source.empty()) continue;
    const xmlNode* drv = child(c, "driver");
    disks.push_back(VmDisk{attr(child(c, "target"), "dev"), std::move(source), attr(drv, "type"), attr(drv, "cache")});
  }
  return disks;
}

// <cputune><period>P</period><quota>Q</quota></cputune> caps each vCPU at Q/P of a host CPU (libvirt's
// per-vCPU bandwidth; quota <= 0 means no cap). The VM's CPU baseline is that share times its vCPUs.
Result<uint32_t> baseline_cpu_millicores(const xmlNode* cputune, uint32_t vcpus) {
  const uint64_t full = uint64_t{vcpus} * 1000;
  if (cputune == nullptr) return static_cast<uint32_t>(full);
  std::string quota = text(child(cputune, "quota"));
  if (quota.empty() || quota[0] == '-') return static_cast<uint32_t>(full);  // -1 or absent: uncapped
  MORPH_TRY_ASSIGN(uint64_t q, parse_u64(quota, "domain XML: <cputune><quota>"));
  uint64_t period = 100000;  // the kernel's default CFS period when the definition names none
  if (std::string p = text(child(cputune, "period")); !p.empty()) {
    MORPH_TRY_ASSIGN(period, parse_u64(p, "domain XML: <cputune><period>"));
  }
  if (period == 0) return Error(Errc::invalid_argument, "domain XML: <cputune><period> must be positive");
  if (q == 0) return static_cast<uint32_t>(full);
  return static_cast<uint32_t>(std::min(full, vcpus * q * 1000 / period));
}

}  // namespace

Result<uint64_t> to_kib(uint64_t value, std::string_view unit_in) {
  const std::string unit = to_lower(unit_in);
  if (unit == "b" || unit == "byte" || unit == "bytes") return value / 1024 + (value % 1024 != 0 ? 1 : 0);
  if (unit.empty()) return value;
  uint64_t base = 0;
  if (unit.size() == 1 || unit.substr(1) == "ib")
    base = 1024;
  else if (unit.size() == 2 && unit[1] == 'b')
    base = 1000;
  else
    return Error(Errc::invalid_argument, "unknown memory unit '" + std::string(unit_in) + "'");
  int power = 0;
  switch (unit[0]) {
    case 'k':
      power = 1;
      break;
    case 'm':
      power = 2;
      break;
    case 'g':
      power = 3;
      break;
    case 't':
      power = 4;
      break;
    case 'p':
      power = 5;
      break;
    case 'e':
      power = 6;
      break;
    default:
      return Error(Errc::invalid_argument, "unknown memory unit '" + std::string(unit_in) + "'");
  }
  // bytes = value * base^power; KiB = ceil(bytes / 1024). Computed in 128 bits to detect overflow.
  U128 bytes = value;
  for (int i = 0; i < power; ++i) {
    bytes *= base;
    if (bytes > (static_cast<U128>(std::numeric_limits<uint64_t>::max()) << 10))
      return Error(Errc::invalid_argument,
                   std::to_string(value) + " " + std::string(unit_in) + " does not fit in 64 bits of KiB");
  }
  return static_cast<uint64_t>((bytes + 1023) / 1024);
}

Result<DomainXml> parse_domain_xml(std::string_view xml) {
  MORPH_TRY_ASSIGN(DocPtr doc, parse_xml(xml, "domain"));
  const xmlNode* dom = xmlDocGetRootElement(doc.get());
  if (dom == nullptr || !is(dom, "domain"))
    return Error(Errc::invalid_argument, std::string("domain XML: root element is <") +
                                             (dom ? reinterpret_cast<const char*>(dom->name) : "") +
                                             ">, expected <domain>");
  DomainXml out;
  VmInfo& vm = out.vm;
  vm.uuid = to_lower(text(child(dom, "uuid")));
  if (vm.uuid.empty()) return Error(Errc::invalid_argument, "domain XML: missing or empty <uuid>");
  vm.name = text(child(dom, "name"));
  if (vm.name.empty())
    return Error(Errc::invalid_argument, "domain XML: missing or empty <name> (uuid " + vm.uuid + ")");

  if (std::string id = attr(dom, "id"); !id.empty()) {
    MORPH_TRY_ASSIGN(uint64_t v, parse_u64(id, "domain XML: <domain id>"));
    if (v > static_cast<uint64_t>(std::numeric_limits<int>::max()))
      return Error(Errc::invalid_argument, "domain XML: <domain id> " + id + " out of range");
    vm.libvirt_id = static_cast<int>(v);
  }

  if (const xmlNode* vcpu = child(dom, "vcpu"); vcpu != nullptr) {
    MORPH_TRY_ASSIGN(uint64_t maxv, parse_u64(text(vcpu), "domain XML: <vcpu>"));
    uint64_t cur = maxv;
    if (std::string c = attr(vcpu, "current"); !c.empty()) {
      MORPH_TRY_ASSIGN(cur, parse_u64(c, "domain XML: <vcpu current>"));
    }
    if (maxv > std::numeric_limits<uint32_t>::max() || cur > maxv)
      return Error(Errc::invalid_argument, "domain XML: <vcpu> current " + std::to_string(cur) + " of " +
                                               std::to_string(maxv) + " is out of range");
    out.max_vcpus = static_cast<uint32_t>(maxv);
    vm.baseline.vcpus = static_cast<uint32_t>(cur);
  }
  MORPH_TRY_ASSIGN(vm.baseline.cpu_millicores, baseline_cpu_millicores(child(dom, "cputune"), vm.baseline.vcpus));

  auto mem = memory_element_kib(dom, "memory");
  if (!mem.ok()) return std::move(mem).error().with_context("domain XML");
  auto cur = memory_element_kib(dom, "currentMemory");
  if (!cur.ok()) return std::move(cur).error().with_context("domain XML");
  auto hot = memory_element_kib(dom, "maxMemory");
  if (!hot.ok()) return std::move(hot).error().with_context("domain XML");
  vm.baseline.max_memory_kib = *mem;
  vm.baseline.memory_kib = *cur != 0 ? *cur : *mem;
  out.hotplug_max_memory_kib = *hot;

  vm.ownership = parse_ownership(child(dom, "metadata"));
  const xmlNode* devices = child(dom, "devices");
  vm.taps = parse_taps(devices);
  vm.disks = parse_disks(devices);
  return out;
}

Result<DomainXml> with_definition_baseline(DomainXml live, const DomainXml& definition) {
  if (definition.vm.uuid != live.vm.uuid)
    return Error(Errc::invalid_argument,
                 "persistent definition names uuid " + definition.vm.uuid + ", the live XML " + live.vm.uuid);
  live.vm.baseline = definition.vm.baseline;
  live.max_vcpus = definition.max_vcpus;
  live.hotplug_max_memory_kib = definition.hotplug_max_memory_kib;
  return live;
}

Result<DomainXml> parse_running_domain_xml(std::string_view live_xml, std::string_view definition_xml) {
  auto live = parse_domain_xml(live_xml);
  if (!live.ok()) return std::move(live).error().with_context("live domain XML");
  auto def = parse_domain_xml(definition_xml);
  if (!def.ok()) return std::move(def).error().with_context("persistent definition of vm=" + live->vm.uuid);
  return with_definition_baseline(std::move(*live), *def);
}

Result<int> parse_domstatus_pid(std::string_view xml) {
  MORPH_TRY_ASSIGN(DocPtr doc, parse_xml(xml, "domstatus"));
  const xmlNode* root = xmlDocGetRootElement(doc.get());
  if (root == nullptr || !is(root, "domstatus"))
    return Error(Errc::invalid_argument, "status XML: root element is not <domstatus>");
  const std::string pid = attr(root, "pid");
  if (pid.empty()) return Error(Errc::invalid_argument, "status XML: <domstatus> has no pid attribute");
  MORPH_TRY_ASSIGN(uint64_t v, parse_u64(pid, "status XML: <domstatus pid>"));
  if (v == 0 || v > static_cast<uint64_t>(std::numeric_limits<int>::max()))
    return Error(Errc::invalid_argument, "status XML: <domstatus pid> " + pid + " out of range");
  return static_cast<int>(v);
}

}  // namespace morph::agent
