#pragma once
// Network rate policer: structs shared by bpf/policer.bpf.c and user space (hostagent/shifter/net_policer).
// One token bucket per (tap ifindex, direction). Directions are named from the guest's view:
//   POLICER_DIR_OUT (guest transmit) = packets arriving on the host tap's ingress hook;
//   POLICER_DIR_IN  (guest receive)  = packets leaving the host tap (egress hook).
// Plain __u64 fields only; never a second copy of these structs elsewhere.

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define POLICER_DIR_OUT 0
#define POLICER_DIR_IN 1

// tc priority/handle of the policer filters. The KPI counting programs attach with a lower priority
// number on the same hooks so they run first and see every packet, including the ones policed here.
#define POLICER_TC_PRIORITY 100
#define POLICER_TC_HANDLE 0x4d50

struct policer_key {
  __u32 ifindex;
  __u32 dir;  // POLICER_DIR_*
};

// Written by user space. A missing entry (or rate 0) means "no limit".
struct policer_cfg {
  __u64 rate_bytes_per_sec;
  __u64 burst_bytes;
};

// Per-CPU counters per slot: what the policer passed and dropped. The KPI reader adds the drops to the
// VM's network drops.
struct policer_stats {
  __u64 pass_packets;
  __u64 pass_bytes;
  __u64 drop_packets;
  __u64 drop_bytes;
};

// Token-bucket arithmetic over plain values, shared by the tc programs and their test entry point.
// Returns 1 when a packet of `len` bytes may pass at `now_ns`, 0 when it must be dropped; updates
// *tokens and *last_ns. burst * 1e9 must fit in 64 bits (burst < 18 GB).
static inline __attribute__((always_inline)) int policer_admit(__u64* tokens, __u64* last_ns, __u64 now_ns, __u64 rate,
                                                               __u64 burst, __u64 len) {
  __u64 elapsed = now_ns > *last_ns ? now_ns - *last_ns : 0;
  // Time to fill an empty bucket; any longer idle just fills it (and keeps elapsed * rate in range).
  __u64 fill_ns = rate ? burst * 1000000000ULL / rate : 0;
  __u64 added, t = *tokens;

  if (elapsed >= fill_ns) {
    t = burst;
    *last_ns = now_ns;
  } else {
    added = elapsed * rate / 1000000000ULL;
    // Advance the clock only when whole bytes were earned, so slow rates with frequent packets
    // still refill (otherwise the sub-byte remainder would be lost on every packet).
    if (added) {
      *last_ns = now_ns;
      t += added;
    }
  }
  if (t > burst) t = burst;
  if (len <= t) {
    *tokens = t - len;
    return 1;
  }
  *tokens = t;
  return 0;
}
