#include "hostagent/lease_state/lease_state_file.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace morph::agent {

using shifter::InForce;
using shifter::LeaseRecord;

namespace {

nlohmann::json to_json(const InForce& f) {
  return {
      {"cpu_millicores", f.cpu_millicores}, {"vcpu_quota_us", f.vcpu_quota_us}, {"vcpu_period_us", f.vcpu_period_us},
      {"cpu_shares", f.cpu_shares},         {"vcpu_pin", f.vcpu_pin},           {"memory_mib", f.memory_mib},
      {"disk_iops", f.disk_iops},           {"disk_bps", f.disk_bps},           {"net_out_kbps", f.net_out_kbps},
      {"net_in_kbps", f.net_in_kbps},       {"storage_tier", f.storage_tier}};
}

InForce in_force_from_json(const nlohmann::json& j) {
  InForce f;
  f.cpu_millicores = j.value("cpu_millicores", int64_t{0});
  f.vcpu_quota_us = j.value("vcpu_quota_us", int64_t{-1});
  f.vcpu_period_us = j.value("vcpu_period_us", uint64_t{0});
  f.cpu_shares = j.value("cpu_shares", uint64_t{0});
  f.vcpu_pin = j.value("vcpu_pin", std::string{});
  f.memory_mib = j.value("memory_mib", uint64_t{0});
  f.disk_iops = j.value("disk_iops", uint64_t{0});
  f.disk_bps = j.value("disk_bps", uint64_t{0});
  f.net_out_kbps = j.value("net_out_kbps", uint64_t{0});
  f.net_in_kbps = j.value("net_in_kbps", uint64_t{0});
  f.storage_tier = j.value("storage_tier", int64_t{0});
  return f;
}

int64_t to_ms(shifter::TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

LeaseRecord record_from_json(const nlohmann::json& v) {
  LeaseRecord r;
  r.vm_uuid = v.value("uuid", std::string{});
  r.baseline = in_force_from_json(v.value("baseline", nlohmann::json::object()));
  for (const auto& name : v.value("shifted", nlohmann::json::array()))
    if (auto res = parse_resource(name.get<std::string>())) r.shifted.insert(*res);
  if (int64_t ms = v.value("lease_expiry_ms", int64_t{0}); ms > 0)
    r.lease = shifter::TimePoint(std::chrono::milliseconds(ms));
  r.last_command = v.value("last_command", uint64_t{0});
  return r;
}

}  // namespace

Status LeaseStateFile::save(const std::vector<LeaseRecord>& records) {
  nlohmann::json vms = nlohmann::json::array();
  for (const LeaseRecord& r : records) {
    nlohmann::json shifted = nlohmann::json::array();
    for (Resource res : r.shifted) shifted.push_back(resource_name(res));
    vms.push_back({{"uuid", r.vm_uuid},
                   {"baseline", to_json(r.baseline)},
                   {"shifted", shifted},
                   {"lease_expiry_ms", r.lease ? to_ms(*r.lease) : int64_t{0}},
                   {"last_command", r.last_command}});
  }
  const std::string tmp = path_ + ".tmp";
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path_).parent_path(), ec);
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << nlohmann::json{{"version", 1}, {"vms", vms}}.dump(1) << '\n';
    if (!f) return Error(Errc::system, fmt::format("cannot write state file {}", tmp));
  }
  std::filesystem::rename(tmp, path_, ec);
  if (ec) return Error(Errc::system, fmt::format("cannot replace state file {}: {}", path_, ec.message()));
  return {};
}

Result<std::vector<LeaseRecord>> LeaseStateFile::load() {
  std::vector<LeaseRecord> out;
  std::ifstream f(path_);
  if (!f) return out;  // first start
  nlohmann::json j = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.contains("vms"))
    return Error(Errc::protocol, fmt::format("state file {} is not valid", path_));
  try {
    for (const auto& v : j["vms"]) out.push_back(record_from_json(v));
  } catch (const nlohmann::json::exception& e) {  // a field of the wrong type
    return Error(Errc::protocol, fmt::format("state file {} is not valid: {}", path_, e.what()));
  }
  return out;
}

}  // namespace morph::agent
