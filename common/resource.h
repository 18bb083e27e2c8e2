#pragma once
// Resource: the one list of what Morph shifts on a VM and sells on the market, each with its name and
// unit, and the checked conversions to and from the wire's v1::Resource (schemas/types.fbs). Every layer
// uses this enum; the wire enum appears only where a message is encoded or decoded, through to_wire and
// from_wire, never a cast. What the market sells is kMarketResources, here and nowhere else.
// It owns names and conversions only: no pricing, no mechanism.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/error.h"

namespace morph::v1 {
enum class Resource : uint8_t;  // generated from schemas/types.fbs
}  // namespace morph::v1

namespace morph {

// The wire's `migrate` (8) is not a resource: migration becomes its own command, so its wire value stays
// reserved and from_wire refuses it. cpu_shares never travels: it is the agent's own.
enum class Resource : uint8_t {
  cpu,           // millicores of the whole VM (1000 = one host core)
  memory,        // MiB (the balloon)
  disk_iops,     // operations per second
  disk_bps,      // bytes per second
  net_out_kbps,  // kbit/s (1000 bit/s) the guest sends
  net_in_kbps,   // kbit/s the guest receives
  storage_tier,  // pool slot of the VM's disk (0 = the baseline pool)
  vcpu_pin,      // host CPUs the vCPUs are pinned to: the value counts them, the list is a target ("0-1")
  cpu_shares,    // CPU weight (cgroup cpu.shares): set by the agent to follow cpu, or by an operator
};
inline constexpr size_t kResourceCount = 9;
inline constexpr std::array<Resource, kResourceCount> kResources = {
    Resource::cpu,         Resource::memory,       Resource::disk_iops, Resource::disk_bps,  Resource::net_out_kbps,
    Resource::net_in_kbps, Resource::storage_tier, Resource::vcpu_pin,  Resource::cpu_shares};

// What the market sells, in the order of its books and of the market.reserve.* keys. Not vcpu_pin (a
// placement, not a quantity) nor cpu_shares (it follows cpu). These are the first values of the enum, so
// a market resource's value indexes arrays of kMarketResourceCount.
inline constexpr size_t kMarketResourceCount = 7;
inline constexpr std::array<Resource, kMarketResourceCount> kMarketResources = {
    Resource::cpu,          Resource::memory,      Resource::disk_iops,   Resource::disk_bps,
    Resource::net_out_kbps, Resource::net_in_kbps, Resource::storage_tier};
constexpr bool traded(Resource r) noexcept {
  return static_cast<size_t>(r) < kMarketResourceCount;
}

// "cpu", "memory", ... as in the wire schema, configs, the ledger and every command line.
const char* resource_name(Resource r) noexcept;
// Unit of a value: "millicore", "MiB", "IOPS", "byte/s", "kbit/s out", "kbit/s in", "storage-tier slot",
// "host CPU", "cgroup weight".
const char* resource_unit(Resource r) noexcept;
// By name; also the spellings the agent's shift command and lease state file used before there was one
// enum (cpu_millicores, memory_mib, mem, net_out, net_in).
std::optional<Resource> parse_resource(std::string_view name) noexcept;
// The names of `rs` joined by `sep`: "cpu, memory, ...", for help texts and errors.
std::string resource_names(std::span<const Resource> rs, std::string_view sep = ", ");

// To the wire: every resource but cpu_shares (invalid_argument), which never travels.
Result<v1::Resource> to_wire(Resource r);
// From the wire: migrate is refused (unavailable: reserved for migration, not a resource) and a value
// outside the schema's enum is invalid_argument, each with a message naming the value.
Result<Resource> from_wire(v1::Resource w);
// A wire value's name for messages and consoles: the resource's, "migrate", or "unknown(N)".
std::string wire_resource_name(v1::Resource w);

}  // namespace morph
