#pragma once
// ShiftEngine: the Resource Shifting Engine's logic. It owns, per VM, the baseline captured before the
// first shift, the lease of the shifts in force, and the outcomes of recent commands (idempotency by
// command id). It validates every adjustment before touching anything, applies them in order, rolls back
// the applied ones if a later one fails, and reverts (or holds) a VM when its lease expires.
// It never talks to libvirt or the kernel itself: everything goes through Mechanisms.
// Thread-safe; commands for one VM are applied one at a time, in call order.

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/error.h"
#include "hostagent/shifter/lease_store.h"
#include "hostagent/shifter/mechanisms.h"
#include "hostagent/shifter/shift.h"

namespace morph::agent::shifter {

enum class ExpiryPolicy { revert, hold };

// What happened to a VM when its lease ran out; kept until taken so it can be reported on reconnect.
struct LeaseEvent {
  std::string vm_uuid;
  uint64_t command_id = 0;  // the last command whose lease expired
  TimePoint expired_at;
  ExpiryPolicy action = ExpiryPolicy::revert;
  std::optional<Error> error;  // a revert step that failed
  InForce in_force;            // read back after the revert/hold
};

class ShiftEngine {
 public:
  using Clock = std::function<TimePoint()>;
  struct Options {
    ExpiryPolicy on_expiry = ExpiryPolicy::revert;
    size_t remembered_outcomes = 4096;
    // Baselines and leases survive an agent restart here (hostagent/lease_state/); none: not persisted.
    std::shared_ptr<LeaseStore> store;
    // A cpu_millicores adjustment without a cpu_shares one also sets the VM's CPU weight in proportion
    // (cpu_shares_following()), so the VM gets its allocation under contention, not only a higher cap.
    bool shares_follow_cpu = true;
  };

  ShiftEngine(Mechanisms& mechanisms, Clock clock, Options options);

  // Applies a shift (or returns the stored outcome of an earlier command with the same id).
  ShiftOutcome shift(const ShiftRequest& request);

  // Extends the lease of the VM a command applied to; not_found for an unknown or already expired one.
  Status renew_command(uint64_t command_id, TimePoint expiry);
  // Extends a VM's lease (UUID); not_found when it holds none.
  Status renew_vm(const std::string& vm_uuid, TimePoint expiry);

  // Applies the expiry policy to every lease due by now; returns what it did (also kept for take_events).
  std::vector<LeaseEvent> expire_due();
  // The controller is gone: every lease ends now.
  std::vector<LeaseEvent> controller_lost();
  // Lease events not yet reported.
  std::vector<LeaseEvent> take_events();

  // A VM that no longer runs on this host (it moved to another, or stopped) has nothing here to revert:
  // every VM this engine holds that the mechanisms cannot find running here (not_found) is forgotten with
  // its baseline and lease, without a revert and without a lease event, and the store is rewritten. Any
  // other failure to look a VM up (libvirtd gone) keeps it. Returns the UUIDs forgotten.
  std::vector<std::string> forget_departed();

  // After an agent restart: loads the lease store, re-reads what is in force for each VM it names, and
  // applies the expiry policy to leases that ran out while the agent was down.
  Result<std::vector<LeaseEvent>> reconcile();

  // What is in force now on every VM this engine holds shifts for (under a lease, or held), read back:
  // command_id is the VM's last command, lease_expiry its lease (none when held), error a failed read.
  // The agent reports these to the controller whenever it (re)connects, so the controller learns what a
  // restarted agent found in force.
  std::vector<ShiftOutcome> in_force_report();

  std::optional<TimePoint> lease_expiry(const std::string& vm_uuid) const;
  std::optional<InForce> baseline(const std::string& vm_uuid) const;

 private:
  struct VmState {
    VmTarget target;
    InForce baseline;
    std::set<Resource> shifted;
    std::optional<TimePoint> lease;
    uint64_t last_command = 0;
  };

  Status validate(const VmTarget& vm, const ShiftRequest& request) const;
  ShiftOutcome apply_locked(const ShiftRequest& request);
  LeaseEvent end_lease_locked(VmState& state, TimePoint now);
  void remember_locked(const ShiftOutcome& outcome);
  void persist_locked();
  Status load_locked();

  Mechanisms& mech_;
  Clock clock_;
  Options opt_;
  mutable std::mutex mu_;               // one command at a time: keeps per-VM order and rollback simple
  std::map<std::string, VmState> vms_;  // by UUID
  std::unordered_map<uint64_t, ShiftOutcome> outcomes_;
  std::deque<uint64_t> outcome_order_;
  std::unordered_map<uint64_t, std::string> command_vm_;
  std::vector<LeaseEvent> events_;
};

const char* expiry_policy_name(ExpiryPolicy p) noexcept;

// The CPU weight that goes with `millicores` for a VM whose baseline (what was in force before its first
// shift) is `baseline`: baseline.cpu_shares x millicores / baseline.cpu_millicores, rounded to nearest and
// kept within 2..262144 (cgroup v1 cpu.shares), and never below the baseline's shares (a cap under the
// baseline limits the VM without also deprioritising it). So the baseline's own millicores give back
// exactly its shares, and a VM with +33 % CPU also weighs 33 % more against its neighbours. nullopt when
// the baseline has no shares or no millicores to scale from.
std::optional<int64_t> cpu_shares_following(const InForce& baseline, int64_t millicores) noexcept;

}  // namespace morph::agent::shifter
