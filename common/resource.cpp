#include "common/resource.h"

#include <utility>

#include "types_generated.h"

namespace morph {

namespace {
struct Info {
  const char* name;
  const char* unit;
};
// Indexed by Resource; the names are the wire schema's.
constexpr std::array<Info, kResourceCount> kInfo = {{
    {"cpu", "millicore"},
    {"memory", "MiB"},
    {"disk_iops", "IOPS"},
    {"disk_bps", "byte/s"},
    {"net_out_kbps", "kbit/s out"},
    {"net_in_kbps", "kbit/s in"},
    {"storage_tier", "storage-tier slot"},
    {"vcpu_pin", "host CPU"},
    {"cpu_shares", "cgroup weight"},
}};
static_assert(kResources.back() == Resource::cpu_shares &&
                  static_cast<size_t>(Resource::cpu_shares) + 1 == kResourceCount,
              "kResources lists every Resource in order");

// Every resource that travels, with its wire value: all but cpu_shares. migrate (the wire's last value) is
// no resource.
constexpr std::pair<Resource, v1::Resource> kWire[] = {
    {Resource::cpu, v1::Resource::cpu},
    {Resource::memory, v1::Resource::memory},
    {Resource::disk_iops, v1::Resource::disk_iops},
    {Resource::disk_bps, v1::Resource::disk_bps},
    {Resource::net_out_kbps, v1::Resource::net_out_kbps},
    {Resource::net_in_kbps, v1::Resource::net_in_kbps},
    {Resource::storage_tier, v1::Resource::storage_tier},
    {Resource::vcpu_pin, v1::Resource::vcpu_pin},
};
static_assert(std::size(kWire) == kResourceCount - 1 && std::size(kWire) == static_cast<size_t>(v1::Resource::MAX),
              "every resource but cpu_shares has a wire value, and every wire value but migrate is a resource");

const Info* info(Resource r) noexcept {
  const auto i = static_cast<size_t>(r);
  return i < kInfo.size() ? &kInfo[i] : nullptr;
}
}  // namespace

const char* resource_name(Resource r) noexcept {
  const Info* i = info(r);
  return i ? i->name : "unknown";
}

const char* resource_unit(Resource r) noexcept {
  const Info* i = info(r);
  return i ? i->unit : "";
}

std::optional<Resource> parse_resource(std::string_view name) noexcept {
  for (Resource r : kResources)
    if (name == resource_name(r)) return r;
  if (name == "cpu_millicores") return Resource::cpu;
  if (name == "memory_mib" || name == "mem") return Resource::memory;
  if (name == "net_out") return Resource::net_out_kbps;
  if (name == "net_in") return Resource::net_in_kbps;
  return std::nullopt;
}

std::string resource_names(std::span<const Resource> rs, std::string_view sep) {
  std::string out;
  for (Resource r : rs) {
    if (!out.empty()) out += sep;
    out += resource_name(r);
  }
  return out;
}

Result<v1::Resource> to_wire(Resource r) {
  for (const auto& [res, wire] : kWire)
    if (res == r) return wire;
  return Error(Errc::invalid_argument,
               std::string("resource ") + resource_name(r) + " has no wire value: it is the agent's own setting");
}

Result<Resource> from_wire(v1::Resource w) {
  for (const auto& [res, wire] : kWire)
    if (wire == w) return res;
  if (w == v1::Resource::migrate)
    return Error(Errc::unavailable, "migrate is not a resource: the wire value is reserved for migration");
  return Error(Errc::invalid_argument, "wire resource " + std::to_string(static_cast<unsigned>(w)) +
                                           " is outside the schema's enum (0.." +
                                           std::to_string(static_cast<unsigned>(v1::Resource::MAX)) + ")");
}

std::string wire_resource_name(v1::Resource w) {
  if (auto r = from_wire(w)) return resource_name(*r);
  if (w == v1::Resource::migrate) return "migrate";
  return "unknown(" + std::to_string(static_cast<unsigned>(w)) + ")";
}

}  // namespace morph
