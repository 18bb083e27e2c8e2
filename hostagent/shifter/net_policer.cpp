#include "hostagent/shifter/net_policer.h"

#include <bpf/bpf.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <vector>

#include "morph_policer.skel.h"

namespace morph::agent::shifter {

namespace {
constexpr std::string_view kPrefix = "policer_";
}

uint64_t NetPolicer::burst_for(uint64_t rate_bytes_per_sec) {
  return std::max<uint64_t>(rate_bytes_per_sec / 50, 64 * 1024);
}

Result<std::unique_ptr<NetPolicer>> NetPolicer::open(const Options& opt) {
  struct ::morph_policer* skel = morph_policer__open();
  if (skel == nullptr) return Error::from_errno("opening the morph BPF skeleton");
  std::unique_ptr<NetPolicer> self(new NetPolicer(skel));

  struct bpf_program* prog = nullptr;
  bpf_object__for_each_program(prog, skel->obj) {
    std::string_view name = bpf_program__name(prog);
    bool mine = name.starts_with(kPrefix) && (opt.load_test_entry || name != "policer_test_verdict");
    bpf_program__set_autoload(prog, mine);
  }
  if (!opt.pin_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(opt.pin_dir, ec);
    for (struct bpf_map* m : {skel->maps.policer_cfg, skel->maps.policer_bucket, skel->maps.policer_stats}) {
      std::string path = opt.pin_dir + "/" + bpf_map__name(m);
      if (int err = bpf_map__set_pin_path(m, path.c_str()); err)
        return Error::from_errno("setting pin path " + path, -err);
    }
  }
  if (int err = morph_policer__load(skel); err) return Error::from_errno("loading the policer programs", -err);
  return self;
}

NetPolicer::~NetPolicer() {
  // Filters stay attached on purpose: limits in force outlive the agent; a restarted agent re-attaches
  // (replacing the program) and finds its pinned configuration.
  morph_policer__destroy(skel_);
}

int NetPolicer::test_prog_fd() const {
  return bpf_program__fd(skel_->progs.policer_test_verdict);
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
  for (auto [where, prog] : {std::pair{BPF_TC_INGRESS, skel_->progs.policer_tap_ingress},
                             std::pair{BPF_TC_EGRESS, skel_->progs.policer_tap_egress}}) {
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
  int cfg_fd = bpf_map__fd(skel_->maps.policer_cfg);
  if (kbps == 0) {
    if (bpf_map_delete_elem(cfg_fd, &key) && errno != ENOENT)
      return Error::from_errno(fmt::format("removing the limit of ifindex {}", ifindex));
    bpf_map_delete_elem(bpf_map__fd(skel_->maps.policer_bucket), &key);
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
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.policer_cfg), &key, &cfg, BPF_ANY))
    return Error::from_errno(fmt::format("writing the limit of ifindex {}", key.ifindex));
  return {};
}

Result<uint64_t> NetPolicer::limit(uint32_t ifindex, NetDirection dir) {
  policer_key key{ifindex, static_cast<__u32>(dir)};
  policer_cfg cfg{};
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.policer_cfg), &key, &cfg)) {
    if (errno == ENOENT) return uint64_t{0};
    return Error::from_errno(fmt::format("reading the limit of ifindex {}", ifindex));
  }
  return cfg.rate_bytes_per_sec * 8 / 1000;
}

Result<policer_stats> NetPolicer::stats(uint32_t ifindex, NetDirection dir) {
  policer_key key{ifindex, static_cast<__u32>(dir)};
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return Error::from_errno("counting possible cpus", -ncpu);
  std::vector<policer_stats> per_cpu(static_cast<size_t>(ncpu));
  policer_stats sum{};
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.policer_stats), &key, per_cpu.data())) {
    if (errno == ENOENT) return sum;
    return Error::from_errno(fmt::format("reading policer counters of ifindex {}", ifindex));
  }
  for (const auto& s : per_cpu) {
    sum.pass_packets += s.pass_packets;
    sum.pass_bytes += s.pass_bytes;
    sum.drop_packets += s.drop_packets;
    sum.drop_bytes += s.drop_bytes;
  }
  return sum;
}

}  // namespace morph::agent::shifter
