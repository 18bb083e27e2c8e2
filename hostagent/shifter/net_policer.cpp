#include "hostagent/shifter/net_policer.h"

#include <bpf/bpf.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <vector>

namespace morph::agent::shifter {

uint64_t NetPolicer::burst_for(uint64_t rate_bytes_per_sec) {
  return std::max<uint64_t>(rate_bytes_per_sec / 50, 64 * 1024);
}

Result<std::unique_ptr<NetPolicer>> NetPolicer::open(std::shared_ptr<BpfRuntime> runtime) {
  if (!runtime || !runtime->policer()) {
    const std::string why = runtime && !runtime->policer_error().empty() ? ": " + runtime->policer_error() : "";
    return Error(Errc::unavailable, "the BPF runtime has no network policer" + why);
  }
  return std::unique_ptr<NetPolicer>(new NetPolicer(std::move(runtime)));
}

NetPolicer::~NetPolicer() {
  // Filters stay attached on purpose: limits in force outlive the agent; a restarted agent's runtime reuses
  // the pinned maps, re-attaches (replacing the program) and finds its configuration.
}

int NetPolicer::test_prog_fd() const {
  return objects_.test_verdict ? bpf_program__fd(objects_.test_verdict) : -1;
}

Status NetPolicer::attach(uint32_t ifindex) {
  if (attached_.count(ifindex)) return {};
  {
    // One clsact qdisc serves both hooks; EEXIST: the KPI probes (or libvirt) created it already.
    LIBBPF_OPTS(bpf_tc_hook, both, .ifindex = static_cast<int>(ifindex),
                .attach_point = bpf_tc_attach_point(BPF_TC_INGRESS | BPF_TC_EGRESS));
    int err = bpf_tc_hook_create(&both);
    if (err && err != -EEXIST) return Error::from_errno(fmt::format("creating clsact on ifindex {}", ifindex), -err);
  }
  for (auto [where, prog] :
       {std::pair{BPF_TC_INGRESS, objects_.tap_ingress}, std::pair{BPF_TC_EGRESS, objects_.tap_egress}}) {
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(ifindex), .attach_point = where);
    LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = bpf_program__fd(prog), .flags = BPF_TC_F_REPLACE,
                .handle = POLICER_TC_HANDLE, .priority = POLICER_TC_PRIORITY);
    int err = bpf_tc_attach(&hook, &opts);
    if (err)
      return Error::from_errno(fmt::format("attaching {} on ifindex {}", bpf_program__name(prog), ifindex), -err);
  }
  attached_.insert(ifindex);
  spdlog::debug("policer attached to ifindex {}", ifindex);
  return {};
}

Status NetPolicer::detach(uint32_t ifindex) {
  std::lock_guard lock(mu_);
  for (auto where : {BPF_TC_INGRESS, BPF_TC_EGRESS}) {
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(ifindex), .attach_point = where);
    LIBBPF_OPTS(bpf_tc_opts, opts, .handle = POLICER_TC_HANDLE, .priority = POLICER_TC_PRIORITY);
    int err = bpf_tc_detach(&hook, &opts);
    if (err && err != -ENOENT && err != -EINVAL && err != -ENODEV)
      return Error::from_errno(fmt::format("detaching the policer from ifindex {}", ifindex), -err);
  }
  attached_.erase(ifindex);
  return {};
}

Status NetPolicer::set_limit(uint32_t ifindex, NetDirection dir, uint64_t kbps) {
  std::lock_guard lock(mu_);
  policer_key key{ifindex, static_cast<__u32>(dir)};
  int cfg_fd = bpf_map__fd(objects_.cfg);
  if (kbps == 0) {
    if (bpf_map_delete_elem(cfg_fd, &key) && errno != ENOENT)
      return Error::from_errno(fmt::format("removing the limit of ifindex {}", ifindex));
    bpf_map_delete_elem(bpf_map__fd(objects_.bucket), &key);
    return {};
  }
  MORPH_TRY(attach(ifindex));
  const uint64_t rate = kbps * 1000 / 8;
  return configure_locked(key, rate, burst_for(rate));
}

Status NetPolicer::configure(uint32_t ifindex, NetDirection dir, uint64_t rate_bytes_per_sec, uint64_t burst_bytes) {
  std::lock_guard lock(mu_);
  return configure_locked(policer_key{ifindex, static_cast<__u32>(dir)}, rate_bytes_per_sec, burst_bytes);
}

Status NetPolicer::configure_locked(const policer_key& key, uint64_t rate, uint64_t burst) {
  policer_cfg cfg{rate, burst};
  if (bpf_map_update_elem(bpf_map__fd(objects_.cfg), &key, &cfg, BPF_ANY))
    return Error::from_errno(fmt::format("writing the limit of ifindex {}", key.ifindex));
  return {};
}

Result<uint64_t> NetPolicer::limit(uint32_t ifindex, NetDirection dir) {
  policer_key key{ifindex, static_cast<__u32>(dir)};
  policer_cfg cfg{};
  if (bpf_map_lookup_elem(bpf_map__fd(objects_.cfg), &key, &cfg)) {
    if (errno == ENOENT) return uint64_t{0};
    return Error::from_errno(fmt::format("reading the limit of ifindex {}", ifindex));
  }
  return cfg.rate_bytes_per_sec * 8 / 1000;
}

Result<policer_stats> NetPolicer::stats(uint32_t ifindex, NetDirection dir) {
  policer_key key{ifindex, static_cast<__u32>(dir)};
  policer_stats sum{};
  auto per_cpu = lookup_percpu<policer_stats>(objects_.stats, &key, sizeof(key));
  if (!per_cpu) {
    if (per_cpu.error().code() == Errc::not_found) return sum;
    return std::move(per_cpu).error().with_context(fmt::format("policer counters of ifindex {}", ifindex));
  }
  for (const auto& s : *per_cpu) {
    sum.pass_packets += s.pass_packets;
    sum.pass_bytes += s.pass_bytes;
    sum.drop_packets += s.drop_packets;
    sum.drop_bytes += s.drop_bytes;
  }
  return sum;
}

}  // namespace morph::agent::shifter
