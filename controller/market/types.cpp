#include "controller/market/types.h"

namespace morph::market {
namespace {
constexpr std::array<const char*, kTierCount> kTierNames = {"sla", "improve", "speculative"};
constexpr std::array<const char*, 4> kStateNames = {"active", "suspended", "cancelled", "expired"};
constexpr std::array<const char*, 5> kReasonNames = {"none", "no_capacity", "price_below_market", "insufficient_funds",
                                                     "suspended"};

template <class E, size_t N>
std::optional<E> parse(const std::array<const char*, N>& names, std::string_view s) {
  for (size_t i = 0; i < N; ++i)
    if (s == names[i]) return static_cast<E>(i);
  return std::nullopt;
}
}  // namespace

std::optional<Resource> parse_traded_resource(std::string_view s) noexcept {
  auto r = parse_resource(s);
  if (!r || !traded(*r) || s != resource_name(*r)) return std::nullopt;
  return r;
}
const char* tier_name(Tier t) noexcept {
  return kTierNames.at(static_cast<size_t>(t));
}
const char* bid_state_name(BidState s) noexcept {
  return kStateNames.at(static_cast<size_t>(s));
}
const char* failure_reason_name(FailureReason r) noexcept {
  return kReasonNames.at(static_cast<size_t>(r));
}
std::optional<Tier> parse_tier(std::string_view s) noexcept {
  return parse<Tier>(kTierNames, s);
}
std::optional<BidState> parse_bid_state(std::string_view s) noexcept {
  return parse<BidState>(kStateNames, s);
}
std::optional<FailureReason> parse_failure_reason(std::string_view s) noexcept {
  return parse<FailureReason>(kReasonNames, s);
}

}  // namespace morph::market
