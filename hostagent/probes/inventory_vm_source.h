#pragma once
// InventoryVmSource: the VmSource of the running agent, over hostagent/inventory. Lifecycle events become
// VmChanges (started/migrated_in/device changes -> upsert, stopped/migrated_out -> remove, reconnected ->
// resync), so the probes' maps follow VMs as libvirt reports them instead of at the next poll.

#include <memory>
#include <mutex>

#include "hostagent/inventory/inventory.h"
#include "hostagent/probes/vm_source.h"

namespace morph::agent {

class InventoryVmSource final : public VmSource {
 public:
  explicit InventoryVmSource(std::shared_ptr<Inventory> inventory) : inv_(std::move(inventory)) {}
  ~InventoryVmSource() override { watch(nullptr); }
  InventoryVmSource(const InventoryVmSource&) = delete;
  InventoryVmSource& operator=(const InventoryVmSource&) = delete;

  Result<std::vector<VmInfo>> list() override { return inv_->list(); }
  bool watch(VmChangeCallback callback) override;
  std::optional<uint64_t> balloon_kib(const std::string& uuid) override;

 private:
  std::shared_ptr<Inventory> inv_;
  std::mutex mu_;
  bool subscribed_ = false;
  Inventory::SubscriptionId subscription_ = 0;
};

// The change an inventory event means for the probes, or nullopt when none (suspend, define, ...).
std::optional<VmChange> vm_change_of(const VmEvent& event);

}  // namespace morph::agent
