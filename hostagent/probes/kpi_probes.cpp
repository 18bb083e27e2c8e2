#include "hostagent/probes/kpi_probes.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <net/if.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "common/log.h"
#include "morph_kpi.h"
#include "morph_kpi_bpf.skel.h"
#include "policer.h"

namespace morph::agent {
namespace {

static_assert(MORPH_HIST_BUCKETS == kpi::kHistBuckets,
              "bpf/morph_kpi.h and common/kpi/log2_hist.h disagree on buckets");

uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);  // the clock of bpf_ktime_get_ns()
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

uint64_t sub0(uint64_t a, uint64_t b) {
  return a > b ? a - b : 0;
}

uint64_t read_u64_file(const std::string& path) {
  std::ifstream in(path);
  uint64_t v = 0;
  in >> v;
  return in ? v : 0;
}

bool btf_has_typedef(const btf* vmlinux, const char* name) {
  return vmlinux && btf__find_by_name_kind(vmlinux, name, BTF_KIND_TYPEDEF) > 0;
}

// Whether struct `type` of the kernel's BTF has a member `member` (by name, top level).
bool btf_has_member(const btf* vmlinux, const char* type, const char* member) {
  if (!vmlinux) return false;
  int id = btf__find_by_name_kind(vmlinux, type, BTF_KIND_STRUCT);
  if (id <= 0) return false;
  const btf_type* t = btf__type_by_id(vmlinux, id);
  const btf_member* m = btf_members(t);
  for (int i = 0; i < btf_vlen(t); i++, m++)
    if (std::strcmp(btf__name_by_offset(vmlinux, m->name_off), member) == 0) return true;
  return false;
}

std::string join_path(const std::string& root, const std::string& rel) {
  if (rel.empty() || rel == "/") return root;
  return rel.front() == '/' ? root + rel : root + "/" + rel;
}

}  // namespace

KpiProbes::PolicerSource pinned_policer_source(const std::string& pin_dir) {
  struct Pinned {
    std::string path;
    int fd = -1;
    ~Pinned() {
      if (fd >= 0) close(fd);
    }
  };
  auto pinned = std::make_shared<Pinned>();
  pinned->path = pin_dir + "/policer_stats";
  return [pinned](uint32_t ifindex, bool guest_rx) -> std::optional<KpiProbes::PolicerCounts> {
    if (pinned->fd < 0) {
      pinned->fd = bpf_obj_get(pinned->path.c_str());
      if (pinned->fd < 0) return std::nullopt;
    }
    // Guest receive is the tap's egress (POLICER_DIR_IN); guest transmit its ingress (POLICER_DIR_OUT).
    policer_key key{ifindex, guest_rx ? uint32_t(POLICER_DIR_IN) : uint32_t(POLICER_DIR_OUT)};
    std::vector<policer_stats> per_cpu(static_cast<size_t>(libbpf_num_possible_cpus()));
    if (bpf_map_lookup_elem(pinned->fd, &key, per_cpu.data()) != 0) return std::nullopt;
    KpiProbes::PolicerCounts c;
    for (const policer_stats& s : per_cpu) {
      c.drop_packets += s.drop_packets;
      c.drop_bytes += s.drop_bytes;
    }
    return c;
  };
}

std::map<std::string, uint64_t> read_flat_keyed(const std::string& path) {
  std::map<std::string, uint64_t> out;
  std::ifstream in(path);
  std::string key;
  uint64_t value = 0;
  while (in >> key >> value) out[key] = value;
  return out;
}

Result<uint64_t> cgroup_id_of(const std::string& dir) {
  // The cgroup v2 id is the kernfs node id, exported as the directory's file handle (as libbpf-tools'
  // get_cgroup_id does); st_ino can be truncated on 32-bit.
  alignas(file_handle) unsigned char buf[sizeof(file_handle) + sizeof(uint64_t)] = {};
  auto* fh = reinterpret_cast<file_handle*>(buf);
  fh->handle_bytes = sizeof(uint64_t);
  int mount_id = 0;
  if (name_to_handle_at(AT_FDCWD, dir.c_str(), fh, &mount_id, 0) != 0) return Error::from_errno("cgroup id of " + dir);
  uint64_t id = 0;
  std::memcpy(&id, buf + sizeof(file_handle), sizeof(id));
  return id;
}

Result<std::unique_ptr<KpiProbes>> KpiProbes::create(const ProbeOptions& options) {
  std::unique_ptr<KpiProbes> p(new KpiProbes());
  if (auto st = p->load(options); !st) return std::move(st).error().with_context("loading KPI probes");
  return p;
}

Status KpiProbes::load(const ProbeOptions& options) {
  options_ = options;
  slot_used_.assign(MORPH_MAX_VMS, false);
  log::route_libbpf();

  btf* vmlinux = btf__load_vmlinux_btf();
  if (!vmlinux) return Error(Errc::unavailable, "kernel BTF (/sys/kernel/btf/vmlinux) is required for CO-RE", errno);
  // tp_btf needs the tracepoint's btf_trace_* typedef in the kernel's BTF (5.5+).
  const bool has_tp_btf = btf_has_typedef(vmlinux, "btf_trace_sched_switch");
  const bool has_io_start = btf_has_typedef(vmlinux, "btf_trace_block_io_start");
  // CONFIG_SCHED_INFO: the kernel's own enqueue stamp and run delay per task.
  // The rq clock is read through the task's se.cfs_rq (CONFIG_FAIR_GROUP_SCHED, which cgroup CPU control needs).
  const bool has_sched_info =
      btf_has_member(vmlinux, "sched_info", "last_queued") && btf_has_member(vmlinux, "sched_entity", "cfs_rq");
  // BPF_MAP_TYPE_CGRP_STORAGE (6.2+).
  const bool has_cgrp_storage = btf_has_member(vmlinux, "cgroup", "bpf_cgrp_storage");
  btf__free(vmlinux);
  raw_tp_ = options.force_raw_tp || !has_tp_btf;
  sched_info_ = options.sched_info && has_sched_info;
  cgrp_storage_ = !raw_tp_ && has_cgrp_storage;

  skel_ = morph_kpi_bpf__open();
  if (!skel_) return Error::from_errno("opening BPF skeleton");
  skel_->rodata->count_faults = options.count_faults;
  skel_->rodata->use_sched_info = sched_info_;
  skel_->rodata->use_cgrp_storage = cgrp_storage_;
  skel_->rodata->use_runq_baseline = options.runq_baseline;

  auto* pr = &skel_->progs;
  for (bpf_program* tp :
       {pr->morph_sched_switch, pr->morph_block_io_start, pr->morph_block_rq_issue, pr->morph_block_rq_complete})
    bpf_program__set_autoload(tp, !raw_tp_);
  for (bpf_program* raw : {pr->morph_sched_switch_raw, pr->morph_block_io_start_raw, pr->morph_block_rq_issue_raw,
                           pr->morph_block_rq_complete_raw})
    bpf_program__set_autoload(raw, raw_tp_);
  // The wakeup programs only for the fallback without sched_info.
  bpf_program__set_autoload(pr->morph_sched_wakeup, !raw_tp_ && !sched_info_);
  bpf_program__set_autoload(pr->morph_sched_wakeup_new, !raw_tp_ && !sched_info_);
  bpf_program__set_autoload(pr->morph_sched_wakeup_raw, raw_tp_ && !sched_info_);
  bpf_program__set_autoload(pr->morph_sched_wakeup_new_raw, raw_tp_ && !sched_info_);
  // One submission-side program: block_io_start (submitter context, >= 6.5) else block_rq_issue.
  bpf_program__set_autoload(raw_tp_ ? pr->morph_block_io_start_raw : pr->morph_block_io_start,
                            options.block && has_io_start);
  bpf_program__set_autoload(raw_tp_ ? pr->morph_block_rq_issue_raw : pr->morph_block_rq_issue,
                            options.block && !has_io_start);
  bpf_program__set_autoload(raw_tp_ ? pr->morph_block_rq_complete_raw : pr->morph_block_rq_complete, options.block);
  block_start_ = !options.block ? "none" : has_io_start ? "block_io_start" : "block_rq_issue";
  // Task storage backs the tp_btf programs only; the raw_tp ones keep task state in a pid hash.
  bpf_map__set_autocreate(raw_tp_ ? skel_->maps.task_state : skel_->maps.task_state_by_pid, false);
  // cgroup_slot_storage: referenced by the tp_btf sched_switch only. Where the kernel lacks the map type the
  // program keeps the reference in dead code (use_cgrp_storage is false), so a token array stands in.
  if (raw_tp_) {
    bpf_map__set_autocreate(skel_->maps.cgroup_slot_storage, false);
  } else if (!cgrp_storage_) {
    bpf_map__set_type(skel_->maps.cgroup_slot_storage, BPF_MAP_TYPE_ARRAY);
    bpf_map__set_map_flags(skel_->maps.cgroup_slot_storage, 0);
    bpf_map__set_max_entries(skel_->maps.cgroup_slot_storage, 1);
  }
  // The policer's programs and maps share the linked object but belong to hostagent/shifter, which loads
  // them in its own instance; this instance leaves them out.
  for (bpf_program* p : {pr->policer_tap_ingress, pr->policer_tap_egress, pr->policer_test_verdict})
    bpf_program__set_autoload(p, false);
  for (bpf_map* m : {skel_->maps.policer_cfg, skel_->maps.policer_bucket, skel_->maps.policer_stats})
    bpf_map__set_autocreate(m, false);
  int err = morph_kpi_bpf__load(skel_);
  if (err)
    return Error(Errc::unavailable,
                 std::string("loading BPF programs (") + attach_mode() + ", run-queue wait from " + runq_source() + ")",
                 -err);

  // Every CPU starts "nothing seen": the first switch on each looks the outgoing task up.
  const int ncpu = libbpf_num_possible_cpus();
  morph_cpu_state none{};
  none.slot = MORPH_NO_SLOT;
  std::vector<morph_cpu_state> init(ncpu, none);
  uint32_t zero = 0;
  if (bpf_map__update_elem(skel_->maps.cpu_state, &zero, sizeof(zero), init.data(),
                           init.size() * sizeof(morph_cpu_state), 0) != 0)
    return Error::from_errno("initialising cpu_state");

  if (err = morph_kpi_bpf__attach(skel_); err) return Error(Errc::system, "attaching BPF programs", -err);
  spdlog::info("KPI probes attached: {} programs, run-queue wait from {}, slots by {}, block start at {}, faults {}",
               attach_mode(), runq_source(), cgrp_storage_ ? "cgroup storage" : "cgroup-id hash", block_start_,
               options.count_faults ? "on" : "off");
  return {};
}

KpiProbes::~KpiProbes() {
  for (auto& [uuid, vm] : vms_) unregister(vm);
  vms_.clear();
  if (skel_) morph_kpi_bpf__destroy(skel_);
}

Status KpiProbes::map_cgroups(Vm& vm) {
  std::set<uint64_t> ids(vm.cgroup_ids.begin(), vm.cgroup_ids.end());
  std::vector<std::pair<uint64_t, std::string>> found;  // id, directory ("" when known by id only)
  if (vm.info.cgroup_id) found.emplace_back(vm.info.cgroup_id, "");
  if (!vm.info.cgroup_path.empty()) {
    const std::string root = join_path(options_.cgroup2_root, vm.info.cgroup_path);
    std::error_code ec;
    if (!std::filesystem::is_directory(root, ec))
      return Error(Errc::not_found, "cgroup " + root + " of vm=" + vm.info.name + " does not exist");
    if (auto id = cgroup_id_of(root); id) found.emplace_back(*id, root);
    for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (!it->is_directory(ec)) continue;
      if (auto id = cgroup_id_of(it->path().string()); id) found.emplace_back(*id, it->path().string());
    }
  }
  if (found.empty()) return Error(Errc::invalid_argument, "vm=" + vm.info.name + " has no cgroup_id or cgroup_path");
  std::set<std::string> dirs(vm.cgroup_dirs.begin(), vm.cgroup_dirs.end());
  for (const auto& [id, dir] : found) {
    if (cgrp_storage_ && !dir.empty() && !dirs.count(dir)) {
      // sched_switch's view: cgroup local storage, keyed by an fd of the cgroup's directory.
      int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0) return Error::from_errno("opening cgroup " + dir + " of vm=" + vm.info.name);
      int err =
          bpf_map__update_elem(skel_->maps.cgroup_slot_storage, &fd, sizeof(fd), &vm.slot, sizeof(vm.slot), BPF_ANY);
      int saved = errno;
      close(fd);
      if (err != 0) return Error::from_errno("setting the slot of cgroup " + dir + " of vm=" + vm.info.name, saved);
      dirs.insert(dir);
      vm.cgroup_dirs.push_back(dir);
    }
    if (ids.count(id)) continue;
    if (bpf_map__update_elem(skel_->maps.cgroup_slots, &id, sizeof(id), &vm.slot, sizeof(vm.slot), BPF_ANY) != 0)
      return Error::from_errno("mapping cgroup " + std::to_string(id) + " of vm=" + vm.info.name);
    ids.insert(id);
    vm.cgroup_ids.push_back(id);
  }
  if (cgrp_storage_ && vm.cgroup_dirs.empty())
    spdlog::warn("vm={} has a cgroup id but no cgroup path: its CPU time and run-queue wait are not measured",
                 vm.info.name);
  return {};
}

Status KpiProbes::attach_tap(Tap& tap) {
  {
    // One clsact qdisc serves both hooks; EEXIST: someone (the policer, libvirt) created it already.
    LIBBPF_OPTS(bpf_tc_hook, both, .ifindex = int(tap.ifindex),
                .attach_point = bpf_tc_attach_point(BPF_TC_INGRESS | BPF_TC_EGRESS));
    int err = bpf_tc_hook_create(&both);
    if (err && err != -EEXIST) return Error(Errc::system, "creating clsact on " + tap.dev, -err);
  }
  for (bool ingress : {true, false}) {
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = int(tap.ifindex),
                .attach_point = ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS);
    LIBBPF_OPTS(
        bpf_tc_opts, opts,
        .prog_fd = bpf_program__fd(ingress ? skel_->progs.morph_tc_tap_ingress : skel_->progs.morph_tc_tap_egress),
        .flags = BPF_TC_F_REPLACE, .handle = MORPH_KPI_TC_HANDLE, .priority = MORPH_KPI_TC_PRIORITY);
    int err = bpf_tc_attach(&hook, &opts);
    if (err)
      return Error(Errc::system, std::string("attaching tc ") + (ingress ? "ingress" : "egress") + " on " + tap.dev,
                   -err);
    (ingress ? tap.attached_ingress : tap.attached_egress) = true;
  }
  return {};
}

void KpiProbes::detach_tap(Tap& tap) {
  for (bool ingress : {true, false}) {
    bool& attached = ingress ? tap.attached_ingress : tap.attached_egress;
    if (!attached) continue;
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = int(tap.ifindex),
                .attach_point = ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS);
    LIBBPF_OPTS(bpf_tc_opts, opts, .handle = MORPH_KPI_TC_HANDLE, .priority = MORPH_KPI_TC_PRIORITY);
    int err = bpf_tc_detach(&hook, &opts);
    // A tap removed with its VM takes its filters along: ENODEV/ENOENT/EINVAL are the expected outcomes.
    if (err && err != -ENODEV && err != -ENOENT && err != -EINVAL)
      spdlog::warn("detaching tc {} from {}: {}", ingress ? "ingress" : "egress", tap.dev, std::strerror(-err));
    attached = false;
  }
  // The clsact qdisc stays: other filters (the policer, other tools) may live on it.
}

Status KpiProbes::add_vm(const VmInfo& info) {
  if (vms_.count(info.uuid)) return Error(Errc::already_exists, "vm=" + info.name + " is already registered");
  auto free_slot = std::find(slot_used_.begin(), slot_used_.end(), false);
  if (free_slot == slot_used_.end())
    return Error(Errc::unavailable, "no free VM slot (" + std::to_string(MORPH_MAX_VMS) + " in use)");
  Vm vm;
  vm.info = info;
  vm.slot = uint32_t(free_slot - slot_used_.begin());

  // Counters start at zero for the new tenant of this slot.
  const int ncpu = libbpf_num_possible_cpus();
  std::vector<morph_vm_stats> zero(ncpu);
  if (bpf_map__update_elem(skel_->maps.vm_stats, &vm.slot, sizeof(vm.slot), zero.data(),
                           zero.size() * sizeof(morph_vm_stats), 0) != 0)
    return Error::from_errno("clearing slot " + std::to_string(vm.slot));

  auto fail = [&](Error e) -> Status {
    unregister(vm);
    return std::move(e).with_context("adding vm=" + info.name);
  };
  auto mapped = map_cgroups(vm);
  bump_slot_gen();  // also after a partial mapping, which fail() undoes
  if (!mapped) return fail(mapped.error());
  for (const VmTap& t : info.taps) {
    if (t.ifindex == 0) {
      spdlog::warn("vm={} tap {} has no ifindex; its traffic is not counted", info.name, t.dev);
      continue;
    }
    Tap tap{t.dev, t.ifindex};
    if (bpf_map__update_elem(skel_->maps.tap_slots, &tap.ifindex, sizeof(tap.ifindex), &vm.slot, sizeof(vm.slot),
                             BPF_ANY) != 0)
      return fail(Error::from_errno("mapping tap " + t.dev));
    vm.taps.push_back(tap);
    if (auto st = attach_tap(vm.taps.back()); !st) return fail(st.error());
  }
  slot_used_[vm.slot] = true;
  spdlog::info("vm={} registered in slot {}: {} cgroups, {} taps", info.name, vm.slot, vm.cgroup_ids.size(),
               vm.taps.size());
  Vm& added = vms_.emplace(info.uuid, std::move(vm)).first->second;
  // Baseline of the first interval: sysfs, cgroup files and the policer keep running totals.
  uint64_t now = monotonic_ns();
  if (auto totals = read_totals(now); totals) added.last = (*totals)[added.slot];
  add_host_counters(added, added.last);
  added.last_ns = now;
  return {};
}

void KpiProbes::unregister(Vm& vm) {
  for (uint64_t id : vm.cgroup_ids) bpf_map__delete_elem(skel_->maps.cgroup_slots, &id, sizeof(id), 0);
  vm.cgroup_ids.clear();
  for (const std::string& dir : vm.cgroup_dirs) {
    // A cgroup removed with its VM took its storage along.
    int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) continue;
    bpf_map__delete_elem(skel_->maps.cgroup_slot_storage, &fd, sizeof(fd), 0);
    close(fd);
  }
  vm.cgroup_dirs.clear();
  for (Tap& tap : vm.taps) {
    bpf_map__delete_elem(skel_->maps.tap_slots, &tap.ifindex, sizeof(tap.ifindex), 0);
    detach_tap(tap);
  }
  vm.taps.clear();
  if (vm.slot < slot_used_.size()) slot_used_[vm.slot] = false;
  bump_slot_gen();
}

void KpiProbes::bump_slot_gen() {
  // sched_switch caches the last cgroup's slot per CPU, tagged with slot_gen (a mmapped global): after a
  // change to the maps, the next switch on every CPU looks up again. Also a cgroup seen before it was
  // mapped (cached as no VM) is found this way.
  __atomic_fetch_add(&skel_->bss->slot_gen, 1u, __ATOMIC_SEQ_CST);
}

Status KpiProbes::remove_vm(const std::string& uuid) {
  auto it = vms_.find(uuid);
  if (it == vms_.end()) return Error(Errc::not_found, "vm " + uuid + " is not registered");
  unregister(it->second);
  spdlog::info("vm={} unregistered", it->second.info.name);
  vms_.erase(it);
  return {};
}

namespace {
std::vector<uint32_t> tap_key(const std::vector<VmTap>& taps) {
  std::vector<uint32_t> k;
  for (const auto& t : taps)
    if (t.ifindex) k.push_back(t.ifindex);
  std::sort(k.begin(), k.end());
  return k;
}
}  // namespace

Status KpiProbes::update_vm(const VmInfo& v) {
  if (auto it = vms_.find(v.uuid); it != vms_.end()) {
    const VmInfo& old = it->second.info;
    if (old.cgroup_path == v.cgroup_path && old.cgroup_id == v.cgroup_id && tap_key(old.taps) == tap_key(v.taps))
      return {};
    (void)remove_vm(v.uuid);
  }
  return add_vm(v);
}

Status KpiProbes::sync(const std::vector<VmInfo>& vms) {
  std::set<std::string> wanted;
  for (const VmInfo& v : vms) wanted.insert(v.uuid);
  for (auto it = vms_.begin(); it != vms_.end();) {
    auto next = std::next(it);
    if (!wanted.count(it->first)) {
      auto uuid = it->first;
      (void)remove_vm(uuid);
    }
    it = next;
  }
  Status result;
  for (const VmInfo& v : vms) {
    if (auto st = update_vm(v); !st) {
      spdlog::warn("{}", st.error().what());
      if (result) result = st.error();
    }
  }
  return result;
}

Status KpiProbes::refresh_cgroups() {
  Status result;
  bool added = false;
  for (auto& [uuid, vm] : vms_) {
    const size_t before = vm.cgroup_ids.size() + vm.cgroup_dirs.size();
    if (auto st = map_cgroups(vm); !st && result) result = st.error();
    added = added || vm.cgroup_ids.size() + vm.cgroup_dirs.size() != before;
  }
  if (added) bump_slot_gen();
  return result;
}

void KpiProbes::add_host_counters(const Vm& vm, Totals& t) const {
  // CPU throttling: cpu.stat of the VM's subtree, v2 (throttled_usec) where the cpu controller is on the
  // unified hierarchy, else v1 (throttled_time, ns). Each cgroup reports its own throttling: sum them.
  const std::string v2 = join_path(options_.cgroup2_root, vm.info.cgroup_path);
  const std::string v1cpu = join_path(options_.cgroup1_root + "/cpu", vm.info.cgroup_path);
  auto sum_tree = [](const std::string& root, const char* file, const char* key, uint64_t scale) {
    uint64_t sum = 0;
    std::error_code ec;
    if (!std::filesystem::is_directory(root, ec)) return std::pair<bool, uint64_t>{false, 0};
    bool any = false;
    auto add = [&](const std::string& dir) {
      auto kv = read_flat_keyed(dir + "/" + file);
      if (auto f = kv.find(key); f != kv.end()) {
        sum += f->second * scale;
        any = true;
      }
    };
    add(root);
    for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec))
      if (it->is_directory(ec)) add(it->path().string());
    return std::pair<bool, uint64_t>{any, sum};
  };
  if (!vm.info.cgroup_path.empty()) {
    auto [v2ok, v2sum] = sum_tree(v2, "cpu.stat", "throttled_usec", 1000);
    t.cpu_throttled_ns = v2ok ? v2sum : sum_tree(v1cpu, "cpu.stat", "throttled_time", 1).second;
  }
  // Kernel drops on the tap itself (queue full, guest not reading): tap tx = guest rx, tap rx = guest tx.
  for (const Tap& tap : vm.taps) {
    const std::string stats = "/sys/class/net/" + tap.dev + "/statistics/";
    t.net_rx_drops += read_u64_file(stats + "tx_dropped");
    t.net_tx_drops += read_u64_file(stats + "rx_dropped");
    // The policer runs after our count: its drops never reached the guest (rx), or were sent by the guest
    // but never left the host (tx: still counted as sent, as libvirt's tap counters do).
    if (policer_source_) {
      if (auto rx = policer_source_(tap.ifindex, true)) {
        t.net_rx_drops += rx->drop_packets;
        t.net_rx_policed_bytes += rx->drop_bytes;
        t.net_rx_bytes -= rx->drop_bytes;  // unsigned: undone when read_totals' sums are added
        t.net_rx_pkts -= rx->drop_packets;
      }
      if (auto tx = policer_source_(tap.ifindex, false)) {
        t.net_tx_drops += tx->drop_packets;
        t.net_tx_policed_bytes += tx->drop_bytes;
      }
    }
  }
}

Result<std::map<uint32_t, KpiProbes::Totals>> KpiProbes::read_totals(uint64_t& now_ns) {
  const int ncpu = libbpf_num_possible_cpus();
  const uint32_t nslots = MORPH_MAX_VMS;
  std::vector<uint32_t> keys(nslots);
  std::vector<morph_vm_stats> values(size_t(nslots) * ncpu);
  uint32_t count = nslots, out_batch = 0;
  LIBBPF_OPTS(bpf_map_batch_opts, bopts);
  // One syscall for every slot's per-CPU counters.
  int err = bpf_map_lookup_batch(bpf_map__fd(skel_->maps.vm_stats), nullptr, &out_batch, keys.data(), values.data(),
                                 &count, &bopts);
  if (err && errno != ENOENT) return Error::from_errno("batch read of vm_stats");

  // Slices still running: credit now - since to the VM on each CPU (the next switch credits the whole
  // slice, and the delta of two reads telescopes).
  std::vector<morph_cpu_state> cpus(ncpu);
  uint32_t zero = 0;
  now_ns = monotonic_ns();
  if (bpf_map__lookup_elem(skel_->maps.cpu_state, &zero, sizeof(zero), cpus.data(),
                           cpus.size() * sizeof(morph_cpu_state), 0) != 0)
    return Error::from_errno("reading cpu_state");

  std::map<uint32_t, Totals> out;
  for (const auto& [uuid, vm] : vms_) out[vm.slot];
  for (uint32_t i = 0; i < count; i++) {
    auto it = out.find(keys[i]);
    if (it == out.end()) continue;
    Totals& t = it->second;
    for (int c = 0; c < ncpu; c++) {
      const morph_vm_stats& s = values[size_t(i) * ncpu + c];
      t.cpu_run_ns += s.cpu_run_ns;
      t.cpu_wait_ns += s.cpu_wait_ns;
      for (int b = 0; b < kpi::kHistBuckets; b++) {
        t.runq[b] += s.runq_hist[b];
        t.blk[b] += s.blk_hist[b];
      }
      t.blk_read_bytes += s.blk_read_bytes;
      t.blk_write_bytes += s.blk_write_bytes;
      t.blk_read_ops += s.blk_read_ops;
      t.blk_write_ops += s.blk_write_ops;
      t.net_rx_bytes += s.net_rx_bytes;
      t.net_tx_bytes += s.net_tx_bytes;
      t.net_rx_pkts += s.net_rx_pkts;
      t.net_tx_pkts += s.net_tx_pkts;
      t.minor += s.mem_minor_faults;
      t.major += s.mem_major_faults;
    }
  }
  // Slices still running: the VM thread on each CPU has run for (its runtime now) - (its runtime at
  // switch-in). /proc/TID/schedstat shows se.sum_exec_runtime as of the thread's last tick or scheduler
  // event (at most a tick behind while it runs). The next switch credits the whole slice and this credit
  // is not kept, so the delta of two reads telescopes: any error here is undone at the next read.
  for (const morph_cpu_state& c : cpus) {
    auto it = out.find(c.slot);
    if (c.slot == MORPH_NO_SLOT || c.tid == 0 || it == out.end()) continue;
    std::ifstream in("/proc/" + std::to_string(c.tid) + "/schedstat");
    uint64_t runtime = 0;
    if (in >> runtime && runtime > c.since_runtime) it->second.cpu_run_ns += runtime - c.since_runtime;
  }
  return out;
}

Result<std::vector<kpi::VmKpis>> KpiProbes::read() {
  uint64_t now = 0;
  MORPH_TRY_ASSIGN(auto totals, read_totals(now));
  std::vector<kpi::VmKpis> out;
  out.reserve(vms_.size());
  for (auto& [uuid, vm] : vms_) {
    Totals t = totals[vm.slot];
    add_host_counters(vm, t);
    const Totals& l = vm.last;
    kpi::VmKpis k;
    k.uuid = vm.info.uuid;
    k.name = vm.info.name;
    k.interval_ns = sub0(now, vm.last_ns);
    k.cpu_run_ns = sub0(t.cpu_run_ns, l.cpu_run_ns);
    k.cpu_wait_ns = sub0(t.cpu_wait_ns, l.cpu_wait_ns);
    k.cpu_throttled_ns = sub0(t.cpu_throttled_ns, l.cpu_throttled_ns);
    for (int b = 0; b < kpi::kHistBuckets; b++) {
      k.runq_lat_us[b] = sub0(t.runq[b], l.runq[b]);
      k.blk_lat_us[b] = sub0(t.blk[b], l.blk[b]);
    }
    k.blk_read_bytes = sub0(t.blk_read_bytes, l.blk_read_bytes);
    k.blk_write_bytes = sub0(t.blk_write_bytes, l.blk_write_bytes);
    k.blk_read_ops = sub0(t.blk_read_ops, l.blk_read_ops);
    k.blk_write_ops = sub0(t.blk_write_ops, l.blk_write_ops);
    // Unsigned wrap-around subtraction: the policer adjustment may make a running total "negative".
    k.net_rx_bytes = t.net_rx_bytes - l.net_rx_bytes;
    k.net_rx_pkts = t.net_rx_pkts - l.net_rx_pkts;
    k.net_tx_bytes = sub0(t.net_tx_bytes, l.net_tx_bytes);
    k.net_tx_pkts = sub0(t.net_tx_pkts, l.net_tx_pkts);
    k.net_rx_drops = sub0(t.net_rx_drops, l.net_rx_drops);
    k.net_tx_drops = sub0(t.net_tx_drops, l.net_tx_drops);
    k.net_rx_policed_bytes = sub0(t.net_rx_policed_bytes, l.net_rx_policed_bytes);
    k.net_tx_policed_bytes = sub0(t.net_tx_policed_bytes, l.net_tx_policed_bytes);
    k.mem_minor_faults = sub0(t.minor, l.minor);
    k.mem_major_faults = sub0(t.major, l.major);
    // RSS gauge: anon + file of the VM's subtree (v2 memory.stat is hierarchical; v1 has total_*).
    if (!vm.info.cgroup_path.empty()) {
      auto v2 = read_flat_keyed(join_path(options_.cgroup2_root, vm.info.cgroup_path) + "/memory.stat");
      if (v2.count("anon")) {
        k.mem_rss_bytes = v2["anon"] + v2["file"];
      } else {
        auto v1 = read_flat_keyed(join_path(options_.cgroup1_root + "/memory", vm.info.cgroup_path) + "/memory.stat");
        k.mem_rss_bytes = v1["total_rss"] + v1["total_cache"];
      }
    }
    vm.last = t;
    vm.last_ns = now;
    out.push_back(std::move(k));
  }
  return out;
}

}  // namespace morph::agent
