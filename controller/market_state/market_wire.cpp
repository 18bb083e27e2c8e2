#include "controller/market_state/market_wire.h"

namespace morph::controller {

v1::BidState wire(market::BidState s) {
  switch (s) {
    case market::BidState::active:
      return v1::BidState::active;
    case market::BidState::suspended:
      return v1::BidState::suspended;
    case market::BidState::cancelled:
      return v1::BidState::cancelled;
    case market::BidState::expired:
      return v1::BidState::expired;
  }
  return v1::BidState::active;
}

std::optional<Resource> traded_from_wire(v1::Resource w) {
  auto r = from_wire(w);
  if (!r || !traded(*r)) return std::nullopt;
  return *r;
}

const char* tier_text(v1::BidTier t) {
  switch (t) {
    case v1::BidTier::sla_critical:
      return "sla";
    case v1::BidTier::improvement:
      return "improve";
    case v1::BidTier::speculative:
      return "speculative";
  }
  return "?";
}

}  // namespace morph::controller
