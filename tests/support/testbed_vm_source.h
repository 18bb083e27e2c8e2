#pragma once
// PrefixVmSource: the inventory's VMs and lifecycle events restricted to one test bed's name prefix, so the
// KPI e2e test and the agent-cost benchmark register (and put tc filters on) their own VMs only, never the
// VMs other people run on the same host. Header-only: its users link morph_probes.

#include <memory>
#include <string>
#include <vector>

#include "hostagent/probes/inventory_vm_source.h"

namespace morph::agent {

// This bed's VMs only: the inventory's list and events filtered by name prefix.
class PrefixVmSource final : public VmSource {
 public:
  PrefixVmSource(std::shared_ptr<Inventory> inv, std::string prefix)
      : inner_(std::move(inv)), prefix_(std::move(prefix)) {}
  Result<std::vector<VmInfo>> list() override {
    MORPH_TRY_ASSIGN(auto all, inner_.list());
    std::vector<VmInfo> ours;
    for (auto& v : all)
      if (mine(v.name)) ours.push_back(std::move(v));
    return ours;
  }
  bool watch(VmChangeCallback cb) override {
    if (!cb) return inner_.watch(nullptr);
    return inner_.watch([this, cb = std::move(cb)](VmChange c) {
      if (c.kind == VmChange::Kind::resync || mine(c.vm.name)) cb(std::move(c));
    });
  }
  std::optional<uint64_t> balloon_kib(const std::string& uuid) override { return inner_.balloon_kib(uuid); }

 private:
  bool mine(const std::string& name) const { return name.rfind(prefix_ + "-", 0) == 0; }
  InventoryVmSource inner_;
  std::string prefix_;
};

}  // namespace morph::agent
