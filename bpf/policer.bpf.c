// SPDX-License-Identifier: GPL-2.0
// Network rate policer for VM taps (Resource Shifting Engine, net_out_kbps / net_in_kbps).
// A tc clsact program per hook: a token bucket per (ifindex, direction) configured in policer_cfg, with
// per-CPU pass/drop counters in policer_stats. It never counts KPI traffic (the probes' tc programs do,
// at a lower tc priority, before this one) and never redirects: a packet passes on (TC_ACT_UNSPEC, so any
// later filter still runs) or is dropped (TC_ACT_SHOT).
#include "vmlinux.h"

#include "policer.h"

#include <bpf/bpf_helpers.h>

#include "tc.bpf.h"

struct policer_bucket {
  struct bpf_spin_lock lock;
  __u64 tokens;
  __u64 last_ns;
  __u64 rate;  // config the bucket was sized for; a change restarts the bucket full
  __u64 burst;
};

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1024);
  __type(key, struct policer_key);
  __type(value, struct policer_cfg);
} policer_cfg SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1024);
  __type(key, struct policer_key);
  __type(value, struct policer_bucket);
} policer_bucket SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
  __uint(max_entries, 1024);
  __type(key, struct policer_key);
  __type(value, struct policer_stats);
} policer_stats SEC(".maps");

static __always_inline void policer_count(const struct policer_key* key, __u64 len, int pass) {
  struct policer_stats* st = bpf_map_lookup_elem(&policer_stats, key);

  if (!st) {
    struct policer_stats zero = {};

    bpf_map_update_elem(&policer_stats, key, &zero, BPF_NOEXIST);
    st = bpf_map_lookup_elem(&policer_stats, key);
    if (!st) return;
  }
  // Per-CPU value: no atomics needed.
  if (pass) {
    st->pass_packets++;
    st->pass_bytes += len;
  } else {
    st->drop_packets++;
    st->drop_bytes += len;
  }
}

// Verdict for one packet of `len` bytes on slot `key` at `now_ns`.
static __always_inline int policer_verdict(struct policer_key* key, __u64 len, __u64 now_ns) {
  struct policer_cfg* cfg = bpf_map_lookup_elem(&policer_cfg, key);
  struct policer_bucket* b;
  int pass;

  if (!cfg || cfg->rate_bytes_per_sec == 0) return TC_ACT_UNSPEC;
  b = bpf_map_lookup_elem(&policer_bucket, key);
  if (!b) {
    struct policer_bucket init = {};

    bpf_map_update_elem(&policer_bucket, key, &init, BPF_NOEXIST);
    b = bpf_map_lookup_elem(&policer_bucket, key);
    if (!b) return TC_ACT_UNSPEC;
  }
  bpf_spin_lock(&b->lock);
  if (b->rate != cfg->rate_bytes_per_sec || b->burst != cfg->burst_bytes) {
    b->rate = cfg->rate_bytes_per_sec;
    b->burst = cfg->burst_bytes;
    b->tokens = cfg->burst_bytes;
    b->last_ns = now_ns;
  }
  pass = policer_admit(&b->tokens, &b->last_ns, now_ns, b->rate, b->burst, len);
  bpf_spin_unlock(&b->lock);
  policer_count(key, len, pass);
  return pass ? TC_ACT_UNSPEC : TC_ACT_SHOT;
}

// Guest transmit: packets the guest sends arrive on the host tap's ingress hook.
SEC("tc")
int policer_tap_ingress(struct __sk_buff* skb) {
  struct policer_key key = {.ifindex = skb->ifindex, .dir = POLICER_DIR_OUT};

  return policer_verdict(&key, skb->len, bpf_ktime_get_ns());
}

// Guest receive: packets to the guest leave through the host tap's egress hook.
SEC("tc")
int policer_tap_egress(struct __sk_buff* skb) {
  struct policer_key key = {.ifindex = skb->ifindex, .dir = POLICER_DIR_IN};

  return policer_verdict(&key, skb->len, bpf_ktime_get_ns());
}

// Test entry point for BPF_PROG_TEST_RUN (never attached): the slot and the time come from the context,
// cb[0] = ifindex, cb[1] = direction, cb[2]/cb[3] = now in ns (high/low 32 bits), so a table of packets at
// chosen timestamps drives the same verdict code as the attached programs.
SEC("tc")
int policer_test_verdict(struct __sk_buff* skb) {
  struct policer_key key = {.ifindex = skb->cb[0], .dir = skb->cb[1]};
  __u64 now = ((__u64)skb->cb[2] << 32) | skb->cb[3];

  return policer_verdict(&key, skb->len, now);
}

char LICENSE[] SEC("license") = "GPL";
