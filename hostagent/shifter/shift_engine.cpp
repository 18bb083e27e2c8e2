#include "hostagent/shifter/shift_engine.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <bit>

namespace morph::agent::shifter {

namespace {

// The adjustment that puts a resource back to what `f` says was in force.
Adjustment restoring(Resource r, const InForce& f) {
  Adjustment a{r, f.value(r), {}};
  if (r == Resource::vcpu_pin) a.target = f.vcpu_pin;
  return a;
}

}  // namespace

const char* expiry_policy_name(ExpiryPolicy p) noexcept {
  return p == ExpiryPolicy::hold ? "hold" : "revert";
}

std::optional<int64_t> cpu_shares_following(const InForce& baseline, int64_t millicores) noexcept {
  constexpr int64_t kMinShares = 2, kMaxShares = 262144;
  if (baseline.cpu_shares == 0 || baseline.cpu_millicores <= 0 || millicores <= 0) return std::nullopt;
  // shares <= 2^18 and millicores <= 2^40: the product stays inside int64.
  const auto shares = static_cast<int64_t>(std::min<uint64_t>(baseline.cpu_shares, kMaxShares));
  // At or below the baseline the weight stays the baseline's: a cap limits, it does not deprioritise.
  const int64_t mc = std::clamp<int64_t>(millicores, baseline.cpu_millicores, int64_t{1} << 40);
  const int64_t scaled = (shares * mc + baseline.cpu_millicores / 2) / baseline.cpu_millicores;
  return std::clamp(scaled, kMinShares, kMaxShares);
}

ShiftEngine::ShiftEngine(Mechanisms& mechanisms, Clock clock, Options options)
    : mech_(mechanisms), clock_(std::move(clock)), opt_(std::move(options)) {}

Status ShiftEngine::validate(const VmTarget& vm, const ShiftRequest& req) const {
  auto bad = [&](const Adjustment& a, const std::string& why) {
    return Error(Errc::invalid_argument,
                 fmt::format("{}={} for vm={}: {}", resource_name(a.resource), a.value, vm.name, why));
  };
  if (req.adjustments.empty()) return Error(Errc::invalid_argument, "shift without adjustments");
  if (req.lease.count() <= 0) return Error(Errc::invalid_argument, "lease must be positive");
  std::set<Resource> seen;
  for (const Adjustment& a : req.adjustments) {
    if (!seen.insert(a.resource).second) return bad(a, "resource given twice in one command");
    if (a.value < 0) return bad(a, "negative value");
    const auto v = static_cast<uint64_t>(a.value);
    switch (a.resource) {
      case Resource::cpu:
        if (v < 10 || v > uint64_t{vm.vcpus} * 1000)
          return bad(a, fmt::format("outside 10..{} ({} vCPUs)", uint64_t{vm.vcpus} * 1000, vm.vcpus));
        break;
      case Resource::cpu_shares:
        if (v < 2 || v > 262144) return bad(a, "outside 2..262144");
        break;
      case Resource::vcpu_pin: {
        auto mask = parse_cpu_list(a.target);
        if (!mask) return bad(a, mask.error().message());
        if (vm.host_cpus < 64 && (*mask >> vm.host_cpus) != 0)
          return bad(a, fmt::format("cpu list '{}' names cpus beyond the host's {}", a.target, vm.host_cpus));
        break;
      }
      case Resource::memory:
        if (v < 16) return bad(a, "below 16 MiB");
        if (v > vm.max_memory_mib)
          return bad(a, fmt::format("above the domain's maximum of {} MiB", vm.max_memory_mib));
        break;
      case Resource::disk_iops:
      case Resource::disk_bps:
        if (vm.disk.empty()) return bad(a, "the VM has no disk");
        break;
      case Resource::net_out_kbps:
      case Resource::net_in_kbps:
        if (vm.tap_ifindexes.empty()) return bad(a, "the VM has no tap device");
        if (!vm.net_limiter) return Error(Errc::unavailable, "no network policer is loaded on this host");
        if (v > 100'000'000) return bad(a, "above 100 Gbit/s");
        break;
      case Resource::storage_tier:
        if (vm.disk.empty()) return bad(a, "the VM has no disk");
        if (v > 1) return bad(a, "not a storage tier (0 = standard, 1 = fast)");
        if (vm.disk_tier < 0) return bad(a, fmt::format("disk {} is in neither storage pool", vm.disk));
        break;
    }
  }
  return {};
}

ShiftOutcome ShiftEngine::shift(const ShiftRequest& request) {
  std::lock_guard lock(mu_);
  if (auto it = outcomes_.find(request.command_id); it != outcomes_.end()) {
    spdlog::debug("shift command={} repeated; returning its stored outcome", request.command_id);
    return it->second;
  }
  ShiftOutcome out = apply_locked(request);
  remember_locked(out);
  return out;
}

ShiftOutcome ShiftEngine::apply_locked(const ShiftRequest& req) {
  ShiftOutcome out;
  out.command_id = req.command_id;
  auto fail = [&](Error e) {
    spdlog::warn("shift command={} vm={} rejected: {}", req.command_id, req.vm, e.what());
    out.error = std::move(e);
    return out;
  };

  auto vm = mech_.resolve(req.vm);
  if (!vm) return fail(std::move(vm).error());
  out.vm_uuid = vm->uuid;
  if (auto st = validate(*vm, req); !st) return fail(std::move(st).error());

  auto before = mech_.read(*vm);
  if (!before) return fail(std::move(before).error().with_context("reading values in force"));
  out.in_force = *before;

  // CPU weight follows CPU quota: a cpu_millicores adjustment without an explicit cpu_shares one also
  // sets the shares in proportion to the VM's baseline (cpu_shares_following). Appended last, so it is
  // rolled back with the rest, and marked shifted, so a revert restores the baseline shares too.
  std::vector<Adjustment> adjustments = req.adjustments;
  if (opt_.shares_follow_cpu) {
    const Adjustment* cpu = nullptr;
    bool explicit_shares = false;
    for (const Adjustment& a : adjustments) {
      if (a.resource == Resource::cpu) cpu = &a;
      explicit_shares |= a.resource == Resource::cpu_shares;
    }
    if (cpu != nullptr && !explicit_shares) {
      auto known = vms_.find(vm->uuid);
      const InForce& base = known != vms_.end() ? known->second.baseline : *before;
      if (auto shares = cpu_shares_following(base, cpu->value)) {
        spdlog::debug(
            "shift command={} vm={} name={}: cpu_millicores={} brings cpu_shares={} (baseline {} mc, {} shares)",
            req.command_id, vm->uuid, vm->name, cpu->value, *shares, base.cpu_millicores, base.cpu_shares);
        adjustments.push_back({Resource::cpu_shares, *shares, {}});
      }
    }
  }

  // Write ahead: the lease record (baseline, what this command shifts, its expiry) is on disk before
  // anything changes, so an agent killed in the middle of applying still finds the VM in its state file
  // after a restart and reverts it when the lease runs out (reconcile). A failed command is rolled back,
  // and its record with it.
  std::optional<VmState> previous;
  {
    auto [it, fresh] = vms_.try_emplace(vm->uuid);
    if (fresh)
      it->second.baseline = *before;  // captured before the first shift of this lease period
    else
      previous = it->second;
    VmState& st = it->second;
    st.target = *vm;
    for (const Adjustment& a : adjustments) st.shifted.insert(a.resource);
    st.lease = clock_() + req.lease;
    st.last_command = req.command_id;
    persist_locked();
  }

  // Apply in order; on a failure undo what was applied, newest first.
  std::vector<Resource> applied;
  for (const Adjustment& a : adjustments) {
    auto r = mech_.apply(*vm, a);
    if (!r) {
      if (previous)
        vms_[vm->uuid] = *previous;
      else
        vms_.erase(vm->uuid);
      persist_locked();
      std::string rollback;
      for (auto it = applied.rbegin(); it != applied.rend(); ++it) {
        auto undo = mech_.apply(*vm, restoring(*it, *before));
        rollback += fmt::format("{}{} {}", rollback.empty() ? "" : ", ", resource_name(*it),
                                undo ? "rolled back" : "ROLLBACK FAILED (" + undo.error().what() + ")");
      }
      Error e = std::move(r).error().with_context(fmt::format("applying {}={}", resource_name(a.resource), a.value));
      if (!rollback.empty()) e = std::move(e).with_context(fmt::format("[{}]", rollback));
      if (auto now = mech_.read(*vm)) out.in_force = *now;
      return fail(std::move(e));
    }
    if (!r->empty()) out.warnings.push_back(*r);
    applied.push_back(a.resource);
  }

  command_vm_[req.command_id] = vm->uuid;
  out.lease_expiry = vms_[vm->uuid].lease;

  // Read back what this command changed; the rest is as read just before it (mechanisms.h).
  if (auto now = mech_.read_changed(*vm, *before, applied)) {
    out.in_force = *now;
  } else {
    out.warnings.push_back("applied, but reading back failed: " + now.error().what());
  }
  for (const auto& w : out.warnings)
    spdlog::warn("shift command={} vm={} name={}: {}", req.command_id, vm->uuid, vm->name, w);
  spdlog::info("shift command={} vm={} name={} applied; in force: {}", req.command_id, vm->uuid, vm->name,
               describe(out.in_force));
  return out;
}

void ShiftEngine::remember_locked(const ShiftOutcome& outcome) {
  if (outcomes_.emplace(outcome.command_id, outcome).second) outcome_order_.push_back(outcome.command_id);
  while (outcome_order_.size() > opt_.remembered_outcomes) {
    outcomes_.erase(outcome_order_.front());
    command_vm_.erase(outcome_order_.front());
    outcome_order_.pop_front();
  }
}

Status ShiftEngine::renew_command(uint64_t command_id, TimePoint expiry) {
  std::string uuid;
  {
    std::lock_guard lock(mu_);
    auto it = command_vm_.find(command_id);
    if (it == command_vm_.end()) return Error(Errc::not_found, fmt::format("no lease for command {}", command_id));
    uuid = it->second;
  }
  return renew_vm(uuid, expiry);
}

Status ShiftEngine::renew_vm(const std::string& vm_uuid, TimePoint expiry) {
  std::lock_guard lock(mu_);
  auto it = vms_.find(vm_uuid);
  if (it == vms_.end() || !it->second.lease)
    return Error(Errc::not_found, fmt::format("vm={} holds no lease", vm_uuid));
  it->second.lease = std::max(*it->second.lease, expiry);
  persist_locked();
  return {};
}

LeaseEvent ShiftEngine::end_lease_locked(VmState& st, TimePoint now) {
  LeaseEvent ev;
  ev.vm_uuid = st.target.uuid;
  ev.command_id = st.last_command;
  ev.expired_at = now;
  ev.action = opt_.on_expiry;
  st.lease.reset();
  if (opt_.on_expiry == ExpiryPolicy::revert) {
    std::string failed;
    for (Resource r : st.shifted) {
      auto res = mech_.apply(st.target, restoring(r, st.baseline));
      if (!res) failed += fmt::format("{}{}: {}", failed.empty() ? "" : "; ", resource_name(r), res.error().what());
    }
    if (!failed.empty()) ev.error = Error(Errc::system, "reverting to baseline: " + failed);
  }
  if (auto f = mech_.read(st.target)) ev.in_force = *f;
  if (ev.error) {
    spdlog::error("lease of vm={} name={} expired; revert incomplete: {}", st.target.uuid, st.target.name,
                  ev.error->what());
  } else {
    spdlog::info("lease of vm={} name={} (command={}) expired; {}; in force: {}", st.target.uuid, st.target.name,
                 st.last_command, opt_.on_expiry == ExpiryPolicy::revert ? "reverted to baseline" : "holding values",
                 describe(ev.in_force));
  }
  events_.push_back(ev);
  return ev;
}

std::vector<LeaseEvent> ShiftEngine::expire_due() {
  std::lock_guard lock(mu_);
  std::vector<LeaseEvent> out;
  const TimePoint now = clock_();
  for (auto it = vms_.begin(); it != vms_.end();) {
    VmState& st = it->second;
    if (st.lease && *st.lease <= now) {
      out.push_back(end_lease_locked(st, now));
      // After a revert the next shift captures a fresh baseline; a held VM keeps its old one.
      if (opt_.on_expiry == ExpiryPolicy::revert && !out.back().error) {
        it = vms_.erase(it);
        continue;
      }
    }
    ++it;
  }
  if (!out.empty()) persist_locked();
  return out;
}

std::vector<LeaseEvent> ShiftEngine::controller_lost() {
  {
    std::lock_guard lock(mu_);
    const TimePoint now = clock_();
    for (auto& [uuid, st] : vms_)
      if (st.lease) st.lease = std::min(*st.lease, now);
  }
  return expire_due();
}

std::vector<std::string> ShiftEngine::forget_departed() {
  std::lock_guard lock(mu_);
  std::vector<std::string> gone;
  for (auto it = vms_.begin(); it != vms_.end();) {
    auto here = mech_.resolve(it->first);
    if (here || here.error().code() != Errc::not_found) {
      ++it;
      continue;
    }
    const VmState& st = it->second;
    spdlog::info(
        "vm={} name={} no longer runs on this host ({}): its shifts (command={}) and lease are forgotten, "
        "nothing reverted",
        st.target.uuid, st.target.name, here.error().what(), st.last_command);
    gone.push_back(it->first);
    it = vms_.erase(it);
  }
  if (gone.empty()) return gone;
  std::erase_if(command_vm_,
                [&](const auto& c) { return std::find(gone.begin(), gone.end(), c.second) != gone.end(); });
  persist_locked();
  return gone;
}

std::vector<LeaseEvent> ShiftEngine::take_events() {
  std::lock_guard lock(mu_);
  return std::exchange(events_, {});
}

std::optional<TimePoint> ShiftEngine::lease_expiry(const std::string& vm_uuid) const {
  std::lock_guard lock(mu_);
  auto it = vms_.find(vm_uuid);
  return it == vms_.end() ? std::nullopt : it->second.lease;
}

std::optional<InForce> ShiftEngine::baseline(const std::string& vm_uuid) const {
  std::lock_guard lock(mu_);
  auto it = vms_.find(vm_uuid);
  if (it == vms_.end()) return std::nullopt;
  return it->second.baseline;
}

void ShiftEngine::persist_locked() {
  if (!opt_.store) return;
  std::vector<LeaseRecord> records;
  records.reserve(vms_.size());
  for (const auto& [uuid, st] : vms_) records.push_back({uuid, st.baseline, st.shifted, st.lease, st.last_command});
  if (auto saved = opt_.store->save(records); !saved) spdlog::warn("shifter: {}", saved.error().what());
}

Status ShiftEngine::load_locked() {
  MORPH_TRY_ASSIGN(std::vector<LeaseRecord> records, opt_.store->load());
  for (LeaseRecord& r : records) {
    auto target = mech_.resolve(r.vm_uuid);
    if (!target) {
      spdlog::warn("shifter: vm={} from the state file is gone: {}", r.vm_uuid, target.error().what());
      continue;
    }
    VmState st;
    st.target = *target;
    st.baseline = r.baseline;
    st.shifted = std::move(r.shifted);
    st.lease = r.lease;
    st.last_command = r.last_command;
    // Renewals may name the command rather than the VM.
    if (st.last_command != 0) command_vm_[st.last_command] = st.target.uuid;
    const std::string lease =
        st.lease ? fmt::format("lease ends in {} ms",
                               std::chrono::duration_cast<std::chrono::milliseconds>(*st.lease - clock_()).count())
                 : std::string("held");
    if (auto now = mech_.read(st.target)) {
      spdlog::info("shifter: vm={} name={} after restart (command={}, {}), in force: {}", st.target.uuid,
                   st.target.name, st.last_command, lease, describe(*now));
    } else {
      spdlog::warn("shifter: vm={} name={} after restart (command={}, {}): cannot read what is in force: {}",
                   st.target.uuid, st.target.name, st.last_command, lease, now.error().what());
    }
    vms_[st.target.uuid] = std::move(st);
  }
  return {};
}

std::vector<ShiftOutcome> ShiftEngine::in_force_report() {
  std::lock_guard lock(mu_);
  std::vector<ShiftOutcome> out;
  for (const auto& [uuid, st] : vms_) {
    ShiftOutcome o;
    o.command_id = st.last_command;
    o.vm_uuid = uuid;
    o.lease_expiry = st.lease;
    if (auto f = mech_.read(st.target)) {
      o.in_force = *f;
    } else {
      o.error = std::move(f).error().with_context("reading values in force");
    }
    out.push_back(std::move(o));
  }
  return out;
}

Result<std::vector<LeaseEvent>> ShiftEngine::reconcile() {
  {
    std::lock_guard lock(mu_);
    if (!opt_.store) return std::vector<LeaseEvent>{};
    MORPH_TRY(load_locked());
  }
  return expire_due();
}

}  // namespace morph::agent::shifter
