#include "hostagent/shifter/libvirt_mechanisms.h"

#include <fmt/format.h>
#include <libvirt/virterror.h>
#include <net/if.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <bit>
#include <cstdlib>
#include <thread>
#include <vector>

#include "hostagent/inventory/libvirt_ref.h"

namespace morph::agent::shifter {

namespace {

using Domain = DomainRef;

Error libvirt_error(const std::string& what) {
  virErrorPtr e = virGetLastError();
  Errc code = Errc::system;
  if (e && (e->code == VIR_ERR_NO_DOMAIN || e->code == VIR_ERR_OPERATION_INVALID)) code = Errc::not_found;
  if (e && e->code == VIR_ERR_NO_SUPPORT) code = Errc::unavailable;
  if (e && (e->code == VIR_ERR_INVALID_ARG || e->code == VIR_ERR_CONFIG_UNSUPPORTED)) code = Errc::invalid_argument;
  return Error(code, what + ": " + libvirt_last_error());
}

Result<Domain> lookup(virConnectPtr conn, const std::string& vm) {
  virDomainPtr d = virDomainLookupByUUIDString(conn, vm.c_str());
  if (d == nullptr) d = virDomainLookupByName(conn, vm.c_str());
  if (d == nullptr) return Error(Errc::not_found, fmt::format("no domain '{}' in libvirt", vm));
  return Domain(d);
}

// Text of the first `attr='value'` inside the first <tag ...> after `from` and before `until`.
std::string attr_in(const std::string& xml, size_t from, size_t until, const std::string& tag,
                    const std::string& attr) {
  size_t t = xml.find("<" + tag + " ", from);
  if (t == std::string::npos || t > until) return {};
  size_t close = xml.find('>', t);
  for (const char q : {'\'', '"'}) {
    size_t a = xml.find(attr + "=" + q, t);
    if (a == std::string::npos || a > close) continue;
    a += attr.size() + 2;
    return xml.substr(a, xml.find(q, a) - a);
  }
  return {};
}

int64_t millicores_of(int64_t quota, uint64_t period, uint32_t vcpus) {
  if (quota <= 0 || period == 0 || static_cast<uint64_t>(quota) >= period) return int64_t{vcpus} * 1000;
  return quota * 1000 * vcpus / static_cast<int64_t>(period);
}

}  // namespace

std::string libvirt_last_error() {
  const char* m = virGetLastErrorMessage();
  return m ? m : "unknown libvirt error";
}

Result<std::unique_ptr<LibvirtMechanisms>> LibvirtMechanisms::connect(const Options& options, NetLimiter* net) {
  virSetErrorFunc(nullptr, [](void*, virErrorPtr) {});  // errors are reported through Result, not stderr
  virConnectPtr conn = virConnectOpen(options.uri.c_str());
  if (conn == nullptr)
    return Error(Errc::unavailable, fmt::format("connecting to {}: {}", options.uri, libvirt_last_error()));
  return std::unique_ptr<LibvirtMechanisms>(new LibvirtMechanisms(conn, options, net));
}

LibvirtMechanisms::~LibvirtMechanisms() {
  virConnectClose(conn_);
}

Result<VmTarget> LibvirtMechanisms::resolve(const std::string& vm) {
  MORPH_TRY_ASSIGN(Domain dom, lookup(conn_, vm));
  if (virDomainIsActive(dom.get()) != 1) return Error(Errc::not_found, fmt::format("domain '{}' is not running", vm));
  VmTarget t;
  char uuid[VIR_UUID_STRING_BUFLEN];
  if (virDomainGetUUIDString(dom.get(), uuid) != 0) return libvirt_error("reading the domain uuid");
  t.uuid = uuid;
  t.name = virDomainGetName(dom.get());
  virDomainInfo info{};
  if (virDomainGetInfo(dom.get(), &info) != 0) return libvirt_error("reading domain info of " + t.name);
  t.vcpus = info.nrVirtCpu;
  t.max_memory_mib = info.maxMem / 1024;
  long ncpu = sysconf(_SC_NPROCESSORS_CONF);
  t.host_cpus = ncpu > 0 ? static_cast<uint32_t>(ncpu) : 1;

  char* raw = virDomainGetXMLDesc(dom.get(), 0);
  if (raw == nullptr) return libvirt_error("reading the XML of " + t.name);
  std::string xml(raw);
  free(raw);  // NOLINT(cppcoreguidelines-no-malloc): libvirt allocates with malloc
  // The seam for hostagent/inventory's VmInfo: only the first disk's target and the taps are needed.
  for (size_t d = xml.find("<disk "); d != std::string::npos; d = xml.find("<disk ", d + 1)) {
    size_t end = xml.find("</disk>", d);
    if (attr_in(xml, d, d + 64, "disk", "device") != "disk") continue;
    t.disk = attr_in(xml, d, end, "target", "dev");
    if (!t.disk.empty()) break;
  }
  if (!t.disk.empty())
    if (auto disk = find_disk(xml, t.disk); disk)
      if (auto p = place_disk(disk->source, opt_.storage_pools)) t.disk_tier = p->tier;
  for (size_t i = xml.find("<interface "); i != std::string::npos; i = xml.find("<interface ", i + 1)) {
    size_t end = xml.find("</interface>", i);
    std::string dev = attr_in(xml, i, end, "target", "dev");
    if (unsigned idx = dev.empty() ? 0 : if_nametoindex(dev.c_str()); idx != 0) t.tap_ifindexes.push_back(idx);
  }
  t.net_limiter = net_ != nullptr;
  return t;
}

Result<InForce> LibvirtMechanisms::read(const VmTarget& vm) {
  MORPH_TRY_ASSIGN(Domain dom, lookup(conn_, vm.uuid));
  InForce f;

  {  // scheduler
    int n = 0;
    char* type = virDomainGetSchedulerType(dom.get(), &n);
    if (type == nullptr) return libvirt_error("reading the scheduler type of " + vm.name);
    free(type);  // NOLINT(cppcoreguidelines-no-malloc)
    std::vector<virTypedParameter> params(static_cast<size_t>(n));
    if (virDomainGetSchedulerParametersFlags(dom.get(), params.data(), &n, VIR_DOMAIN_AFFECT_LIVE) != 0)
      return libvirt_error("reading scheduler parameters of " + vm.name);
    unsigned long long ull = 0;
    long long ll = 0;
    if (virTypedParamsGetULLong(params.data(), n, VIR_DOMAIN_SCHEDULER_CPU_SHARES, &ull) == 1) f.cpu_shares = ull;
    if (virTypedParamsGetULLong(params.data(), n, VIR_DOMAIN_SCHEDULER_VCPU_PERIOD, &ull) == 1) f.vcpu_period_us = ull;
    if (virTypedParamsGetLLong(params.data(), n, VIR_DOMAIN_SCHEDULER_VCPU_QUOTA, &ll) == 1) f.vcpu_quota_us = ll;
    // cgroup v2 "max" and v1 -1 both mean no cap; libvirt reports the former as a huge number.
    if (f.vcpu_quota_us > static_cast<int64_t>(1) << 44) f.vcpu_quota_us = -1;
    f.cpu_millicores = millicores_of(f.vcpu_quota_us, f.vcpu_period_us, vm.vcpus);
  }
  {  // vCPU placement
    const int maplen = VIR_CPU_MAPLEN(static_cast<int>(vm.host_cpus));
    std::vector<unsigned char> maps(static_cast<size_t>(maplen) * vm.vcpus);
    int got =
        virDomainGetVcpuPinInfo(dom.get(), static_cast<int>(vm.vcpus), maps.data(), maplen, VIR_DOMAIN_AFFECT_LIVE);
    if (got < 0) return libvirt_error("reading vCPU placement of " + vm.name);
    uint64_t mask = 0;
    for (int v = 0; v < got; ++v)
      for (uint32_t c = 0; c < vm.host_cpus && c < 64; ++c)
        if (VIR_CPU_USABLE(maps.data(), maplen, v, c)) mask |= uint64_t{1} << c;
    f.vcpu_pin = format_cpu_list(mask);
  }
  {  // memory
    virDomainInfo info{};
    if (virDomainGetInfo(dom.get(), &info) != 0) return libvirt_error("reading memory of " + vm.name);
    f.memory_mib = info.memory / 1024;
    virDomainMemoryStatStruct stats[VIR_DOMAIN_MEMORY_STAT_NR];
    int n = virDomainMemoryStats(dom.get(), stats, VIR_DOMAIN_MEMORY_STAT_NR, 0);
    for (int i = 0; i < n; ++i)
      if (stats[i].tag == VIR_DOMAIN_MEMORY_STAT_ACTUAL_BALLOON) f.balloon_actual_mib = stats[i].val / 1024;
    // virDomainGetInfo's figure only moves on QEMU's balloon-change event; the stat is current.
    if (f.balloon_actual_mib != 0) f.memory_mib = f.balloon_actual_mib;
  }
  MORPH_TRY(read_disk_limits(dom.get(), vm, f));
  f.storage_tier = kTierNone;  // the pool the disk's source is in now; none when it cannot be told
  if (auto disk = vm.disk.empty() ? Result<VmDisk>(Error(Errc::not_found, "no disk"))
                                  : LibvirtBlockCopy(dom.get(), 0).disk(vm.disk))
    if (auto p = place_disk(disk->source, opt_.storage_pools)) f.storage_tier = p->tier;
  MORPH_TRY(read_net_limits(vm, f));
  return f;
}

Status LibvirtMechanisms::read_disk_limits(virDomainPtr dom, const VmTarget& vm, InForce& f) {
  if (vm.disk.empty()) return {};
  // One call with room for every parameter (libvirt 9 has 20; it fills what exists and says how many),
  // instead of asking for the count first: each call is a job on the domain and a QEMU monitor query.
  std::vector<virTypedParameter> params(kIoTuneParamsMax);
  int n = static_cast<int>(params.size());
  if (virDomainGetBlockIoTune(dom, vm.disk.c_str(), params.data(), &n, VIR_DOMAIN_AFFECT_LIVE) != 0)
    return libvirt_error("reading I/O limits of " + vm.name);
  unsigned long long v = 0;
  f.disk_iops = f.disk_bps = 0;
  if (virTypedParamsGetULLong(params.data(), n, VIR_DOMAIN_BLOCK_IOTUNE_TOTAL_IOPS_SEC, &v) == 1) f.disk_iops = v;
  if (virTypedParamsGetULLong(params.data(), n, VIR_DOMAIN_BLOCK_IOTUNE_TOTAL_BYTES_SEC, &v) == 1) f.disk_bps = v;
  virTypedParamsClear(params.data(), n);
  return {};
}

Status LibvirtMechanisms::read_net_limits(const VmTarget& vm, InForce& f) {
  if (net_ == nullptr || vm.tap_ifindexes.empty()) return {};
  MORPH_TRY_ASSIGN(f.net_out_kbps, net_->limit(vm.tap_ifindexes.front(), NetDirection::guest_out));
  MORPH_TRY_ASSIGN(f.net_in_kbps, net_->limit(vm.tap_ifindexes.front(), NetDirection::guest_in));
  return {};
}

Result<InForce> LibvirtMechanisms::read_changed(const VmTarget& vm, const InForce& before,
                                                const std::vector<Resource>& changed) {
  // Disk and network limits are read back on their own (one monitor query, or a map lookup); the other
  // values stay as read at the start of the command. Anything else changed: read everything.
  bool disk = false;
  for (Resource r : changed) {
    if (r == Resource::disk_iops || r == Resource::disk_bps)
      disk = true;
    else if (r != Resource::net_out_kbps && r != Resource::net_in_kbps)
      return read(vm);
  }
  InForce f = before;
  if (disk) {
    MORPH_TRY_ASSIGN(Domain dom, lookup(conn_, vm.uuid));
    MORPH_TRY(read_disk_limits(dom.get(), vm, f));
  }
  MORPH_TRY(read_net_limits(vm, f));
  return f;
}

Result<std::string> LibvirtMechanisms::apply(const VmTarget& vm, const Adjustment& adj) {
  MORPH_TRY_ASSIGN(Domain dom, lookup(conn_, vm.uuid));
  const auto value = static_cast<uint64_t>(adj.value);
  TypedParams tp;
  auto sched = [&]() -> Result<std::string> {
    if (virDomainSetSchedulerParametersFlags(dom.get(), tp.p, tp.n, VIR_DOMAIN_AFFECT_LIVE) != 0)
      return libvirt_error(fmt::format("setting {} of {}", resource_name(adj.resource), vm.name));
    return std::string{};
  };
  auto iotune = [&](const char* field) -> Result<std::string> {
    virTypedParamsAddULLong(&tp.p, &tp.n, &tp.cap, field, value);
    if (virDomainSetBlockIoTune(dom.get(), vm.disk.c_str(), tp.p, tp.n, VIR_DOMAIN_AFFECT_LIVE) != 0)
      return libvirt_error(fmt::format("setting {} of {} disk {}", field, vm.name, vm.disk));
    return std::string{};
  };
  auto net = [&](NetDirection dir) -> Result<std::string> {
    if (net_ == nullptr) return Error(Errc::unavailable, "no network policer is loaded on this host");
    for (uint32_t ifindex : vm.tap_ifindexes) MORPH_TRY(net_->set_limit(ifindex, dir, value));
    return std::string{};
  };

  switch (adj.resource) {
    case Resource::cpu: {
      // vcpu_quota is per vCPU thread: spread the VM's millicores evenly over its vCPUs. A full cap is
      // "no cap" (-1), so restoring an uncapped baseline really removes the limit.
      const bool full = value >= uint64_t{vm.vcpus} * 1000;
      const long long quota =
          full ? -1 : static_cast<long long>(value * opt_.vcpu_period_us / (1000ULL * std::max(vm.vcpus, 1U)));
      virTypedParamsAddULLong(&tp.p, &tp.n, &tp.cap, VIR_DOMAIN_SCHEDULER_VCPU_PERIOD, opt_.vcpu_period_us);
      virTypedParamsAddLLong(&tp.p, &tp.n, &tp.cap, VIR_DOMAIN_SCHEDULER_VCPU_QUOTA,
                             full ? -1 : std::max(quota, 1000LL));
      return sched();
    }
    case Resource::cpu_shares:
      virTypedParamsAddULLong(&tp.p, &tp.n, &tp.cap, VIR_DOMAIN_SCHEDULER_CPU_SHARES, value);
      return sched();
    case Resource::vcpu_pin: {
      MORPH_TRY_ASSIGN(uint64_t mask, parse_cpu_list(adj.target));
      const int maplen = VIR_CPU_MAPLEN(static_cast<int>(vm.host_cpus));
      std::vector<unsigned char> map(static_cast<size_t>(maplen));
      for (uint32_t c = 0; c < vm.host_cpus && c < 64; ++c)
        if (mask >> c & 1) VIR_USE_CPU(map.data(), c);
      for (unsigned v = 0; v < vm.vcpus; ++v)
        if (virDomainPinVcpuFlags(dom.get(), v, map.data(), maplen, VIR_DOMAIN_AFFECT_LIVE) != 0)
          return libvirt_error(fmt::format("pinning vCPU {} of {} to {}", v, vm.name, adj.target));
      return std::string{};
    }
    case Resource::memory: {
      if (virDomainSetMemoryFlags(dom.get(), value * 1024, VIR_DOMAIN_AFFECT_LIVE) != 0)
        return libvirt_error(fmt::format("setting the balloon of {} to {} MiB", vm.name, value));
      // The balloon is a request to the guest: see whether it followed.
      const auto deadline = std::chrono::steady_clock::now() + opt_.balloon_follow_wait;
      uint64_t actual = 0;
      do {
        virDomainMemoryStatStruct stats[VIR_DOMAIN_MEMORY_STAT_NR];
        int n = virDomainMemoryStats(dom.get(), stats, VIR_DOMAIN_MEMORY_STAT_NR, 0);
        for (int i = 0; i < n; ++i)
          if (stats[i].tag == VIR_DOMAIN_MEMORY_STAT_ACTUAL_BALLOON) actual = stats[i].val / 1024;
        // Within 2 % or 4 MiB: guests balloon in pages and keep a little slack.
        const uint64_t slack = std::max<uint64_t>(value / 50, 4);
        if (actual + slack >= value && actual <= value + slack) return std::string{};
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      } while (std::chrono::steady_clock::now() < deadline);
      return fmt::format("guest did not follow balloon target: target {} MiB, balloon at {} MiB after {} ms", value,
                         actual, opt_.balloon_follow_wait.count());
    }
    case Resource::disk_iops:
      return iotune(VIR_DOMAIN_BLOCK_IOTUNE_TOTAL_IOPS_SEC);
    case Resource::disk_bps:
      return iotune(VIR_DOMAIN_BLOCK_IOTUNE_TOTAL_BYTES_SEC);
    case Resource::net_out_kbps:
      return net(NetDirection::guest_out);
    case Resource::net_in_kbps:
      return net(NetDirection::guest_in);
    case Resource::storage_tier: {
      LibvirtBlockCopy ops(dom.get(), opt_.storage_move.bandwidth_bytes_per_s);
      MORPH_TRY_ASSIGN(StorageMove mv,
                       move_disk_to_tier(ops, vm.name, vm.disk, adj.value, opt_.storage_pools, opt_.storage_move));
      return mv.warning;
    }
  }
  return Error(Errc::internal, "unknown resource");
}

}  // namespace morph::agent::shifter
