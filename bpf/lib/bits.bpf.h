// SPDX-License-Identifier: GPL-2.0
// log2 bucketing as in libbpf-tools' bits.bpf.h, for the µs histograms of morph_vm_stats.
#pragma once

#include "morph_kpi.h"

static __always_inline __u64 morph_log2(__u32 v) {
  __u32 shift, r;

  r = (v > 0xFFFF) << 4;
  v >>= r;
  shift = (v > 0xFF) << 3;
  v >>= shift;
  r |= shift;
  shift = (v > 0xF) << 2;
  v >>= shift;
  r |= shift;
  shift = (v > 0x3) << 1;
  v >>= shift;
  r |= shift;
  r |= (v >> 1);
  return r;
}

static __always_inline __u64 morph_log2l(__u64 v) {
  __u32 hi = v >> 32;

  return hi ? morph_log2(hi) + 32 : morph_log2(v);
}

// Bucket i holds [2^i, 2^(i+1)) µs; values below 1 µs go to bucket 0, values beyond the last bucket to
// the last one.
static __always_inline __u32 morph_hist_bucket(__u64 ns) {
  __u64 us = ns / 1000;
  __u64 b = us ? morph_log2l(us) : 0;

  return b < MORPH_HIST_BUCKETS ? b : MORPH_HIST_BUCKETS - 1;
}

static __always_inline void morph_hist_add(__u64* hist, __u64 ns) {
  __u32 b = morph_hist_bucket(ns);

  if (b < MORPH_HIST_BUCKETS) hist[b]++;
}
