#include "hostagent/probes/vm_source.h"

#include <net/if.h>

#include <sstream>

#include "hostagent/probes/kpi_probes.h"

namespace morph::agent {

Result<StaticVmSource> StaticVmSource::parse(const std::vector<std::string>& specs, const std::string& cgroup2_root) {
  StaticVmSource src;
  src.cgroup2_root_ = cgroup2_root;
  for (const std::string& spec : specs) {
    std::vector<std::string> parts;
    std::stringstream ss(spec);
    for (std::string p; std::getline(ss, p, ':');) parts.push_back(p);
    if (parts.size() < 2 || parts.size() > 3 || parts[0].empty() || parts[1].empty())
      return Error(Errc::invalid_argument, "--vm '" + spec + "' is not NAME:CGROUP_PATH[:TAP,...]");
    VmInfo vm;
    vm.name = parts[0];
    vm.uuid = "static-" + parts[0];
    vm.cgroup_path = parts[1].front() == '/' ? parts[1] : "/" + parts[1];
    if (parts.size() == 3) {
      std::stringstream taps(parts[2]);
      for (std::string t; std::getline(taps, t, ',');)
        if (!t.empty()) vm.taps.push_back(VmTap{t, 0, ""});
    }
    src.vms_.push_back(std::move(vm));
  }
  return src;
}

Result<std::vector<VmInfo>> StaticVmSource::list() {
  std::vector<VmInfo> out;
  for (VmInfo vm : vms_) {
    auto id = cgroup_id_of(cgroup2_root_ + vm.cgroup_path);
    if (!id) continue;  // not running (no cgroup): not listed, like a stopped domain
    vm.cgroup_id = *id;
    for (VmTap& t : vm.taps) t.ifindex = if_nametoindex(t.dev.c_str());
    out.push_back(std::move(vm));
  }
  return out;
}

}  // namespace morph::agent
