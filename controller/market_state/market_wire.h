#pragma once
// The market's enums on the wire (schemas/types.fbs) and back, through common/resource.h's checked
// conversions for resources; traded_from_wire refuses a resource the market does not sell.

#include <optional>

#include "api_request_generated.h"
#include "common/resource.h"
#include "controller/market/types.h"

namespace morph::controller {

// Every resource the market sells travels on the wire (common/resource.h), so this never fails.
inline v1::Resource wire(Resource r) {
  return to_wire(r).value();
}
inline v1::BidTier wire(market::Tier t) {
  return static_cast<v1::BidTier>(t);
}
v1::BidState wire(market::BidState s);
// The market resource a wire value names; nullopt for one the market does not sell.
std::optional<Resource> traded_from_wire(v1::Resource w);
// A wire tier as the market names it ("sla", "improve", "speculative"; "?" for an unknown number).
const char* tier_text(v1::BidTier t);

}  // namespace morph::controller
