#pragma once
// Money bounds and checked arithmetic of the market. Every field that takes part in a product or a sum of
// money has a bound, chosen so that every product and sum the market, the ledger and the rescue policy
// compute fits in int64 (the table is docs/market.md, "Money bounds"); the bounds are enforced where values
// enter (bid validation, credits, inventory, policies) with errors naming the field and its bound.
// Inside, amounts are still computed with the checked operations below, so a value that slipped past a
// bound (a ledger written before the bounds existed) is refused or leaves its account unable to pay; it is
// never a wrapped amount. Pure functions, no I/O.

#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include "controller/market/types.h"

namespace morph::market {

// Units of any resource in one bid, one capacity, one baseline or ceiling (2^40: a disk_bps capacity of a
// TiB/s still fits).
inline constexpr int64_t kMaxQuantity = int64_t{1} << 40;
// µcr per unit-second: a bid's max_price, a reserve, a rescue policy's max price (2^40).
inline constexpr Micros kMaxPrice = int64_t{1} << 40;
// quantity × max_price of one bid: what it may cost per second at most (10^15 µcr/s = 10^9 credits/s).
inline constexpr Micros kMaxBidCostPerSecond = 1'000'000'000'000'000;
// The longest tick the market bills (1 h; controller.tick allows at most 1 min).
inline constexpr uint32_t kMaxTickMs = 3'600'000;
// One account's balance (10^18 µcr = 10^12 credits). A credit that would take a balance above it is refused.
inline constexpr Micros kMaxBalance = 1'000'000'000'000'000'000;
// Seconds a rescue policy's funds horizon may span (1 day).
inline constexpr uint32_t kMaxFundsHorizonS = 86'400;

// One bid's charge for one tick fits, whatever its quantity and price within the bounds.
static_assert(kMaxBidCostPerSecond / 1000 * kMaxTickMs <= std::numeric_limits<Micros>::max() / 2);

inline std::optional<int64_t> checked_mul(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}
inline std::optional<int64_t> checked_add(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}
// For sums compared against a balance: a sum past int64 is more than anyone can pay.
inline int64_t saturating_add(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) return b > 0 ? std::numeric_limits<int64_t>::max() : 0;
  return r;
}

// quantity × price × tick_ms / 1000, rounded down; nullopt when it does not fit int64 (never for a bid
// within the bounds above).
inline std::optional<Micros> charge_for(int64_t quantity, Micros price, uint32_t tick_ms) {
  const Wide v = static_cast<Wide>(quantity) * price * tick_ms / 1000;
  if (v > std::numeric_limits<Micros>::max() || v < std::numeric_limits<Micros>::min()) return std::nullopt;
  return static_cast<Micros>(v);
}

// Whether one bid's quantity × max_price is within kMaxBidCostPerSecond; if not, the refusal's text.
inline std::optional<std::string> bid_cost_problem(int64_t quantity, Micros max_price) {
  auto cost = checked_mul(quantity, max_price);
  if (cost && *cost <= kMaxBidCostPerSecond) return std::nullopt;
  return "quantity x max_price = " + std::to_string(quantity) + " x " + std::to_string(max_price) +
         " exceeds the bound of " + std::to_string(kMaxBidCostPerSecond) + " ucredits per second per bid";
}

}  // namespace morph::market
