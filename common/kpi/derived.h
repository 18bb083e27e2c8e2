#pragma once
// Figures derived from a VM's KPIs, each defined once and read the same way by the agent (its text
// output and gauges), the SLA rescue policy, the consoles (morphctl, top, the dashboard) and the tests.
// Pure arithmetic over plain numbers, so a VmKpis and the wire's VmKpi read alike, with VmKpis
// shorthands. A zero interval or a zero denominator gives 0, never a division by zero; integer figures
// saturate at UINT64_MAX instead of wrapping.

#include <cstdint>

#include "common/kpi/vm_kpis.h"

namespace morph::kpi {

// Run-queue wait share: of the time the VM's threads were runnable (on a CPU or waiting for one), the
// part spent waiting, wait / (run + wait), in [0, 1]. 0 when they were never runnable. This is what the
// SLA policy's runq_wait_permille threshold means (docs/market.md); wait / interval is not a share
// (several threads wait at once): that is cpu_share(wait_ns, interval_ns).
double runq_wait_share(uint64_t run_ns, uint64_t wait_ns) noexcept;
// The same in whole per mille, rounded down: what the SLA threshold is compared with.
uint64_t runq_wait_permille(uint64_t run_ns, uint64_t wait_ns) noexcept;

// Run-queue wait per CPU-second run: wait / run (2 = waited twice as long as it ran). 0 when it never ran.
double runq_wait_per_run(uint64_t run_ns, uint64_t wait_ns) noexcept;

// CPU time (on-CPU, waiting or throttled) as a share of one CPU over an interval: ns / interval_ns.
// 1 = one core for the whole interval; above 1 when several threads ran (or waited) at once.
double cpu_share(uint64_t ns, uint64_t interval_ns) noexcept;

// A counter's rate over an interval, per second.
double per_second(uint64_t count, uint64_t interval_ns) noexcept;
// The same in whole units per second, rounded down: what integer thresholds are compared with.
uint64_t per_second_floor(uint64_t count, uint64_t interval_ns) noexcept;

// Transmit bytes that left the host: what the guest sent minus what the Morph policer dropped of it
// (never below 0: the two counters are read at slightly different moments).
uint64_t delivered_tx_bytes(uint64_t tx_bytes, uint64_t tx_policed_bytes) noexcept;
// Packets dropped in either direction (the tap's and the policer's).
uint64_t net_drops(uint64_t rx_drops, uint64_t tx_drops) noexcept;

// Shorthands over one record.
inline double runq_wait_share(const VmKpis& k) noexcept {
  return runq_wait_share(k.cpu_run_ns, k.cpu_wait_ns);
}
inline uint64_t runq_wait_permille(const VmKpis& k) noexcept {
  return runq_wait_permille(k.cpu_run_ns, k.cpu_wait_ns);
}
inline uint64_t delivered_tx_bytes(const VmKpis& k) noexcept {
  return delivered_tx_bytes(k.net_tx_bytes, k.net_tx_policed_bytes);
}
inline uint64_t net_drops(const VmKpis& k) noexcept {
  return net_drops(k.net_rx_drops, k.net_tx_drops);
}
// Block requests completed, reads and writes (each counted once however many pieces it completed in).
uint64_t blk_ops(const VmKpis& k) noexcept;

}  // namespace morph::kpi
