#include "hostagent/agent_runtime/engine_shift_handler.h"

#include <spdlog/spdlog.h>

#include <bit>

namespace morph::agent {

namespace sh = shifter;

namespace {

uint64_t to_ns(sh::TimePoint t) {
  return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
}

}  // namespace

Result<sh::ShiftRequest> to_shift_request(const msg::ShiftOrder& order, std::chrono::milliseconds default_lease) {
  sh::ShiftRequest req;
  req.command_id = order.command_id;
  req.vm = order.vm_uuid;
  req.lease = order.lease_ns
                  ? std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::nanoseconds(order.lease_ns))
                  : default_lease;
  if (req.lease.count() <= 0) req.lease = std::chrono::milliseconds(1);
  for (const msg::ResourceSetting& s : order.adjustments) {
    auto resource = from_wire(s.resource);
    if (!resource)
      return std::move(resource).error().with_context("this agent cannot shift " + wire_resource_name(s.resource));
    const Resource r = *resource;
    sh::Adjustment a{r, s.value, s.target};
    if (r == Resource::vcpu_pin) {
      MORPH_TRY_ASSIGN(uint64_t mask, sh::parse_cpu_list(s.target));
      a.value = std::popcount(mask);
    }
    req.adjustments.push_back(std::move(a));
  }
  if (req.adjustments.empty()) return Error(Errc::invalid_argument, "shift command without adjustments");
  return req;
}

std::vector<msg::ResourceSetting> in_force_settings(const sh::InForce& f, bool with_pin, bool with_tier) {
  std::vector<msg::ResourceSetting> v{
      {msg::Resource::cpu, f.cpu_millicores, {}},
      {msg::Resource::memory, int64_t(f.memory_mib), {}},
      {msg::Resource::disk_iops, int64_t(f.disk_iops), {}},
      {msg::Resource::disk_bps, int64_t(f.disk_bps), {}},
      {msg::Resource::net_out_kbps, int64_t(f.net_out_kbps), {}},
      {msg::Resource::net_in_kbps, int64_t(f.net_in_kbps), {}},
  };
  if (with_pin) v.push_back({msg::Resource::vcpu_pin, f.value(Resource::vcpu_pin), f.vcpu_pin});
  if (with_tier) v.push_back({msg::Resource::storage_tier, f.storage_tier, {}});
  return v;
}

msg::ShiftOutcome to_msg_outcome(const sh::ShiftOutcome& out, const msg::ShiftOrder& order) {
  bool pin = false, tier = false;
  for (auto& a : order.adjustments) {
    pin |= a.resource == msg::Resource::vcpu_pin;
    tier |= a.resource == msg::Resource::storage_tier;
  }
  msg::ShiftOutcome r;
  r.command_id = order.command_id;
  r.vm_uuid = out.vm_uuid.empty() ? order.vm_uuid : out.vm_uuid;
  r.in_force = in_force_settings(out.in_force, pin, tier);
  if (out.error) {
    r.error = msg::wire_code(out.error->code());
    r.error_message = out.error->what();
  }
  if (out.lease_expiry) r.lease_expires_ns = to_ns(*out.lease_expiry);
  return r;
}

msg::ShiftOutcome to_in_force_report(const sh::ShiftOutcome& out) {
  msg::ShiftOutcome r;
  r.command_id = out.command_id;
  r.vm_uuid = out.vm_uuid;
  r.restated = true;
  r.in_force = in_force_settings(out.in_force, false, false);
  if (out.lease_expiry) r.lease_expires_ns = to_ns(*out.lease_expiry);
  if (out.error) {
    r.error = msg::wire_code(out.error->code());
    r.error_message = out.error->what();
  }
  return r;
}

msg::ShiftOutcome to_revert_report(const sh::LeaseEvent& ev) {
  msg::ShiftOutcome r;
  r.command_id = ev.command_id;
  r.vm_uuid = ev.vm_uuid;
  r.reverted = true;
  r.in_force = in_force_settings(ev.in_force, false, false);
  r.lease_expires_ns = to_ns(ev.expired_at);
  if (ev.error) {
    r.error = msg::wire_code(ev.error->code());
    r.error_message = ev.error->what();
  }
  return r;
}

EngineShiftHandler::EngineShiftHandler(std::shared_ptr<sh::ShiftEngine> engine, Options options, metrics::Registry& reg)
    : engine_(std::move(engine)), opt_(options) {
  auto& shifts = reg.counter("morph_agent_shifts_total", "Shift commands handled, by result", {"result"});
  applied_ = shifts.with({"applied"});
  failed_ = shifts.with({"failed"});
  auto& leases = reg.counter("morph_agent_lease_events_total", "Leases that ran out, by what was done", {"action"});
  reverted_ = leases.with({"reverted"});
  held_ = leases.with({"held"});
  revert_failed_ = leases.with({"revert_failed"});
  renewals_ = reg.counter("morph_agent_lease_renewals_total", "Lease renewals received").with({});
  lost_ = reg.counter("morph_agent_controller_lost_total", "Times every lease ended because the controller was lost")
              .with({});
}

EngineShiftHandler::~EngineShiftHandler() {
  stop();
}

void EngineShiftHandler::start(Report report, ControllerUp controller_up) {
  report_ = std::move(report);
  controller_up_ = std::move(controller_up);
  shift_thread_ = std::thread([this] { shift_loop(); });
  lease_thread_ = std::thread([this] { lease_loop(); });
}

void EngineShiftHandler::stop() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (shift_thread_.joinable()) shift_thread_.join();
  if (lease_thread_.joinable()) lease_thread_.join();
}

void EngineShiftHandler::apply(msg::ShiftOrder order, ShiftDone done) {
  {
    std::lock_guard lk(mu_);
    if (!stop_) {
      orders_.emplace_back(std::move(order), std::move(done));
      cv_.notify_all();
      return;
    }
  }
  done(msg::ShiftOutcome::failed(order, Error(Errc::unavailable, "agent is stopping")));
}

void EngineShiftHandler::renew(const msg::LeaseRenewal& renewal) {
  std::lock_guard lk(mu_);
  renewals_q_.push_back(renewal);
}

void EngineShiftHandler::shift_loop() {
  for (;;) {
    std::pair<msg::ShiftOrder, ShiftDone> job;
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !orders_.empty(); });
      if (stop_) {
        for (auto& [o, d] : orders_) d(msg::ShiftOutcome::failed(o, Error(Errc::unavailable, "agent is stopping")));
        orders_.clear();
        return;
      }
      job = std::move(orders_.front());
      orders_.pop_front();
    }
    auto& [order, done] = job;
    auto req = to_shift_request(order, opt_.default_lease);
    if (!req) {
      failed_->inc();
      spdlog::warn("vm={} shift command {} refused: {}", order.vm_uuid, order.command_id, req.error().what());
      done(msg::ShiftOutcome::failed(order, req.error()));
      continue;
    }
    const auto t0 = std::chrono::steady_clock::now();
    sh::ShiftOutcome out = engine_->shift(*req);
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    for (auto& w : out.warnings) spdlog::warn("vm={} shift {}: {}", order.vm_uuid, order.command_id, w);
    if (out.ok()) {
      applied_->inc();
      spdlog::info("vm={} shift {} applied in {} ms: {}", order.vm_uuid, order.command_id, ms,
                   sh::describe(out.in_force));
    } else {
      failed_->inc();
      spdlog::warn("vm={} shift {} failed: {}", order.vm_uuid, order.command_id, out.error->what());
    }
    done(to_msg_outcome(out, order));
  }
}

void EngineShiftHandler::lease_loop() {
  auto last_up = std::chrono::steady_clock::now();
  bool lost_handled = false;
  bool was_up = false;
  for (;;) {
    std::deque<msg::LeaseRenewal> renewals;
    {
      std::unique_lock lk(mu_);
      cv_.wait_for(lk, opt_.expiry_period, [&] { return stop_; });
      if (stop_) return;
      renewals.swap(renewals_q_);
    }
    for (const msg::LeaseRenewal& r : renewals) {
      renewals_->inc();
      const auto lease = r.lease_ns
                             ? std::chrono::duration_cast<sh::WallClock::duration>(std::chrono::nanoseconds(r.lease_ns))
                             : std::chrono::duration_cast<sh::WallClock::duration>(opt_.default_lease);
      const sh::TimePoint expiry = sh::WallClock::now() + lease;
      Status st;
      if (!r.vm_uuid.empty()) {
        st = engine_->renew_vm(r.vm_uuid, expiry);
      } else {
        for (uint64_t id : r.command_ids)
          if (auto s = engine_->renew_command(id, expiry); !s) st = s;
      }
      if (!st) spdlog::debug("vm={} lease renewal: {}", r.vm_uuid, st.error().what());
    }
    (void)engine_->expire_due();
    const auto now = std::chrono::steady_clock::now();
    const bool up = !controller_up_ || controller_up_();
    if (up && !was_up) {
      // (Re)connected: tell the controller what is in force under each lease this agent holds, also the
      // ones a previous incarnation of the agent applied (reloaded by reconcile()).
      for (const sh::ShiftOutcome& o : engine_->in_force_report()) {
        spdlog::info("vm={} controller up; reporting what is in force under command {}: {}", o.vm_uuid, o.command_id,
                     o.error ? o.error->what() : sh::describe(o.in_force));
        if (report_) report_(to_in_force_report(o));
      }
    }
    was_up = up;
    if (up) {
      last_up = now;
      lost_handled = false;
    } else if (!lost_handled && now - last_up > opt_.default_lease) {
      lost_handled = true;
      auto events = engine_->controller_lost();
      lost_->inc();
      if (!events.empty())
        spdlog::warn("controller silent for more than the lease ({} ms): ended {} lease(s)", opt_.default_lease.count(),
                     events.size());
    }
    for (const sh::LeaseEvent& ev : engine_->take_events()) {
      if (ev.error) {
        revert_failed_->inc();
        spdlog::error("vm={} lease of command {} ran out and the {} failed: {}", ev.vm_uuid, ev.command_id,
                      sh::expiry_policy_name(ev.action), ev.error->what());
      } else {
        (ev.action == sh::ExpiryPolicy::revert ? reverted_ : held_)->inc();
        spdlog::info("vm={} lease of command {} ran out: {} ({})", ev.vm_uuid, ev.command_id,
                     sh::expiry_policy_name(ev.action), sh::describe(ev.in_force));
      }
      if (report_) report_(to_revert_report(ev));
    }
  }
}

}  // namespace morph::agent
