#pragma once
// morph-agent: the per-host agent. Owns the host's BPF probes, its view of libvirt domains and the
// Resource Shifting Engine. It never runs anything inside a guest.

namespace morph::agent {
const char* version();
}  // namespace morph::agent
