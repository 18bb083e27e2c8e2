// SPDX-License-Identifier: GPL-2.0
// CO-RE shims for kernel fields that were renamed or retyped, as libbpf-tools' core_fixes.bpf.h: a
// "___suffix" twin of the struct as older kernels lay it out, and an accessor that reads whichever field
// the running kernel has (bpf_core_field_exists is resolved at load). Programs read such fields only here.
#pragma once

#include <bpf/bpf_core_read.h>

// task->__state was task->state before 5.14.
struct task_struct___o {
  volatile long int state;
} __attribute__((preserve_access_index));

static __always_inline long morph_get_task_state(struct task_struct* t) {
  if (bpf_core_field_exists(t->__state)) return BPF_CORE_READ(t, __state);
  return BPF_CORE_READ((struct task_struct___o*)t, state);
}
