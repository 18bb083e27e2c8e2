#include "controller/fleet/fleet_feed.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "common/msg/wire.h"
#include "controller/market_state/market_wire.h"
#include "market_event_generated.h"

namespace morph::controller {

void FleetFeed::restore_owners(const std::vector<ledger::OwnerOverride>& owners) {
  for (auto& o : owners) owner_override_[o.vm] = o.account;
}

std::string FleetFeed::owner_of(const std::string& vm) const {
  if (auto o = owner_override_.find(vm); o != owner_override_.end()) return o->second;
  if (auto v = vms_.find(vm); v != vms_.end()) return v->second.owner_meta;
  return {};
}

const VmRecord* FleetFeed::find_vm(const std::string& vm) const {
  auto it = vms_.find(vm);
  return it == vms_.end() ? nullptr : &it->second;
}

void FleetFeed::feed_all() {
  for (auto& [id, h] : hosts_) feed_host(id);
}

void FleetFeed::feed_if_hosts_changed() {
  if (std::exchange(hosts_changed_, false)) feed_all();
}

void FleetFeed::feed_host(const std::string& host) {
  auto hit = hosts_.find(host);
  if (hit == hosts_.end()) return;
  market::Market& market = state_.market();
  // A host that is down (silent for 3 s) offers nothing: nothing there can be applied, so nothing there is
  // sold or charged; its bids stay and fail for want of capacity until it is back.
  const HostRecord& h = hit->second;
  if (auto st = market.upsert_host({host, h.up ? h.capacity : market::ResourceVector{}}); !st)
    spdlog::warn("host={} market: {}", host, st.error().what());
  auto listed = host_vms_.find(host);
  if (listed == host_vms_.end()) return;
  for (const std::string& id : listed->second) {
    auto vit = vms_.find(id);
    if (vit == vms_.end() || vit->second.host != host) continue;  // gone, or reported by another host since
    const VmRecord& v = vit->second;
    market::VmSpec spec{id, owner_of(id), v.host, v.baseline, {}};
    // The ceiling: the host's capacity, or less where the agent says the VM cannot use more (a 1-vCPU VM
    // gains nothing above 1000 mc, and the agent would refuse the shift).
    for (Resource r : kMarketResources) {
      int64_t cap = market::at(h.capacity, r);
      if (int64_t own = market::at(v.ceiling, r); own > 0) cap = std::min(cap, own);
      market::at(spec.ceiling, r) = std::max(market::at(v.baseline, r), cap);
    }
    if (spec.owner.empty() || !state_.has_account(spec.owner)) {
      if (unfed_vms_.insert(id).second)
        spdlog::info("vm={} not in the market: owner '{}' has no account", id, spec.owner);
      continue;
    }
    unfed_vms_.erase(id);
    if (auto st = market.upsert_vm(spec); !st) spdlog::warn("vm={} market: {}", id, st.error().what());
  }
}

void FleetFeed::moved(const std::string& vm, const std::string& from, const std::string& to) {
  spdlog::info("vm={} moved from host={} to host={}: its bids clear on {}'s books from the next tick", vm, from, to,
               to);
  if (ControllerLink* link = state_.link())
    link->publish_event("vm.migrated", v1::MarketEventBody::VmMigrated, [=](flatbuffers::FlatBufferBuilder& b) {
      return v1::CreateVmMigratedDirect(b, vm.c_str(), from.c_str(), to.c_str()).Union();
    });
}

void FleetFeed::on_host_change(const std::string& host, bool up) {
  auto it = hosts_.find(host);
  if (it == hosts_.end() || it->second.up == up) return;
  it->second.up = up;
  hosts_changed_ = true;
  if (up)
    spdlog::info("host={} market: back up; it offers its capacity again from the next tick", host);
  else
    spdlog::warn(
        "host={} market: down; it offers nothing until it is back, so its allocations end at the next tick and are no "
        "longer charged",
        host);
}

Status FleetFeed::set_owner(const std::string& vm, const std::string& account, const std::string& set_by) {
  MORPH_TRY(state_.ledger().put_owner_override({vm, account, set_by, state_.clock().wall_ns()}));
  owner_override_[vm] = account;
  feed_all();
  return {};
}

void FleetFeed::on_host_hello(const v1::HostHello& hello) {
  std::string host(msg::sv(hello.host()));
  HostRecord h;
  if (hello.capacity())
    for (const auto* c : *hello.capacity())
      if (auto r = traded_from_wire(c->resource())) market::at(h.capacity, *r) = c->amount();
  hosts_[host] = h;
  // The VMs this host reported until now (one another host reports since is that host's).
  std::vector<std::string> before = std::move(host_vms_[host]);
  host_vms_[host].clear();
  std::erase_if(before, [&](const std::string& id) {
    auto v = vms_.find(id);
    return v == vms_.end() || v->second.host != host;
  });
  for (auto& id : before) vms_.erase(id);
  if (hello.vms())
    for (const auto* v : *hello.vms()) {
      VmRecord e{host, std::string(msg::sv(v->owner())), {}, {}};
      if (v->baseline())
        for (const auto* b : *v->baseline())
          if (auto r = traded_from_wire(b->resource())) market::at(e.baseline, *r) = b->amount();
      if (v->ceiling())
        for (const auto* c : *v->ceiling())
          if (auto r = traded_from_wire(c->resource())) market::at(e.ceiling, *r) = c->amount();
      std::string id(msg::sv(v->uuid()));
      if (auto old = vms_.find(id); old == vms_.end() || old->second.host != host) {
        host_vms_[host].push_back(id);
        if (old != vms_.end()) moved(id, old->second.host, host);
      }
      vms_[id] = e;
    }
  // A VM the host no longer reports (stopped, gone; one that moved is reported by its new host) can have
  // nothing applied: its bids sit out of clearing, so its allocations end and are not charged, until it is
  // reported again (feed_host upserts it).
  for (auto& id : before)
    if (!vms_.contains(id) && state_.market().set_vm_absent(id).ok())
      spdlog::info("vm={} host={} market: no longer reported by its host; its bids sit out until it is back", id, host);
  feed_host(host);  // this host only: feeding the whole fleet on each hello made bringing up N hosts O(N²)
}

}  // namespace morph::controller
