#pragma once
// PlanetLabTrace: reads a per-VM CPU trace in the format of shared/data/planetlab (header `vm,step,cpu_pct`,
// one row per VM and 5-minute step; gzip-compressed or plain), checking every row. Anything wrong — a file
// that is missing or unreadable, a bad header, a row without three fields, a field that is not a number, a
// step outside 0..steps-1, a cpu_pct outside 0..100, a repeated or missing step — is an Errc::invalid_argument
// (or Errc::io) naming the file and the line. It only reads; it never forecasts.

#include <string>
#include <vector>

#include "common/error.h"

namespace morph::forecast {

struct Trace {
  std::vector<std::string> vms;              // in order of first appearance
  std::vector<std::vector<double>> cpu_pct;  // per VM, per step from 0, percent of one CPU
  size_t steps() const;                      // the longest VM's step count
};

struct TraceLimits {
  int steps = 288;  // steps per VM the trace may hold: one day of 5-minute steps
};

Result<Trace> read_trace(const std::string& path, TraceLimits limits = {});

// Millicores of demand for a cpu_pct of one CPU.
inline double pct_to_millicores(double pct) {
  return pct * 10.0;
}
inline double millicores_to_pct(double mc) {
  return mc / 10.0;
}

}  // namespace morph::forecast
