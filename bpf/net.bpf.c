// SPDX-License-Identifier: GPL-2.0
// Network KPIs per VM from tc clsact programs on each VM tap, named from the guest's point of view:
// tc egress of the tap = the guest receives (rx), tc ingress of the tap = the guest transmits (tx).
// These programs count every packet the hook sees and pass it on (TC_ACT_UNSPEC, so later filters such
// as the policer in policer.bpf.c still run); the policer's drops are added by user space from
// policer_stats, and the tap's own kernel drop counters from sysfs.
#include "vmlinux.h"

#include <bpf/bpf_helpers.h>

#include "kpi.bpf.h"

#define TC_ACT_UNSPEC (-1)
#define TC_ACT_SHOT 2

// Hook for a verdict of our own (none today: the policer is a separate filter). A TC_ACT_SHOT here is
// counted as a drop of that direction instead of as traffic.
static __always_inline int morph_net_police(__u32 slot, __u32 dir, __u32 len) {
  return TC_ACT_UNSPEC;
}

static __always_inline int morph_net_account(__u32 ifindex, __u32 dir, __u32 len) {
  __u32 slot = morph_slot_of_ifindex(ifindex);
  struct morph_vm_stats* st;
  int verdict;

  if (slot == MORPH_NO_SLOT) return TC_ACT_UNSPEC;
  st = morph_stats(slot);
  if (!st) return TC_ACT_UNSPEC;
  verdict = morph_net_police(slot, dir, len);
  if (dir == MORPH_NET_GUEST_RX) {
    if (verdict == TC_ACT_SHOT) {
      st->net_rx_drops++;
    } else {
      st->net_rx_bytes += len;
      st->net_rx_pkts++;
    }
  } else {
    if (verdict == TC_ACT_SHOT) {
      st->net_tx_drops++;
    } else {
      st->net_tx_bytes += len;
      st->net_tx_pkts++;
    }
  }
  return verdict;
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
