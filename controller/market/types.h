#pragma once
// Domain types of the Morph market: accounts, hosts, VMs, bids and what a clearing round produces.
// Money is integer micro-credits (int64) everywhere; nothing here is ever a floating-point amount.
// These are plain values; the FlatBuffers wire types (schemas/) map onto them, never the reverse.

#include <array>
#include <cassert>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/resource.h"

namespace morph::market {

using Micros = int64_t;  // micro-credits
using BidId = uint64_t;
using Tick = uint64_t;                // tick numbers start at 1; 0 means "none"
__extension__ typedef __int128 Wide;  // intermediate products of quantity x price x time

// Resources are morph::Resource (common/resource.h); the market sells kMarketResources, one book each.

// Served in this order; the numeric value is the service rank.
enum class Tier : uint8_t { sla = 0, improve = 1, speculative = 2 };
inline constexpr int kTierCount = 3;

enum class BidState : uint8_t { active, suspended, cancelled, expired };

// Why a bid got less than it asked for, or nothing at all.
enum class FailureReason : uint8_t { none, no_capacity, price_below_market, insufficient_funds, suspended };

// A resource the market sells, by its name (as the ledger stores it); nullopt for any other name.
std::optional<Resource> parse_traded_resource(std::string_view s) noexcept;
const char* tier_name(Tier t) noexcept;
const char* bid_state_name(BidState s) noexcept;
const char* failure_reason_name(FailureReason r) noexcept;
std::optional<Tier> parse_tier(std::string_view s) noexcept;
std::optional<BidState> parse_bid_state(std::string_view s) noexcept;
std::optional<FailureReason> parse_failure_reason(std::string_view s) noexcept;

// One amount per market resource, indexed by its value (kMarketResources are the enum's first values).
using ResourceVector = std::array<int64_t, kMarketResourceCount>;
inline int64_t& at(ResourceVector& v, Resource r) {
  assert(traded(r));  // a resource the market does not sell has no slot (validated at the market's edge)
  return v[static_cast<size_t>(r)];
}
inline int64_t at(const ResourceVector& v, Resource r) {
  assert(traded(r));
  return v[static_cast<size_t>(r)];
}

struct Account {
  std::string id;
  Micros balance = 0;
};

struct HostSpec {
  std::string id;
  ResourceVector capacity{};
};

struct VmSpec {
  std::string id;     // libvirt UUID or name; unique across the fleet
  std::string owner;  // account id
  std::string host;
  ResourceVector baseline{};
  ResourceVector ceiling{};  // baseline + every increment the VM may ever hold
};

// What a tenant sends. Tier arrives as text so an unknown tier is refused with a message, not a cast.
struct BidRequest {
  std::string account;
  std::string vm;
  Resource resource = Resource::cpu;
  std::string tier;
  int64_t quantity = 0;  // increment above baseline, in the resource's unit
  int64_t min_fill = 0;  // 0 means "= quantity" (all or nothing); partial fills need min_fill < quantity
  Micros max_price = 0;  // per unit per second
  Tick expiry = 0;       // last tick the bid takes part in; 0 = until cancelled
};

struct BidAmendment {
  std::optional<int64_t> quantity;
  std::optional<int64_t> min_fill;
  std::optional<Micros> max_price;
  std::optional<Tick> expiry;
};

struct Bid {
  BidId id = 0;
  std::string account;
  std::string vm;
  std::string host;
  Resource resource = Resource::cpu;
  Tier tier = Tier::improve;
  int64_t quantity = 0;
  int64_t min_fill = 0;
  Micros max_price = 0;
  Tick expiry = 0;
  Tick submitted = 0;  // tick at which it was submitted
  uint64_t seq = 0;    // submission order: the "earlier bid" tie-break
  BidState state = BidState::active;
  FailureReason state_reason = FailureReason::none;  // why suspended
};

// An allocation in force after a tick: bid `bid_id` holds `quantity` units at `price`.
struct Allocation {
  BidId bid_id = 0;
  std::string account;
  std::string vm;
  std::string host;
  Resource resource = Resource::cpu;
  Tier tier = Tier::improve;
  int64_t quantity = 0;
  Micros price = 0;       // uniform price of (host, resource, tier) this tick
  Tick since = 0;         // tick the current holding began (for the minimum hold time)
  Tick notice_until = 0;  // speculative only: revocation notice given, capacity kept until this tick
};

struct Charge {
  BidId bid_id = 0;
  std::string account;
  Micros amount = 0;  // quantity * price * tick_ms / 1000, rounded down
};

struct Failure {
  BidId bid_id = 0;
  std::string account;
  FailureReason reason = FailureReason::none;
  std::string detail;
};

struct PriceQuote {
  std::string host;
  Resource resource = Resource::cpu;
  Tier tier = Tier::improve;
  Micros price = 0;
  int64_t sold = 0;  // units allocated in this tier
};

// Everything one tick decides. Computed without side effects; applied to the market only after the
// ledger has committed it, so a crash between the two loses nothing and duplicates nothing.
struct TickOutcome {
  Tick tick = 0;
  std::vector<Allocation> allocations;
  std::vector<Charge> charges;
  std::vector<Failure> failures;
  std::vector<PriceQuote> prices;
  std::vector<Bid> bid_changes;  // bids whose state changed this tick (suspended, expired)
  Micros revenue = 0;            // = sum of charges
};

}  // namespace morph::market
