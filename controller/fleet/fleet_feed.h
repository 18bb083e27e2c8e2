#pragma once
// FleetFeed: the fleet as the market sees it. Built from the agents' HostHellos (host capacity; VMs with
// baselines, ceilings and owners), host liveness and admins' owner overrides, and fed into the market's
// inventory as it changes: a hello feeds its own host; a new account or an owner override every host; a
// host going down or coming back at the next tick (feed_if_hosts_changed). A host that is down offers
// nothing; a VM its host stops reporting sits out of clearing (Market::set_vm_absent) until it is back; a
// VM another host reports now has moved there (published as vm.migrated) and is that host's from then on.
//
// It keeps the VmDirectory the other parts read. It never clears, bids or sends anything. Every call is
// made with MarketState's lock held.

#include <map>
#include <set>
#include <string>
#include <vector>

#include "controller/market_state/market_state.h"
#include "controller/market_state/vm_directory.h"
#include "host_hello_generated.h"

namespace morph::controller {

class FleetFeed final : public VmDirectory {
 public:
  explicit FleetFeed(MarketState& state) : state_(state) {}

  // The owner overrides the ledger keeps (once, at start).
  void restore_owners(const std::vector<ledger::OwnerOverride>& owners);
  // A verified HostHello: the host's view is replaced wholesale and the host fed.
  void on_host_hello(const v1::HostHello& hello);
  // A host went down (silent for 3 s) or came back: fed at the next tick.
  void on_host_change(const std::string& host, bool up);
  // An admin makes `account` the VM's owner: kept in the ledger (set_by, now), then every host is fed.
  Status set_owner(const std::string& vm, const std::string& account, const std::string& set_by);
  // An account was created: its VMs can be bid for at once, not only after the next tick.
  void feed_all();
  // At a tick: feeds every host if one went down or came back since the last.
  void feed_if_hosts_changed();
  size_t owner_overrides() const { return owner_override_.size(); }

  // VmDirectory
  const VmRecord* find_vm(const std::string& vm) const override;
  bool has_host(const std::string& host) const override { return hosts_.contains(host); }
  std::string owner_of(const std::string& vm) const override;

 private:
  struct HostRecord {
    market::ResourceVector capacity{};
    bool up = true;
  };
  void feed_host(const std::string& host);  // the host and the VMs it reported
  // A hello names a VM another host reported before: it moved there. Logged and published (vm.migrated).
  void moved(const std::string& vm, const std::string& from, const std::string& to);

  MarketState& state_;
  std::map<std::string, HostRecord> hosts_;
  std::map<std::string, VmRecord> vms_;
  std::map<std::string, std::vector<std::string>> host_vms_;  // VMs by the host that last reported them
  std::map<std::string, std::string> owner_override_;
  std::set<std::string> unfed_vms_;  // logged once: no owner account yet
  bool hosts_changed_ = false;       // a host went down or came back since the last tick
};

}  // namespace morph::controller
