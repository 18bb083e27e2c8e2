// SPDX-License-Identifier: GPL-2.0
// tc clsact verdicts for every tc program (net.bpf.c, policer.bpf.c). vmlinux.h carries the kernel's types
// but not the #defines of uapi/linux/pkt_cls.h, so they are declared here, once.
#pragma once

#ifndef TC_ACT_UNSPEC
#define TC_ACT_UNSPEC (-1)  // no verdict: the next filter on the hook runs
#define TC_ACT_OK 0
#define TC_ACT_SHOT 2  // drop
#endif
