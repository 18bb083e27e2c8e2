#include "hostagent/probes/inventory_vm_source.h"

namespace morph::agent {

std::optional<VmChange> vm_change_of(const VmEvent& event) {
  switch (event.kind) {
    case VmEventKind::started:
    case VmEventKind::migrated_in:  // QEMU runs here (paused) with its handles resolved
    case VmEventKind::device_added:
    case VmEventKind::device_removed:  // taps may have changed: re-register with the re-read VM
      return VmChange{VmChange::Kind::upsert, event.vm};
    case VmEventKind::stopped:
    case VmEventKind::migrated_out:
      return VmChange{VmChange::Kind::remove, event.vm};
    case VmEventKind::reconnected:
      return VmChange{VmChange::Kind::resync, {}};
    default:
      return std::nullopt;
  }
}

bool InventoryVmSource::watch(VmChangeCallback callback) {
  std::lock_guard lock(mu_);
  if (subscribed_) {
    inv_->unsubscribe(subscription_);
    subscribed_ = false;
  }
  if (callback) {
    subscription_ = inv_->subscribe([cb = std::move(callback)](const VmEvent& e) {
      if (auto change = vm_change_of(e)) cb(std::move(*change));
    });
    subscribed_ = true;
  }
  return true;
}

std::optional<uint64_t> InventoryVmSource::balloon_kib(const std::string& uuid) {
  auto kib = inv_->balloon_kib(uuid);
  if (!kib) return std::nullopt;
  return *kib;
}

}  // namespace morph::agent
