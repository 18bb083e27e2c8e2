#pragma once
// Wall-clock cadence shared by the agent and the controller (docs/architecture.md "Timing").
//
// Every agent ends its KPI intervals on multiples of the interval in wall-clock time, and the controller
// clears its market ticks on multiples of the tick plus a small offset. With hosts' clocks kept by NTP
// (within a few ms of each other), the reports of an interval reach the controller just before the tick
// that follows it, so a rescue raised by those reports is cleared within the offset instead of waiting
// up to a whole tick at whatever phase the processes happened to start in.
#include <cstdint>

namespace morph {

// The first instant t (ns since the epoch) with t > now_ns + min_gap_ns and t ≡ offset_ns (mod period_ns).
// period_ns must be > 0; an offset of a period or more wraps.
constexpr uint64_t next_aligned_ns(uint64_t now_ns, uint64_t period_ns, uint64_t offset_ns, uint64_t min_gap_ns = 0) {
  const uint64_t from = now_ns + min_gap_ns;
  const uint64_t phase = offset_ns % period_ns;
  // The last aligned instant at or before `from`, then one period on.
  uint64_t base = from - (from % period_ns) + phase;
  if (base > from) base -= period_ns;
  return base + period_ns;
}

}  // namespace morph
