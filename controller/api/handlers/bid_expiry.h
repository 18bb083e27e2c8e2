#pragma once
// The one rule that turns a client's expires_ns (wall clock, ns since the epoch) into a bid's expiry, the
// last tick it takes part in (docs/market.md, "Bids"), for submit and amend alike: the ticks from now to
// expires_ns rounded up, at least one, counted from the last tick cleared. A bid is never cut short of the
// time asked for; it may take part in one tick that falls after expires_ns. 0 means until cancelled; a
// time at or before now is refused. Pure: the caller reads the clock.

#include <cstdint>

#include "common/error.h"
#include "controller/market/types.h"

namespace morph::controller {

inline Result<market::Tick> expiry_tick(uint64_t expires_ns, uint64_t now_ns, market::Tick last_tick,
                                        uint64_t tick_ns) {
  if (expires_ns == 0) return market::Tick{0};
  if (expires_ns <= now_ns) return Error(Errc::invalid_argument, "expires_ns is in the past");
  const uint64_t ticks = (expires_ns - now_ns + tick_ns - 1) / tick_ns;  // > 0: expires_ns > now_ns
  return last_tick + ticks;
}

}  // namespace morph::controller
