// SPDX-License-Identifier: GPL-2.0
// Network KPIs per VM from tc clsact programs on each VM tap, named from the guest's point of view:
// tc egress of the tap = the guest receives (rx), tc ingress of the tap = the guest transmits (tx).
// These programs count every packet the hook sees and pass it on (TC_ACT_UNSPEC, so later filters such
// as the policer in policer.bpf.c still run); they never drop. The policer's drops are added by user space
// from policer_stats, and the tap's own kernel drop counters from sysfs.
#include "vmlinux.h"

#include <bpf/bpf_helpers.h>

#include "kpi.bpf.h"
#include "tc.bpf.h"

static __always_inline int morph_net_account(__u32 ifindex, __u32 dir, __u32 len) {
  // A tap of no VM (MORPH_NO_SLOT) has no stats.
  struct morph_vm_stats* st = morph_stats(morph_slot_of_ifindex(ifindex));

  if (!st) return TC_ACT_UNSPEC;
  if (dir == MORPH_NET_GUEST_RX) {
    st->net_rx_bytes += len;
    st->net_rx_pkts++;
  } else {
    st->net_tx_bytes += len;
    st->net_tx_pkts++;
  }
  return TC_ACT_UNSPEC;
}

SEC("tc")
int morph_tc_tap_egress(struct __sk_buff* skb) {
  return morph_net_account(skb->ifindex, MORPH_NET_GUEST_RX, skb->len);
}

SEC("tc")
int morph_tc_tap_ingress(struct __sk_buff* skb) {
  return morph_net_account(skb->ifindex, MORPH_NET_GUEST_TX, skb->len);
}

char LICENSE[] SEC("license") = "GPL";
