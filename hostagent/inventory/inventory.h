#pragma once
// Inventory: the agent's one view of libvirt. It owns the libvirt connection (keepalive, reconnect with
// backoff), turns running domains into VmInfo with host handles resolved (hostagent/inventory/
// host_handles.h) and the baseline taken from each persistent domain's definition, not from what a shift
// put in force (domain_xml.h parse_running_domain_xml), and delivers domain lifecycle and device events
// so probes' maps follow VMs without an agent restart. It also reads libvirt's own counters (balloon,
// cpu.time, net/block bytes). It must never change a domain: no define, start, destroy or tune calls —
// that is the shifter's job.
//
// Threading. All public methods may be called from any thread concurrently. Three threads run inside:
//   - libvirt's event loop (virEventRunDefaultImpl; process-wide, shared by every Inventory, started by the
//     first and stopped by the last), which only queues raw events — it never calls into libvirt;
//   - the dispatcher, which turns queued events into VmEvent (fetching XML, resolving handles) and calls the
//     subscribers, one event at a time, in libvirt's order. Callbacks run on this thread with no Inventory
//     lock held: they may call list(), counters(), subscribe() or unsubscribe(), but must not block long,
//     and must not destroy the Inventory;
//   - the connection supervisor, which reopens the connection after libvirtd goes away (EOF, keepalive
//     timeout), backing off from reconnect_min to reconnect_max, then re-registers the event callbacks and
//     delivers VmEventKind::reconnected. Events that happened while disconnected are lost: on reconnected
//     a subscriber should call list() and reconcile. While disconnected, calls return Errc::unavailable.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "hostagent/inventory/host_handles.h"
#include "hostagent/inventory/libvirt_counters.h"
#include "hostagent/inventory/vm.h"

namespace morph::agent {

enum class VmEventKind {
  started,       // booted or restored; vm has handles resolved
  stopped,       // shut down, destroyed, crashed or failed; vm holds the last known handles to remove
  migrated_in,   // incoming live migration began here: QEMU runs (paused) with its handles resolved;
                 // `resumed` follows on success, `stopped` on failure
  migrated_out,  // outgoing live migration finished; the VM no longer runs here; last known handles
  suspended,     // paused (includes the pause at the start of an outgoing migration)
  resumed,
  defined,  // definition added or changed (XML re-read)
  undefined,
  device_added,    // vm re-read after the change; device names the alias (e.g. "net1")
  device_removed,  // vm re-read after the change (the device is gone from it); device names the alias
  disconnected,    // libvirtd connection lost; vm is empty
  reconnected,     // connection back; vm is empty; call list() to reconcile
};
const char* vm_event_kind_name(VmEventKind k) noexcept;

// Maps a libvirt lifecycle (event, detail) pair (virDomainEventType and its detail enum) to a kind.
// Returns false for events Inventory does not report (e.g. shutdown-requested, pmsuspended).
bool lifecycle_event_kind(int event, int detail, VmEventKind& kind) noexcept;

struct VmEvent {
  VmEventKind kind;
  VmInfo vm;                                       // see VmEventKind for which fields are fresh
  std::string device;                              // device alias for device_added / device_removed
  std::chrono::steady_clock::time_point received;  // when libvirt's event reached this process
};
using VmEventCallback = std::function<void(const VmEvent&)>;

struct InventoryOptions {
  std::string uri = "qemu:///system";
  HostPaths paths;                             // cgroup2_root empty: detected at open()
  std::chrono::seconds keepalive_interval{5};  // 0 disables keepalive
  unsigned keepalive_count = 3;                // missed replies before the connection is dropped
  std::chrono::milliseconds reconnect_min{250};
  std::chrono::milliseconds reconnect_max{10000};
};

class Inventory {
 public:
  // Connects (once; Errc::unavailable if libvirtd does not answer), registers the event callbacks and
  // starts the threads. Reconnects after this are automatic.
  static Result<std::unique_ptr<Inventory>> open(InventoryOptions options = {});
  ~Inventory();
  Inventory(const Inventory&) = delete;
  Inventory& operator=(const Inventory&) = delete;

  // Running domains with pid, cgroup and tap ifindex resolved. A domain whose handles cannot be resolved
  // (e.g. it stopped mid-call) is logged and returned with those fields left at 0.
  Result<std::vector<VmInfo>> list();

  // Balloon size in force (virDomainMemoryStats ACTUAL_BALLOON) of a running domain.
  Result<uint64_t> balloon_kib(const std::string& uuid);

  // libvirt's counters of all running domains in one virConnectGetAllDomainStats call.
  Result<std::vector<LibvirtCounters>> counters();

  // Callbacks receive every event after subscription, on the dispatcher thread (see above).
  using SubscriptionId = uint64_t;
  SubscriptionId subscribe(VmEventCallback callback);
  void unsubscribe(SubscriptionId id);

  bool connected() const;
  const HostPaths& paths() const;

  struct Impl;

 private:
  explicit Inventory(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace morph::agent
