#pragma once
// VmSource: where the KPI loop learns which VMs run on this host. The agent wires it to
// hostagent/inventory (InventoryVmSource: list(), lifecycle events, balloon); tests and
// `morph-agent kpis --vm` use StaticVmSource.
// Contract of list(): running VMs only, each with uuid, name, cgroup_path (v2, relative to the unified
// root) and/or cgroup_id, and taps[].ifindex resolved (0 = unresolved, skipped).

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "hostagent/inventory/vm.h"

namespace morph::agent {

// A change of the running set, pushed by a source between list() calls.
struct VmChange {
  enum class Kind {
    upsert,  // started (or its devices changed): register, or re-register if its handles differ
    remove,  // stopped or migrated away: unregister vm.uuid
    resync,  // events may have been lost (e.g. the libvirt connection came back): call list()
  };
  Kind kind;
  VmInfo vm;
};
using VmChangeCallback = std::function<void(VmChange)>;

class VmSource {
 public:
  virtual ~VmSource() = default;
  virtual Result<std::vector<VmInfo>> list() = 0;
  // Starts delivering changes to `callback` (from any thread; it must only queue), or stops with an empty
  // one. Returns false when the source has no events: the caller then polls list() every interval.
  virtual bool watch(VmChangeCallback callback) {
    (void)callback;
    return false;
  }
  // Balloon size in force, or nullopt when the source does not know it.
  virtual std::optional<uint64_t> balloon_kib(const std::string& uuid) {
    (void)uuid;
    return std::nullopt;
  }
};

// Adapts any callable with list()'s signature (e.g. [&inv] { return inv.list(); }).
class FunctionVmSource final : public VmSource {
 public:
  explicit FunctionVmSource(std::function<Result<std::vector<VmInfo>>()> fn) : fn_(std::move(fn)) {}
  Result<std::vector<VmInfo>> list() override { return fn_(); }

 private:
  std::function<Result<std::vector<VmInfo>>()> fn_;
};

// A fixed list given on the command line: "NAME:CGROUP_PATH[:TAP[,TAP...]]". Resolves the cgroup id and
// the taps' ifindexes itself (no libvirt).
class StaticVmSource final : public VmSource {
 public:
  static Result<StaticVmSource> parse(const std::vector<std::string>& specs, const std::string& cgroup2_root);
  Result<std::vector<VmInfo>> list() override;

 private:
  std::vector<VmInfo> vms_;
  std::string cgroup2_root_;
};

}  // namespace morph::agent
