#pragma once
// FleetView: the one in-process consumer of a controller's events stream, shared by the dashboard and
// `morphctl top`. It SUBscribes to every topic on the events endpoint and, following the Clone pattern,
// asks the api endpoint for a SnapshotRequest at start, on a new controller incarnation and on a seq gap.
// It keeps what an operator looks at, in bounded rings: per VM KPI samples over time, prices per
// (host, resource, tier), allocations in force and their history per VM, recent shifts and bid outcomes.
//
// One thread owns both sockets (the SUB and the ApiClient); readers take a copy (`state()`) under a lock.
// It never sends anything but snapshot requests: it is read-only towards the controller.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "common/msg/socket.h"

namespace morph::v1 {
struct MarketEvent;
struct SnapshotReply;
}  // namespace morph::v1

namespace morph::fleet {

// One VM's KPIs over one agent interval, as rates an operator reads.
struct KpiSample {
  uint64_t t_ns = 0;
  double cpu_pct = 0;        // 100 x kpi::cpu_share of the on-CPU time (100 = one core)
  double runq_wait_pct = 0;  // 100 x kpi::runq_wait_share: the share of runnable time spent waiting
  double disk_read_Bps = 0, disk_write_Bps = 0;
  double net_rx_Bps = 0, net_tx_Bps = 0;
};

struct PricePoint {
  uint64_t t_ns = 0;
  int64_t price = 0;  // µcr per unit-second
  int64_t supply = 0, allocated = 0;
  uint64_t tick = 0;
};

struct AllocationPoint {
  uint64_t t_ns = 0;
  int64_t quantity = 0;  // Σ allocated to the VM for this resource
};

struct Allocation {
  std::string host, vm_uuid, account;
  uint64_t bid_id = 0;
  std::string resource;
  int64_t quantity = 0, price = 0;
  uint64_t since_ns = 0;
};

struct ShiftRecord {
  uint64_t t_ns = 0;
  std::string host, vm_uuid, phase, adjustments, error;
  uint64_t command_id = 0;
};

struct BidRecord {
  uint64_t t_ns = 0;
  uint64_t bid_id = 0;
  std::string account, vm_uuid, resource, outcome, reason;
  int64_t quantity = 0, filled = 0, max_price = 0;
};

struct HostRecord {
  std::string host;
  bool up = false;
  uint32_t vm_count = 0;
  uint64_t last_seen_ns = 0;
  std::map<std::string, int64_t> capacity;  // resource → amount
};

struct VmRecord {
  std::string uuid, name, host, owner, sla;
  bool described = false;  // by a snapshot (owner, SLA, baseline), not only named by a KPI report
  std::map<std::string, int64_t> baseline;
  std::deque<KpiSample> kpis;                                    // oldest first, bounded
  std::map<std::string, std::deque<AllocationPoint>> allocated;  // resource → history
};

struct FleetState {
  uint64_t incarnation = 0, events_seq = 0, events_seen = 0, snapshots = 0, gaps = 0;
  uint64_t updated_ns = 0;
  std::map<std::string, HostRecord> hosts;
  std::map<std::string, VmRecord> vms;                   // by uuid
  std::map<std::string, std::deque<PricePoint>> prices;  // "host/resource/tier" → history
  std::map<uint64_t, Allocation> allocations;            // in force, by bid id
  std::deque<ShiftRecord> shifts;                        // newest last
  std::deque<BidRecord> bids;                            // newest last
  std::string last_error;                                // last snapshot failure, for display
  bool vm_set_changed = false;  // a KPI named a VM no snapshot described: the owner will ask for one

  const VmRecord* vm(const std::string& uuid) const;
  // Name of the VM if known, else the uuid.
  std::string vm_name(const std::string& uuid) const;
};

struct FleetViewOptions {
  std::string api;     // api endpoint (ROUTER)
  std::string events;  // events endpoint (XPUB)
  msg::ClientSecurity security;
  size_t kpi_history = 600;    // samples per VM
  size_t price_history = 600;  // points per book
  size_t recent = 100;         // shifts and bid outcomes kept
};

// Endpoints in a `morph-controller run --ipc-dir DIR` directory.
FleetViewOptions ipc_options(const std::string& ipc_dir);

// How a client names the controller on its command line (morph-dashboard, morphctl top).
struct ControllerAddress {
  std::string api, events;      // empty: tcp://127.0.0.1:7712 and :7713, or from ipc_dir
  std::string ipc_dir;          // a `morph-controller run --ipc-dir` directory (no CURVE: the 0700 dir is the guard)
  std::string key_file;         // this client's NAME.key, for tcp:// (CURVE)
  std::string server_key_file;  // the controller's controller.pub
};
// Resolves endpoints and loads the keys; tcp without keys is refused later by connect (CURVE is mandatory).
Result<FleetViewOptions> resolve(const ControllerAddress& a);

class FleetView {
 public:
  static Result<std::unique_ptr<FleetView>> start(const FleetViewOptions& opts);
  ~FleetView();
  FleetView(const FleetView&) = delete;
  FleetView& operator=(const FleetView&) = delete;

  FleetState state() const;
  // Blocks until pred(state) holds or the timeout passes; returns whether it held.
  template <class Pred>
  bool wait_for(Pred pred, std::chrono::milliseconds timeout) const {
    auto end = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      {
        std::lock_guard lock(mu_);
        if (pred(state_)) return true;
      }
      if (std::chrono::steady_clock::now() >= end) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

 private:
  explicit FleetView(FleetViewOptions opts);
  void run();

  FleetViewOptions opts_;
  mutable std::mutex mu_;
  FleetState state_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Folds one verified MarketEvent / SnapshotReply into a state (pure: unit-testable without sockets).
// apply_event returns true when the caller should resync (a new controller incarnation or a seq gap).
bool apply_event(FleetState& s, const v1::MarketEvent& e, const FleetViewOptions& o);
void apply_snapshot(FleetState& s, const v1::SnapshotReply& r, const FleetViewOptions& o);

const char* tier_name(uint8_t t);

}  // namespace morph::fleet
