#pragma once
// HostTable: the controller's view of its hosts, built only from verified messages: each host's last
// HostHello (capacity, VMs with baselines and owners), liveness from heartbeats (down after 3 s of
// silence), and the latest KpiReport with per-VM KPIs. It also tracks KpiReport sequence numbers per agent
// incarnation and counts gaps. Owned by the controller's messaging thread; not thread-safe. It never
// talks to sockets: callers feed it and publish what it reports.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "common/kpi/vm_kpis.h"
#include "common/msg/wire.h"

namespace morph::controller {

struct HostEntry {
  std::string host;
  std::string routing_id;    // control-channel identity, for ShiftCommands
  uint64_t incarnation = 0;  // from the agent's last HostHello
  bool hello_seen = false;
  bool up = false;
  uint64_t last_seen_ns = 0;
  std::vector<uint8_t> hello;    // verified HostHello buffer
  zmq::message_t latest_report;  // verified KpiReport buffer, as received
  uint64_t kpi_incarnation = 0;
  uint64_t kpi_seq = 0;
  uint64_t kpi_reports = 0;
  uint64_t kpi_gaps = 0;  // reports known missing from seq gaps
  uint64_t bad_messages = 0;
  std::map<std::string, kpi::VmKpis, std::less<>> vm_kpis;  // latest per VM uuid
};

class HostTable {
 public:
  enum class Change { none, came_up, went_down };

  // A verified HostHello from routing id `rid`.
  Change apply_hello(const v1::HostHello& hello, std::span<const uint8_t> buf, std::string_view rid, uint64_t now);
  // A heartbeat; false when the host is unknown (it has not said hello to this controller incarnation).
  bool apply_heartbeat(std::string_view host, std::string_view rid, uint64_t now, Change& change);
  // A verified KpiReport (msg holds its buffer and is moved from). Returns the number of reports missing
  // before this one (0 when in sequence).
  uint64_t apply_kpi_report(const v1::KpiReport& r, zmq::message_t&& msg, uint64_t now, Change& change);
  // Marks hosts silent for longer than timeout as down; returns them.
  std::vector<std::string> expire(uint64_t now, uint64_t timeout_ns);

  void count_bad(const std::string& host) {
    if (auto it = hosts_.find(host); it != hosts_.end()) ++it->second.bad_messages;
  }
  const HostEntry* find(std::string_view host) const;
  const std::map<std::string, HostEntry, std::less<>>& hosts() const { return hosts_; }
  uint64_t total_reports() const { return total_reports_; }
  uint64_t total_gaps() const { return total_gaps_; }

 private:
  HostEntry& entry(std::string_view host);
  std::map<std::string, HostEntry, std::less<>> hosts_;
  uint64_t total_reports_ = 0, total_gaps_ = 0;
};

// Builds HostStatus / VmStatus tables for api replies and events.
flatbuffers::Offset<v1::HostStatus> build_host_status(flatbuffers::FlatBufferBuilder& fbb, const HostEntry& h);
// `owner_of(vm, reported)`: the owner in force, when someone above knows more than the host's metadata
// (an admin's override); unset: the metadata's.
using OwnerOf = std::function<std::string(const std::string& vm, const std::string& reported)>;
void build_vm_statuses(flatbuffers::FlatBufferBuilder& fbb, const HostEntry& h,
                       std::vector<flatbuffers::Offset<v1::VmStatus>>& out, const OwnerOf& owner_of = {});

}  // namespace morph::controller
