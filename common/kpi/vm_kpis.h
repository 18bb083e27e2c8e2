#pragma once
// VmKpis: one VM's KPIs over one interval, the record the agent measures and publishes, the wire carries
// (common/msg/wire.h) and the controller ingests and acts on (names match docs/kpis.md). Counters are
// deltas over the interval, not running totals; gauges are values at its end. Figures derived from it
// (shares, rates) are in common/kpi/derived.h, never recomputed by hand elsewhere.

#include <cstdint>
#include <string>

#include "common/kpi/log2_hist.h"

namespace morph::kpi {

struct VmKpis {
  std::string uuid;
  std::string name;
  uint64_t interval_ns = 0;  // actual length of the window these deltas cover

  // CPU
  uint64_t cpu_run_ns = 0;        // on-CPU time of all threads in the VM's cgroup subtree
  uint64_t cpu_wait_ns = 0;       // run-queue delay (runnable but not running)
  uint64_t cpu_throttled_ns = 0;  // from cgroup cpu.stat
  Log2Hist runq_lat_us{};

  // Block
  uint64_t blk_read_bytes = 0, blk_write_bytes = 0;
  uint64_t blk_read_ops = 0, blk_write_ops = 0;
  Log2Hist blk_lat_us{};

  // Network, named from the guest's point of view (as libvirt's domstats are)
  uint64_t net_rx_bytes = 0, net_tx_bytes = 0;
  uint64_t net_rx_pkts = 0, net_tx_pkts = 0;
  uint64_t net_rx_drops = 0, net_tx_drops = 0;
  // Bytes the Morph policer dropped. rx: never delivered (not in net_rx_bytes); tx: sent by the guest
  // (in net_tx_bytes, as libvirt counts them) but never let out: see delivered_tx_bytes().
  uint64_t net_rx_policed_bytes = 0, net_tx_policed_bytes = 0;

  // Memory
  uint64_t mem_major_faults = 0, mem_minor_faults = 0;
  uint64_t mem_rss_bytes = 0;    // gauge: cgroup memory.stat anon+file
  uint64_t mem_balloon_kib = 0;  // gauge: libvirt balloon.current
};

}  // namespace morph::kpi
