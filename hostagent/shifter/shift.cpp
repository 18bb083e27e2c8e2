#include "hostagent/shifter/shift.h"

#include <fmt/format.h>

#include <bit>
#include <charconv>

namespace morph::agent::shifter {

int64_t InForce::value(Resource r) const noexcept {
  switch (r) {
    case Resource::cpu:
      return cpu_millicores;
    case Resource::cpu_shares:
      return static_cast<int64_t>(cpu_shares);
    case Resource::vcpu_pin: {
      auto m = parse_cpu_list(vcpu_pin);
      return m ? std::popcount(*m) : 0;
    }
    case Resource::memory:
      return static_cast<int64_t>(memory_mib);
    case Resource::disk_iops:
      return static_cast<int64_t>(disk_iops);
    case Resource::disk_bps:
      return static_cast<int64_t>(disk_bps);
    case Resource::net_out_kbps:
      return static_cast<int64_t>(net_out_kbps);
    case Resource::net_in_kbps:
      return static_cast<int64_t>(net_in_kbps);
    case Resource::storage_tier:
      return storage_tier;
  }
  return 0;
}

std::string describe(const InForce& f) {
  return fmt::format(
      "cpu_millicores={} (vcpu_quota={} vcpu_period={}) cpu_shares={} vcpu_pin={} memory_mib={} "
      "balloon_actual_mib={} disk_iops={} disk_bps={} net_out_kbps={} net_in_kbps={} storage_tier={}",
      f.cpu_millicores, f.vcpu_quota_us, f.vcpu_period_us, f.cpu_shares, f.vcpu_pin.empty() ? "-" : f.vcpu_pin,
      f.memory_mib, f.balloon_actual_mib, f.disk_iops, f.disk_bps, f.net_out_kbps, f.net_in_kbps, f.storage_tier);
}

Result<uint64_t> parse_cpu_list(std::string_view list) {
  uint64_t mask = 0;
  auto bad = [&] { return Error(Errc::invalid_argument, fmt::format("bad host cpu list '{}'", list)); };
  if (list.empty()) return bad();
  while (!list.empty()) {
    auto comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    auto dash = item.find('-');
    unsigned lo = 0, hi = 0;
    auto num = [](std::string_view s, unsigned& out) {
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
      return ec == std::errc() && p == s.data() + s.size() && !s.empty();
    };
    if (dash == std::string_view::npos) {
      if (!num(item, lo)) return bad();
      hi = lo;
    } else if (!num(item.substr(0, dash), lo) || !num(item.substr(dash + 1), hi) || hi < lo) {
      return bad();
    }
    if (hi >= 64) return bad();
    for (unsigned c = lo; c <= hi; ++c) mask |= uint64_t{1} << c;
  }
  return mask;
}

std::string format_cpu_list(uint64_t mask) {
  std::string out;
  for (unsigned c = 0; c < 64;) {
    if (!(mask >> c & 1)) {
      ++c;
      continue;
    }
    unsigned end = c;
    while (end + 1 < 64 && (mask >> (end + 1) & 1)) ++end;
    if (!out.empty()) out += ',';
    out += end == c ? fmt::format("{}", c) : fmt::format("{}-{}", c, end);
    c = end + 1;
  }
  return out;
}

}  // namespace morph::agent::shifter
