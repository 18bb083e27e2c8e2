#include "common/kpi/derived.h"

#include <algorithm>
#include <limits>

namespace morph::kpi {

namespace {
__extension__ typedef unsigned __int128 U128;  // products of nanoseconds and scale factors, never wrapping
constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
constexpr uint64_t kNsPerSecond = 1'000'000'000;

uint64_t saturate(U128 v) noexcept {
  return v > kMax ? kMax : static_cast<uint64_t>(v);
}
uint64_t add(uint64_t a, uint64_t b) noexcept {
  return saturate(static_cast<U128>(a) + b);
}
}  // namespace

double runq_wait_share(uint64_t run_ns, uint64_t wait_ns) noexcept {
  const U128 runnable = static_cast<U128>(run_ns) + wait_ns;
  return runnable == 0 ? 0.0 : static_cast<double>(wait_ns) / static_cast<double>(runnable);
}

uint64_t runq_wait_permille(uint64_t run_ns, uint64_t wait_ns) noexcept {
  const U128 runnable = static_cast<U128>(run_ns) + wait_ns;
  return runnable == 0 ? 0 : static_cast<uint64_t>(static_cast<U128>(wait_ns) * 1000 / runnable);
}

double runq_wait_per_run(uint64_t run_ns, uint64_t wait_ns) noexcept {
  return run_ns == 0 ? 0.0 : static_cast<double>(wait_ns) / static_cast<double>(run_ns);
}

double cpu_share(uint64_t ns, uint64_t interval_ns) noexcept {
  return interval_ns == 0 ? 0.0 : static_cast<double>(ns) / static_cast<double>(interval_ns);
}

double per_second(uint64_t count, uint64_t interval_ns) noexcept {
  return interval_ns == 0 ? 0.0 : static_cast<double>(count) * 1e9 / static_cast<double>(interval_ns);
}

uint64_t per_second_floor(uint64_t count, uint64_t interval_ns) noexcept {
  return interval_ns == 0 ? 0 : saturate(static_cast<U128>(count) * kNsPerSecond / interval_ns);
}

uint64_t delivered_tx_bytes(uint64_t tx_bytes, uint64_t tx_policed_bytes) noexcept {
  return tx_bytes - std::min(tx_bytes, tx_policed_bytes);
}

uint64_t net_drops(uint64_t rx_drops, uint64_t tx_drops) noexcept {
  return add(rx_drops, tx_drops);
}

uint64_t blk_ops(const VmKpis& k) noexcept {
  return add(k.blk_read_ops, k.blk_write_ops);
}

}  // namespace morph::kpi
