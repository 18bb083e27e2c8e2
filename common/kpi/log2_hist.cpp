#include "common/kpi/log2_hist.h"

#include <cstddef>
#include <limits>

namespace morph::kpi {

namespace {
__extension__ typedef unsigned __int128 U128;  // sums and products of counts, never wrapping
}  // namespace

uint64_t hist_count(const Log2Hist& h) noexcept {
  uint64_t total = 0;
  for (uint64_t c : h)
    total = c > std::numeric_limits<uint64_t>::max() - total ? std::numeric_limits<uint64_t>::max() : total + c;
  return total;
}

uint64_t hist_percentile_us(const Log2Hist& h, uint32_t permille) noexcept {
  const uint64_t total = hist_count(h);
  if (total == 0) return 0;
  // Smallest bucket whose cumulative count reaches the rank, rounded up; 128 bits so no count overflows.
  const U128 rank = (static_cast<U128>(total) * permille + 999) / 1000;
  U128 seen = 0;
  for (std::size_t i = 0; i < h.size(); ++i) {
    seen += h[i];
    if (seen >= rank) return uint64_t{1} << (i + 1);
  }
  return uint64_t{1} << h.size();  // permille above 1000: past the last bucket
}

}  // namespace morph::kpi
