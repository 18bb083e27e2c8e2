#pragma once
// libvirt's own running counters for a VM (the `virsh domstats` view): the reference the agent's eBPF
// numbers are checked against, and the balloon size. Plain data, built from libvirt's typed parameters by
// a pure function so the field mapping is unit-tested without a daemon.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace morph::agent {

struct LibvirtCounters {
  struct Net {
    std::string dev;  // net.N.name: host tap
    uint64_t rx_bytes = 0, tx_bytes = 0, rx_pkts = 0, tx_pkts = 0, rx_drop = 0, tx_drop = 0;
  };
  struct Block {
    std::string target;  // block.N.name: guest device
    std::string path;    // block.N.path: host source (empty for an empty drive)
    uint64_t rd_bytes = 0, wr_bytes = 0, rd_reqs = 0, wr_reqs = 0;
  };
  std::string uuid;
  std::string name;
  uint64_t cpu_time_ns = 0;  // cpu.time: all QEMU threads, user + system
  // vcpu.N.delay (run-queue wait of vCPU thread N, from schedstat); empty when libvirt reports none.
  std::vector<std::optional<uint64_t>> vcpu_delay_ns;
  std::vector<Net> net;
  std::vector<Block> block;
  std::optional<uint64_t> balloon_current_kib;  // balloon.current
  std::optional<uint64_t> balloon_maximum_kib;  // balloon.maximum
};

// One typed parameter of virConnectGetAllDomainStats, with numeric types widened to uint64.
struct StatField {
  std::string name;
  uint64_t number = 0;
  std::string text;  // for string-typed fields
};

// Maps the fields of one domain's record (names as libvirt documents them) onto LibvirtCounters. Unknown
// fields are ignored; indices may come in any order; counts (net.count, ...) size the vectors.
LibvirtCounters counters_from_fields(std::string uuid, std::string name, const std::vector<StatField>& fields);

}  // namespace morph::agent
