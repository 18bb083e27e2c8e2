#pragma once
// Log2Hist: a latency histogram in log2 microsecond buckets, as the BPF programs fill it
// (bpf/morph_kpi.h, MORPH_HIST_BUCKETS) and KpiReports carry it, and the figures read from one.
// Bucket i counts values in [2^i, 2^(i+1)) µs; bucket 0 also holds values below 1 µs, the last one
// everything from 2^26 µs (67 s) up. Pure functions: no I/O, no allocation.

#include <array>
#include <cstdint>

namespace morph::kpi {

inline constexpr int kHistBuckets = 27;
using Log2Hist = std::array<uint64_t, kHistBuckets>;

// Samples in the histogram (the sum saturates at UINT64_MAX instead of wrapping).
uint64_t hist_count(const Log2Hist& h) noexcept;

// A percentile (permille: 500 = median, 990 = p99) in µs: the upper edge of the bucket holding it, so
// never below the true value of a sample under 2^27 µs (conservative). 0 for an empty histogram.
uint64_t hist_percentile_us(const Log2Hist& h, uint32_t permille) noexcept;

}  // namespace morph::kpi
