#pragma once
// Uplink: the agent's side of the messaging topology. One thread owns both sockets:
//   PUB    → controller ingest XSUB: a KpiReport every interval (topic kpi.<host>, seq +1 each)
//   DEALER ↔ controller control ROUTER: HostHello, Heartbeat every second, ShiftResult ↑;
//            ShiftCommand, LeaseRenew, the controller's heartbeats ↓
// The controller is down after 3 s without a heartbeat from it. ZeroMQ reconnects with backoff
// (reconnect_ivl 100 ms doubling to 1 s); when the controller answers with a new incarnation (it
// restarted) or comes back, the uplink sends HostHello again so the controller's state converges.
// Other threads talk to it through thread-safe calls that queue work and wake the thread.

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "common/msg/socket.h"
#include "hostagent/inventory/vm.h"
#include "hostagent/uplink/kpi_source.h"
#include "hostagent/uplink/shift_handler.h"

namespace morph::agent {

struct HostDescription {
  std::vector<std::pair<msg::Resource, int64_t>> capacity;
  std::vector<VmInfo> vms;
};

struct UplinkConfig {
  std::string host;              // host id; with CURVE it must equal the agent key's allow-list name
  std::string ingest_endpoint;   // controller's ingest (XSUB)
  std::string control_endpoint;  // controller's control (ROUTER)
  msg::ClientSecurity security;
  uint64_t interval_ns = 1'000'000'000ULL;
  uint64_t heartbeat_ns = 1'000'000'000ULL;
  uint64_t peer_timeout_ns = 3'000'000'000ULL;
  uint64_t default_lease_ns = 5'000'000'000ULL;
  std::string agent_version;
};

struct UplinkStats {
  std::atomic<uint64_t> reports_sent{0}, reports_dropped{0}, hellos_sent{0}, heartbeats_received{0}, shifts_received{0},
      results_sent{0}, bad_messages{0}, controller_restarts{0};
  std::atomic<bool> controller_up{false};
};

class Uplink {
 public:
  Uplink(UplinkConfig cfg, HostDescription host, std::shared_ptr<KpiSource> source,
         std::shared_ptr<ShiftHandler> shifts);
  ~Uplink();
  Uplink(const Uplink&) = delete;
  Uplink& operator=(const Uplink&) = delete;

  Status start();
  void stop();
  // Replaces the host description (VMs appeared or went) and sends HostHello again.
  void set_host(HostDescription host);
  // Reports a lease-expiry revert to the controller (report() with `reverted` set).
  void report_revert(msg::ShiftOutcome outcome);
  // An unsolicited ShiftResult: a lease event, or the values found in force after an agent restart. Sent
  // once the controller is up (after HostHello); while it is not, up to kMaxPendingReports wait here
  // (oldest dropped first), so what happened while the controller was away is reported on reconnect.
  void report(msg::ShiftOutcome outcome);
  static constexpr size_t kMaxPendingReports = 1024;
  const UplinkStats& stats() const { return stats_; }
  uint64_t incarnation() const { return incarnation_; }

 private:
  void run();
  void send_hello();
  void send_heartbeat(uint64_t now);
  void publish_kpis(uint64_t now);
  void on_control(std::vector<zmq::message_t>& parts, uint64_t now);
  bool send_result(const msg::ShiftOutcome& r);
  void flush_reports();
  bool drain_inbox();

  UplinkConfig cfg_;
  std::shared_ptr<KpiSource> source_;
  std::shared_ptr<ShiftHandler> shifts_;
  uint64_t incarnation_;
  zmq::context_t ctx_;
  zmq::socket_t pub_, dealer_;
  flatbuffers::FlatBufferBuilder fbb_{64 * 1024};
  uint64_t seq_ = 0;
  uint64_t controller_incarnation_ = 0;
  uint64_t controller_seen_ns_ = 0;
  std::map<uint64_t, msg::ShiftOutcome> done_cache_;  // recent results by command id (idempotence)
  std::map<uint64_t, int> in_flight_;                 // command id → copies received while applying
  std::deque<msg::ShiftOutcome> pending_reports_;     // unsolicited reports not yet sent

  std::mutex mu_;  // guards the fields below, written by other threads
  HostDescription host_;
  bool host_changed_ = false;
  bool stop_ = false;
  std::deque<msg::ShiftOutcome> results_;  // answers to commands
  std::deque<msg::ShiftOutcome> reports_;  // unsolicited reports (report())
  msg::Wakeup wake_;

  std::thread thread_;
  UplinkStats stats_;
};

}  // namespace morph::agent
