#include "hostagent/uplink/uplink.h"

#include <spdlog/spdlog.h>

#include <array>

#include "common/cadence.h"
#include "common/msg/wire.h"

namespace morph::agent {

namespace {
// The CPU a VM has by definition, in millicores: what the market counts as its baseline. Sources that
// do not read the definition (synthetic VMs) leave cpu_millicores at 0: a full CPU per vCPU.
int64_t baseline_cpu(const VmBaseline& b) {
  return b.cpu_millicores != 0 ? int64_t{b.cpu_millicores} : int64_t{b.vcpus} * 1000;
}
}  // namespace

using msg::sv;

Uplink::Uplink(UplinkConfig cfg, HostDescription host, std::shared_ptr<KpiSource> source,
               std::shared_ptr<ShiftHandler> shifts)
    : cfg_(std::move(cfg)),
      source_(std::move(source)),
      shifts_(shifts ? std::move(shifts) : std::make_shared<ShiftUnavailable>()),
      incarnation_(msg::now_ns()),
      ctx_(1),
      host_(std::move(host)) {}

Uplink::~Uplink() {
  stop();
}

Status Uplink::start() {
  if (!msg::valid_name(cfg_.host))
    return Error(Errc::invalid_argument, "host id '" + cfg_.host + "' must match [A-Za-z0-9._-]{1,255}");
  if (cfg_.interval_ns < msg::Limits::kMinIntervalNs || cfg_.interval_ns > msg::Limits::kMaxIntervalNs)
    return Error(Errc::invalid_argument, "KPI interval must be within [100 ms, 60 s]");
  msg::SocketOptions po;
  po.sndhwm = 100;  // while the controller is away keep at most 100 reports; seq gaps tell it what was lost
  pub_ = msg::make_socket(ctx_, zmq::socket_type::pub, po);
  msg::SocketOptions dopts;
  dopts.routing_id = cfg_.host;
  dopts.sndhwm = 100;
  dealer_ = msg::make_socket(ctx_, zmq::socket_type::dealer, dopts);
  dealer_.set(zmq::sockopt::immediate, 1);  // don't queue heartbeats for a controller that is not there
  MORPH_TRY(msg::connect_endpoint(pub_, cfg_.ingest_endpoint, cfg_.security));
  MORPH_TRY(msg::connect_endpoint(dealer_, cfg_.control_endpoint, cfg_.security));
  thread_ = std::thread([this] { run(); });
  spdlog::info("uplink: host={} → ingest {} control {}", cfg_.host, cfg_.ingest_endpoint, cfg_.control_endpoint);
  return {};
}

void Uplink::stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  wake_.notify();
  thread_.join();
}

void Uplink::set_host(HostDescription host) {
  {
    std::lock_guard lk(mu_);
    host_ = std::move(host);
    host_changed_ = true;
  }
  wake_.notify();
}

void Uplink::report_revert(msg::ShiftOutcome outcome) {
  outcome.reverted = true;
  report(std::move(outcome));
}

void Uplink::report(msg::ShiftOutcome outcome) {
  {
    std::lock_guard lk(mu_);
    reports_.push_back(std::move(outcome));
  }
  wake_.notify();
}

void Uplink::flush_reports() {
  while (!pending_reports_.empty() && stats_.controller_up) {
    if (!send_result(pending_reports_.front())) return;  // kept for the next try
    pending_reports_.pop_front();
  }
}

void Uplink::run() {
  std::vector<zmq::message_t> parts;
  uint64_t now = msg::now_ns();
  // Intervals end on wall-clock multiples of the interval, where the controller's ticks fall too
  // (common/cadence.h); the first one is at least half an interval long.
  uint64_t next_kpi = next_aligned_ns(now, cfg_.interval_ns, 0, cfg_.interval_ns / 2), next_hb = now;
  send_hello();
  for (;;) {
    now = msg::now_ns();
    uint64_t next = std::min(next_kpi, next_hb);
    long timeout_ms = now >= next ? 0 : static_cast<long>((next - now) / 1'000'000) + 1;
    std::array<zmq::pollitem_t, 2> items{{{dealer_.handle(), 0, ZMQ_POLLIN, 0}, {nullptr, wake_.fd(), ZMQ_POLLIN, 0}}};
    try {
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(timeout_ms));
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      spdlog::error("uplink: poll failed: {}", e.what());
      break;
    }
    now = msg::now_ns();
    if (items[1].revents & ZMQ_POLLIN) {
      wake_.drain();
      if (!drain_inbox()) break;
    }
    for (int i = 0; i < 64 && msg::recv_parts(dealer_, parts); ++i) on_control(parts, now);
    if (now >= next_hb) {
      send_heartbeat(now);
      // Until the controller answers, probe faster so a (re)connection converges well within 3 s.
      next_hb =
          now + (stats_.controller_up ? cfg_.heartbeat_ns : std::min<uint64_t>(cfg_.heartbeat_ns, 200'000'000ULL));
      if (stats_.controller_up && now > controller_seen_ns_ + cfg_.peer_timeout_ns) {
        stats_.controller_up = false;
        spdlog::warn("uplink: controller silent for 3 s; it is down (reconnecting)");
      }
    }
    if (now >= next_kpi) {
      publish_kpis(now);
      // The next boundary after now: one interval on, or, if we fell behind, the next one (skip, don't burst).
      next_kpi = next_aligned_ns(now, cfg_.interval_ns, 0);
    }
  }
  pub_.close();
  dealer_.close();
}

bool Uplink::drain_inbox() {
  std::deque<msg::ShiftOutcome> results, reports;
  bool resend_hello = false;
  {
    std::lock_guard lk(mu_);
    if (stop_) return false;
    results.swap(results_);
    reports.swap(reports_);
    resend_hello = std::exchange(host_changed_, false);
  }
  for (auto& r : results) {
    int answers = 1;
    if (!r.reverted) {
      if (auto it = in_flight_.find(r.command_id); it != in_flight_.end()) {
        answers = it->second;  // one answer per copy of the command received while it ran
        in_flight_.erase(it);
      }
      done_cache_[r.command_id] = r;
      while (done_cache_.size() > 1024) done_cache_.erase(done_cache_.begin());
    }
    for (int i = 0; i < answers; ++i) send_result(r);
  }
  if (resend_hello) send_hello();
  for (auto& r : reports) {
    if (pending_reports_.size() >= kMaxPendingReports) {
      spdlog::warn("uplink: {} reports wait for the controller; dropped the oldest (vm={} command {})",
                   pending_reports_.size(), pending_reports_.front().vm_uuid, pending_reports_.front().command_id);
      pending_reports_.pop_front();
    }
    pending_reports_.push_back(std::move(r));
  }
  if (!pending_reports_.empty() && !stats_.controller_up)
    spdlog::debug("uplink: {} report(s) wait until the controller is up", pending_reports_.size());
  flush_reports();
  return true;
}

void Uplink::send_hello() {
  fbb_.Clear();
  std::vector<flatbuffers::Offset<v1::ResourceAmount>> cap;
  std::vector<flatbuffers::Offset<v1::VmBaselineInfo>> vms;
  {
    std::lock_guard lk(mu_);
    for (auto& [r, a] : host_.capacity) cap.push_back(v1::CreateResourceAmount(fbb_, r, a));
    for (auto& vm : host_.vms) {
      if (!msg::valid_uuid(vm.uuid)) {
        spdlog::warn("uplink: name={} has no usable uuid (vm=); not announced", vm.name);
        continue;
      }
      std::string owner = vm.ownership.owner;
      if (!owner.empty() && !msg::valid_name(owner)) {
        spdlog::warn("vm={} name={} owner '{}' is not a valid account name; announced without owner", vm.uuid, vm.name,
                     owner);
        owner.clear();
      }
      std::vector<flatbuffers::Offset<v1::ResourceAmount>> base{
          v1::CreateResourceAmount(fbb_, msg::Resource::cpu, baseline_cpu(vm.baseline)),
          v1::CreateResourceAmount(fbb_, msg::Resource::memory, int64_t(vm.baseline.memory_kib / 1024))};
      // What the VM can use at most: every vCPU whole, memory up to the balloon ceiling.
      std::vector<flatbuffers::Offset<v1::ResourceAmount>> ceiling;
      if (vm.baseline.vcpus > 0)
        ceiling.push_back(v1::CreateResourceAmount(fbb_, msg::Resource::cpu, int64_t{vm.baseline.vcpus} * 1000));
      if (vm.baseline.max_memory_kib > 0)
        ceiling.push_back(
            v1::CreateResourceAmount(fbb_, msg::Resource::memory, int64_t(vm.baseline.max_memory_kib / 1024)));
      vms.push_back(v1::CreateVmBaselineInfoDirect(fbb_, vm.uuid.c_str(), vm.name.substr(0, 255).c_str(),
                                                   owner.empty() ? nullptr : owner.c_str(),
                                                   vm.ownership.sla_class.substr(0, 255).c_str(), vm.libvirt_id >= 0,
                                                   &base, vm.baseline.max_memory_kib / 1024, &ceiling));
    }
  }
  auto hello = v1::CreateHostHelloDirect(fbb_, cfg_.host.c_str(), incarnation_, msg::now_ns(),
                                         cfg_.agent_version.c_str(), &cap, &vms, cfg_.interval_ns);
  fbb_.Finish(hello, v1::HostHelloIdentifier());
  std::array<std::string_view, 2> p{msg::topic::kHello,
                                    {reinterpret_cast<const char*>(fbb_.GetBufferPointer()), fbb_.GetSize()}};
  if (msg::send_parts(dealer_, p)) {
    ++stats_.hellos_sent;
    spdlog::info("uplink: sent HostHello ({} VMs)", vms.size());
  }
}

void Uplink::send_heartbeat(uint64_t now) {
  fbb_.Clear();
  fbb_.Finish(v1::CreateHeartbeatDirect(fbb_, cfg_.host.c_str(), incarnation_, now, seq_), v1::HeartbeatIdentifier());
  std::array<std::string_view, 2> p{msg::topic::kHeartbeat,
                                    {reinterpret_cast<const char*>(fbb_.GetBufferPointer()), fbb_.GetSize()}};
  msg::send_parts(dealer_, p);
}

void Uplink::publish_kpis(uint64_t now) {
  auto kpis = source_->collect(cfg_.interval_ns);
  if (!kpis) {
    spdlog::trace("uplink: no KPIs this interval: {}", kpis.error().what());
    return;
  }
  fbb_.Clear();
  msg::encode_kpi_report(fbb_, {cfg_.host, ++seq_, incarnation_, cfg_.interval_ns, now}, *kpis);
  std::string topic = std::string(msg::topic::kKpiPrefix) + cfg_.host;
  std::array<std::string_view, 2> p{topic, {reinterpret_cast<const char*>(fbb_.GetBufferPointer()), fbb_.GetSize()}};
  if (msg::send_parts(pub_, p))
    ++stats_.reports_sent;
  else
    ++stats_.reports_dropped;
}

bool Uplink::send_result(const msg::ShiftOutcome& r) {
  fbb_.Clear();
  msg::encode_shift_result(fbb_, cfg_.host, r);
  std::array<std::string_view, 2> p{msg::topic::kShiftResult,
                                    {reinterpret_cast<const char*>(fbb_.GetBufferPointer()), fbb_.GetSize()}};
  spdlog::trace("uplink: ShiftResult for command {}", r.command_id);
  if (msg::send_parts(dealer_, p)) {
    ++stats_.results_sent;
    return true;
  }
  spdlog::warn("uplink: could not send ShiftResult for command {} (controller away)", r.command_id);
  return false;
}

void Uplink::on_control(std::vector<zmq::message_t>& parts, uint64_t now) {
  auto bad = [&](const std::string& why) {
    ++stats_.bad_messages;
    spdlog::warn("uplink: dropped bad control message: {}", why);
  };
  if (parts.size() != 2) return bad("expected [kind][buffer]");
  auto kind = msg::view_of(parts[0]);
  auto buf = msg::bytes_of(parts[1]);
  spdlog::trace("uplink: control message {} ({} bytes)", kind, buf.size());
  if (kind == msg::topic::kHeartbeat) {
    auto hb = msg::decode_heartbeat(buf);
    if (!hb) return bad(hb.error().what());
    ++stats_.heartbeats_received;
    controller_seen_ns_ = now;
    bool was_up = stats_.controller_up.exchange(true);
    uint64_t inc = (*hb)->incarnation();
    if (inc != controller_incarnation_) {
      if (controller_incarnation_ != 0) {
        ++stats_.controller_restarts;
        spdlog::info("uplink: controller restarted (incarnation {}); re-sending HostHello", inc);
      }
      controller_incarnation_ = inc;
      send_hello();
    } else if (!was_up) {
      spdlog::info("uplink: controller is back");
      send_hello();
    } else if ((*hb)->hello_needed()) {
      spdlog::info("uplink: controller does not know this host; re-sending HostHello");
      send_hello();
    }
    // Reports that waited for the controller go after HostHello, on the same socket, so in order.
    if (!pending_reports_.empty()) {
      spdlog::info("uplink: controller up; sending {} report(s) kept while it was away", pending_reports_.size());
      flush_reports();
    }
  } else if (kind == msg::topic::kShiftCommand) {
    auto c = msg::decode_shift_command(buf);
    if (!c) return bad(c.error().what());
    ++stats_.shifts_received;
    auto order = msg::to_shift_order(**c);
    if (order.lease_ns == 0) order.lease_ns = cfg_.default_lease_ns;
    spdlog::debug("vm={} shift command {} received: {} settings, lease {} ms", order.vm_uuid, order.command_id,
                  order.adjustments.size(), order.lease_ns / 1'000'000);
    if (auto it = done_cache_.find(order.command_id); it != done_cache_.end()) {
      send_result(it->second);
      return;
    }
    if (auto it = in_flight_.find(order.command_id); it != in_flight_.end()) {
      ++it->second;  // answered when the handler finishes
      return;
    }
    in_flight_[order.command_id] = 1;
    shifts_->apply(std::move(order), [this](msg::ShiftOutcome r) {
      {
        std::lock_guard lk(mu_);
        results_.push_back(std::move(r));
      }
      wake_.notify();
    });
  } else if (kind == msg::topic::kLeaseRenew) {
    auto l = msg::decode_lease_renew(buf);
    if (!l) return bad(l.error().what());
    shifts_->renew(msg::to_lease_renewal(**l));
  } else {
    bad("unknown message kind");
  }
}

}  // namespace morph::agent
