#include "hostagent/probes/kpi_probes.h"

#include <bpf/bpf.h>
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
#include <optional>
#include <set>
#include <sstream>

#include "bpf/morph_kpi.h"
#include "bpf/policer.h"

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

// What the policer loaded in the same runtime dropped on a tap in one direction (POLICER_DIR_*); nothing
// when the runtime has no policer or it never policed that tap.
std::optional<policer_stats> policer_drops(const BpfRuntime& runtime, uint32_t ifindex, uint32_t dir) {
  const PolicerObjects* policer = runtime.policer();
  if (!policer) return std::nullopt;
  const policer_key key{ifindex, dir};
  auto per_cpu = lookup_percpu<policer_stats>(policer->stats, &key, sizeof(key));
  if (!per_cpu) return std::nullopt;
  policer_stats sum{};
  for (const policer_stats& s : *per_cpu) {
    sum.drop_packets += s.drop_packets;
    sum.drop_bytes += s.drop_bytes;
  }
  return sum;
}

std::string join_path(const std::string& root, const std::string& rel) {
  if (rel.empty() || rel == "/") return root;
  return rel.front() == '/' ? root + rel : root + "/" + rel;
}

}  // namespace

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

KpiProbes::KpiProbes(std::shared_ptr<BpfRuntime> runtime, const ProbeOptions& options)
    : runtime_(std::move(runtime)), kpi_(runtime_->kpi()), options_(options) {
  slot_used_.assign(MORPH_MAX_VMS, false);
}

Result<std::unique_ptr<KpiProbes>> KpiProbes::create(std::shared_ptr<BpfRuntime> runtime, const ProbeOptions& options) {
  if (!runtime || !runtime->kpi())
    return Error(Errc::unavailable, "attaching KPI probes: the BPF runtime was loaded without the KPI programs");
  std::unique_ptr<KpiProbes> p(new KpiProbes(std::move(runtime), options));
  if (auto st = p->attach(); !st) return std::move(st).error().with_context("attaching KPI probes");
  return p;
}

Status KpiProbes::attach() {
  // Every CPU starts "nothing seen": the first switch on each looks the outgoing task up. Before the
  // programs run, so no switch reads a zeroed state as slot 0's.
  const int ncpu = libbpf_num_possible_cpus();
  morph_cpu_state none{};
  none.slot = MORPH_NO_SLOT;
  std::vector<morph_cpu_state> init(ncpu, none);
  uint32_t zero = 0;
  if (bpf_map__update_elem(kpi_->cpu_state, &zero, sizeof(zero), init.data(), init.size() * sizeof(morph_cpu_state),
                           0) != 0)
    return Error::from_errno("initialising cpu_state");
  for (bpf_program* prog : kpi_->tracing) {
    bpf_link* link = bpf_program__attach(prog);
    if (!link) return Error(Errc::system, std::string("attaching ") + bpf_program__name(prog), errno);
    links_.push_back(link);
  }
  spdlog::info("KPI probes attached: {} programs, run-queue wait from {}, slots by {}, block start at {}, faults {}",
               attach_mode(), runq_source(), kpi_->cgrp_storage ? "cgroup storage" : "cgroup-id hash",
               block_start_event(), kpi_->count_faults ? "on" : "off");
  return {};
}

KpiProbes::~KpiProbes() {
  for (auto& [uuid, vm] : vms_) unregister(vm);
  vms_.clear();
  for (bpf_link* link : links_) bpf_link__destroy(link);
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
    if (kpi_->cgrp_storage && !dir.empty() && !dirs.count(dir)) {
      // sched_switch's view: cgroup local storage, keyed by an fd of the cgroup's directory.
      int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0) return Error::from_errno("opening cgroup " + dir + " of vm=" + vm.info.name);
      int err = bpf_map__update_elem(kpi_->cgroup_slot_storage, &fd, sizeof(fd), &vm.slot, sizeof(vm.slot), BPF_ANY);
      int saved = errno;
      close(fd);
      if (err != 0) return Error::from_errno("setting the slot of cgroup " + dir + " of vm=" + vm.info.name, saved);
      dirs.insert(dir);
      vm.cgroup_dirs.push_back(dir);
    }
    if (ids.count(id)) continue;
    if (bpf_map__update_elem(kpi_->cgroup_slots, &id, sizeof(id), &vm.slot, sizeof(vm.slot), BPF_ANY) != 0)
      return Error::from_errno("mapping cgroup " + std::to_string(id) + " of vm=" + vm.info.name);
    ids.insert(id);
    vm.cgroup_ids.push_back(id);
  }
  if (kpi_->cgrp_storage && vm.cgroup_dirs.empty())
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
    LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = bpf_program__fd(ingress ? kpi_->tc_ingress : kpi_->tc_egress),
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
  if (bpf_map__update_elem(kpi_->vm_stats, &vm.slot, sizeof(vm.slot), zero.data(), zero.size() * sizeof(morph_vm_stats),
                           0) != 0)
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
    if (bpf_map__update_elem(kpi_->tap_slots, &tap.ifindex, sizeof(tap.ifindex), &vm.slot, sizeof(vm.slot), BPF_ANY) !=
        0)
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
  for (uint64_t id : vm.cgroup_ids) bpf_map__delete_elem(kpi_->cgroup_slots, &id, sizeof(id), 0);
  vm.cgroup_ids.clear();
  for (const std::string& dir : vm.cgroup_dirs) {
    // A cgroup removed with its VM took its storage along.
    int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) continue;
    bpf_map__delete_elem(kpi_->cgroup_slot_storage, &fd, sizeof(fd), 0);
    close(fd);
  }
  vm.cgroup_dirs.clear();
  for (Tap& tap : vm.taps) {
    bpf_map__delete_elem(kpi_->tap_slots, &tap.ifindex, sizeof(tap.ifindex), 0);
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
  __atomic_fetch_add(kpi_->slot_gen, 1u, __ATOMIC_SEQ_CST);
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
    if (auto rx = policer_drops(*runtime_, tap.ifindex, POLICER_DIR_IN)) {
      t.net_rx_drops += rx->drop_packets;
      t.net_rx_policed_bytes += rx->drop_bytes;
      t.net_rx_bytes -= rx->drop_bytes;  // unsigned: undone when read_totals' sums are added
      t.net_rx_pkts -= rx->drop_packets;
    }
    if (auto tx = policer_drops(*runtime_, tap.ifindex, POLICER_DIR_OUT)) {
      t.net_tx_drops += tx->drop_packets;
      t.net_tx_policed_bytes += tx->drop_bytes;
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
  int err = bpf_map_lookup_batch(bpf_map__fd(kpi_->vm_stats), nullptr, &out_batch, keys.data(), values.data(), &count,
                                 &bopts);
  if (err && errno != ENOENT) return Error::from_errno("batch read of vm_stats");

  // Slices still running: credit now - since to the VM on each CPU (the next switch credits the whole
  // slice, and the delta of two reads telescopes).
  std::vector<morph_cpu_state> cpus(ncpu);
  uint32_t zero = 0;
  now_ns = monotonic_ns();
  if (bpf_map__lookup_elem(kpi_->cpu_state, &zero, sizeof(zero), cpus.data(), cpus.size() * sizeof(morph_cpu_state),
                           0) != 0)
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
