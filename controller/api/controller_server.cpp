#include "controller/api/controller_server.h"

#include <malloc.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <array>
#include <cstdlib>
#include <utility>

#include "common/printable.h"

namespace morph::controller {

using msg::sv;

namespace {
constexpr const char* kDomainIngest = "ingest";
constexpr const char* kDomainControl = "control";
constexpr const char* kDomainApi = "api";
constexpr const char* kDomainEvents = "events";

msg::DomainPolicy domain_policy() {
  using msg::Role;
  return {{kDomainIngest, {Role::agent}},
          {kDomainControl, {Role::agent}},
          {kDomainApi, {Role::tenant, Role::admin}},
          {kDomainEvents, {Role::tenant, Role::admin, Role::agent}}};
}

std::shared_ptr<MarketApi> or_unavailable(std::shared_ptr<MarketApi> m) {
  return m ? std::move(m) : std::make_shared<MarketUnavailable>();
}

bool any_tcp(const ControllerEndpoints& e) {
  return msg::is_tcp(e.ingest) || msg::is_tcp(e.control) || msg::is_tcp(e.api) || msg::is_tcp(e.events);
}
}  // namespace

ControllerServer::ControllerServer(ControllerConfig cfg, std::shared_ptr<MarketApi> market)
    : cfg_(std::move(cfg)),
      market_(or_unavailable(std::move(market))),
      ctx_(1),
      api_service_(hosts_, *market_),
      incarnation_(msg::now_ns()),
      subs_(cfg_.subscription_limits) {}

ControllerServer::~ControllerServer() {
  stop();
  if (zap_) zap_->stop();
}

Status ControllerServer::start() {
  if (cfg_.server_key && !cfg_.allow) return Error(Errc::invalid_argument, "CURVE keys given without an allow-list");
  if (!cfg_.server_key && any_tcp(cfg_.endpoints) && !cfg_.allow_plaintext_tcp)
    return Error(Errc::permission_denied, "tcp endpoints need the controller's CURVE key (--key) and an allow-list");
  if (cfg_.server_key) {
    // The ZAP handler must be up before any CURVE socket binds, or early clients would be let in unchecked.
    zap_ = std::make_unique<msg::ZapHandler>(ctx_, cfg_.allow, domain_policy());
    MORPH_TRY(zap_->start());
  }
  auto sec = [&](const char* domain) { return msg::ServerSecurity{cfg_.server_key, domain, cfg_.allow_plaintext_tcp}; };
  msg::SocketOptions opts;
  opts.rcvhwm = 100000;  // ingest bursts from many hosts
  ingest_ = msg::make_socket(ctx_, zmq::socket_type::xsub, opts);
  control_ = msg::make_socket(ctx_, zmq::socket_type::router);
  control_.set(zmq::sockopt::router_mandatory, 1);
  control_.set(zmq::sockopt::router_handover, 1);  // a restarted agent takes over its routing id
  api_ = msg::make_socket(ctx_, zmq::socket_type::router);
  msg::SocketOptions ev;
  ev.sndhwm = 100000;
  // Inbound on events is only (un)subscriptions and handshakes: a frame over 1 KiB (a 7.9 MiB subscription
  // grew libzmq's trie by 270 MB) makes libzmq drop the connection before it allocates anything, and few
  // are queued per connection before the controller has seen them.
  ev.max_msg_bytes = 1024;
  ev.rcvhwm = 64;
  events_ = msg::make_socket(ctx_, zmq::socket_type::xpub, ev);
  events_.set(zmq::sockopt::xpub_manual, 1);  // the controller decides what is subscribed (on_events)
  MORPH_TRY_ASSIGN(events_monitor_,
                   msg::SocketMonitor::start(ctx_, events_, ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED));
  auto& ep = cfg_.endpoints;
  MORPH_TRY(msg::bind_endpoint(ingest_, ep.ingest, sec(kDomainIngest)));
  MORPH_TRY(msg::bind_endpoint(control_, ep.control, sec(kDomainControl)));
  MORPH_TRY(msg::bind_endpoint(api_, ep.api, sec(kDomainApi)));
  MORPH_TRY(msg::bind_endpoint(events_, ep.events, sec(kDomainEvents)));
  bound_ = {msg::last_endpoint(ingest_), msg::last_endpoint(control_), msg::last_endpoint(api_),
            msg::last_endpoint(events_)};
  // XSUB: subscribe upstream to every KpiReport topic; remembered for publishers that connect later.
  std::string sub = "\x01" + std::string(msg::topic::kKpiPrefix);
  ingest_.send(zmq::buffer(sub), zmq::send_flags::none);
  running_ = true;
  thread_ = std::thread([this] { run(); });
  spdlog::info("controller: ingest {} control {} api {} events {} (CURVE {})", bound_.ingest, bound_.control,
               bound_.api, bound_.events, cfg_.server_key ? "on" : "off");
  return {};
}

void ControllerServer::stop() {
  if (thread_.joinable()) {
    post(StopItem{});
    thread_.join();
  }
}

Status ControllerServer::wait() {
  std::unique_lock lk(done_mu_);
  done_cv_.wait(lk, [&] { return done_; });
  if (exit_error_) return *exit_error_;
  return {};
}

bool ControllerServer::wait_for(std::chrono::milliseconds timeout) {
  std::unique_lock lk(done_mu_);
  return done_cv_.wait_for(lk, timeout, [&] { return done_; });
}

void ControllerServer::post(OutboxItem item) {
  {
    std::lock_guard lk(outbox_mu_);
    outbox_.push_back(std::move(item));
  }
  wake_.notify();
}

void ControllerServer::publish_event(std::string topic, v1::MarketEventBody type, EventBodyBuilder build) {
  post(EventItem{std::move(topic), type, std::move(build)});
}
void ControllerServer::send_shift(std::string host, msg::ShiftOrder order) {
  post(ShiftItem{std::move(host), std::move(order)});
}
void ControllerServer::renew_lease(std::string host, msg::LeaseRenewal r) {
  post(LeaseItem{std::move(host), std::move(r)});
}

void ControllerServer::run() {
  std::vector<zmq::message_t> parts;
  uint64_t next_tick = msg::now_ns() + cfg_.tick_ns;
  for (;;) {
    // The monitor is polled too: libzmq's I/O thread blocks when its queue is full.
    std::array<zmq::pollitem_t, 7> items{{{ingest_.handle(), 0, ZMQ_POLLIN, 0},
                                          {control_.handle(), 0, ZMQ_POLLIN, 0},
                                          {api_.handle(), 0, ZMQ_POLLIN, 0},
                                          {events_.handle(), 0, ZMQ_POLLIN, 0},
                                          {nullptr, wake_.fd(), ZMQ_POLLIN, 0},
                                          {events_monitor_.handle(), 0, ZMQ_POLLIN, 0},
                                          {nullptr, zap_ ? zap_->death_fd() : -1, ZMQ_POLLIN, 0}}};
    size_t n = zap_ ? 7 : 6;
    uint64_t now = msg::now_ns();
    long timeout_ms = now >= next_tick ? 0 : static_cast<long>((next_tick - now) / 1'000'000) + 1;
    try {
      zmq::poll(items.data(), n, std::chrono::milliseconds(timeout_ms));
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      exit_error_ = Error(Errc::io, std::string("messaging loop poll: ") + e.what(), e.num());
      break;
    }
    if (zap_ && zap_->dead()) {
      spdlog::error("controller: the ZAP handler died; stopping rather than serving unauthenticated peers");
      exit_error_ = Error(Errc::unavailable, "ZAP handler died; refusing to serve without authentication");
      break;
    }
    if (items[4].revents & ZMQ_POLLIN) {
      wake_.drain();
      if (!drain_outbox()) break;
    }
    try {
      for (int i = 0; i < 512 && msg::recv_parts(ingest_, parts, &peer_); ++i) on_ingest(parts);
      for (int i = 0; i < 128 && msg::recv_parts(control_, parts, &peer_); ++i) on_control(parts);
      for (int i = 0; i < 64 && msg::recv_parts(api_, parts, &peer_); ++i) on_api(parts);
      on_events();
    } catch (const zmq::error_t& e) {
      spdlog::warn("controller: socket error while serving: {}", e.what());
    }
    now = msg::now_ns();
    if (now >= next_tick) {
      tick(now);
      next_tick = now + cfg_.tick_ns;
    }
  }
  // Close the sockets on their owner thread.
  ingest_.close();
  control_.close();
  api_.close();
  events_.close();
  events_monitor_ = {};
  running_ = false;
  {
    std::lock_guard lk(done_mu_);
    done_ = true;
  }
  done_cv_.notify_all();
}

bool ControllerServer::drain_outbox() {
  std::deque<OutboxItem> items;
  {
    std::lock_guard lk(outbox_mu_);
    items.swap(outbox_);
  }
  for (auto& it : items) {
    if (std::holds_alternative<StopItem>(it)) return false;
    if (auto* e = std::get_if<EventItem>(&it)) {
      emit(e->topic, e->type, e->build);
    } else if (auto* s = std::get_if<ShiftItem>(&it)) {
      auto* h = hosts_.find(s->host);
      if (h == nullptr || !h->up) {
        market_->on_shift_result(
            s->host,
            msg::ShiftOutcome::failed(s->order, Error(Errc::unavailable, "host " + s->host + " is down or unknown")));
        continue;
      }
      fbb_.Clear();
      msg::encode_shift_command(fbb_, s->order);
      send_control(h->routing_id, msg::topic::kShiftCommand, fbb_);
      auto order = s->order;
      emit("shift." + s->host, v1::MarketEventBody::ShiftEvent, [&](flatbuffers::FlatBufferBuilder& b) {
        std::vector<flatbuffers::Offset<v1::Adjustment>> adj;
        for (auto& a : order.adjustments)
          adj.push_back(v1::CreateAdjustment(b, a.resource, a.value, b.CreateString(a.target)));
        return v1::CreateShiftEventDirect(b, s->host.c_str(), order.command_id, order.vm_uuid.c_str(), &adj, 0, "sent")
            .Union();
      });
    } else if (auto* l = std::get_if<LeaseItem>(&it)) {
      if (auto* h = hosts_.find(l->host); h && h->up) {
        fbb_.Clear();
        msg::encode_lease_renew(fbb_, l->renewal);
        send_control(h->routing_id, msg::topic::kLeaseRenew, fbb_);
      }
    }
  }
  return true;
}

void ControllerServer::send_control(const std::string& rid, std::string_view topic,
                                    const flatbuffers::FlatBufferBuilder& fbb) {
  std::array<std::string_view, 3> p{rid, topic, {reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize()}};
  if (!msg::send_parts(control_, p))
    spdlog::debug("controller: could not send {} to {}", topic, printable(rid));
  else
    spdlog::trace("controller: sent {} to {}", topic, printable(rid));
}

void ControllerServer::bad(const std::string& peer, const std::string& host, const Error& e) {
  ++stats_.bad_messages;
  bad_counters_.record(peer, e.what(), msg::now_ns());
  if (!host.empty()) hosts_.count_bad(host);
}

Caller ControllerServer::caller_of(const std::string& uid) const {
  Caller c;
  if (uid.empty() && !msg::is_ipc(bound_.api)) {
    c.role = msg::Role::tenant;  // no identity on a network endpoint: may act on nothing
    c.name = "anonymous";
    return c;
  }
  if (uid.empty()) {
    c.role = msg::Role::admin;
    c.name = "local";
    c.local = true;
    return c;
  }
  if (auto p = msg::parse_user_id(uid)) {
    c.role = p->first;
    c.name = p->second;
    if (cfg_.allow)
      if (auto* pr = cfg_.allow->find(c.role, c.name)) c.account = pr->account;
    c.sees_all = c.role == msg::Role::tenant && !cfg_.reads_all.empty() && c.name == cfg_.reads_all;
  }
  return c;
}

void ControllerServer::emit(const std::string& topic, v1::MarketEventBody type, const EventBodyBuilder& build) {
  auto& b = event_fbb_;
  b.Clear();
  auto body = build(b);
  auto ev = v1::CreateMarketEvent(b, ++events_seq_, incarnation_, msg::now_ns(), type, body);
  b.Finish(ev, v1::MarketEventIdentifier());
  std::array<std::string_view, 2> p{topic, {reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize()}};
  if (msg::send_parts(events_, p)) ++stats_.events_published;
}

bool ControllerServer::curve_on(const std::string& endpoint) const {
  return cfg_.server_key.has_value() && msg::is_tcp(endpoint);
}

bool ControllerServer::wanted(const std::string& topic) const {
  return subs_.wanted(topic);
}

void ControllerServer::drain_events_monitor() {
  while (auto e = events_monitor_.next()) {
    if (e->event == ZMQ_EVENT_ACCEPTED)
      subs_.accepted(e->value);
    else if (e->event == ZMQ_EVENT_DISCONNECTED) {
      subs_.disconnected(e->value);
      trim_after_drop_ = true;  // libzmq has just freed what the connection held
    }
  }
  stats_.subscriptions = subs_.subscriptions();
}

void ControllerServer::on_events() {
  for (int i = 0; i < 256; ++i) {
    // Before each message, so a connection's end is known before a later one on the same fd is read
    // (subscriptions.cpp).
    drain_events_monitor();
    zmq::message_t m;
    if (!events_.recv(m, zmq::recv_flags::dontwait)) return;
    auto s = msg::view_of(m);
    if (s.empty() || (s[0] != 0 && s[0] != 1)) continue;
    // Without metadata it is libzmq's own unsubscribe for a connection that ended: the monitor said so.
    const char* fd_text = zmq_msg_gets(m.handle(), "__fd");
    if (fd_text == nullptr) continue;
    SubscriptionPeer peer{std::atoi(fd_text), fd_text, msg::principal_of(m), nullptr};
    const std::string_view prefix = s.substr(1);
    if (s[0] == 0) {
      if (subs_.unsubscribe(peer, prefix)) events_.set(zmq::sockopt::unsubscribe, prefix);
      continue;
    }
    auto keep = std::make_shared<zmq::message_t>();
    keep->copy(m);  // holds the connection's metadata, whose address is its tag
    peer.keep = std::move(keep);
    const auto verdict = subs_.subscribe(peer, prefix);
    if (verdict == SubscriptionTable::Verdict::accepted) {
      events_.set(zmq::sockopt::subscribe, prefix);  // on the connection this message came from (manual mode)
    } else if (verdict != SubscriptionTable::Verdict::duplicate &&
               verdict != SubscriptionTable::Verdict::dropped_already) {
      bad(peer.principal, "", Error(Errc::permission_denied, subs_.describe(verdict, prefix)));
      // Ending the connection frees what libzmq holds for it; its engine sees end of input and closes.
      // (morph-controller ignores SIGPIPE, so a write the engine still attempts costs only an EPIPE.)
      ::shutdown(peer.fd, SHUT_RDWR);
      ++stats_.subscribers_dropped;
      trim_after_drop_ = true;
    }
  }
}

void ControllerServer::host_changed(const std::string& host, bool up) {
  spdlog::info("host={} is {}", host, up ? "up" : "down (silent for 3 s)");
  stats_.hosts_up += up ? 1 : -1;
  market_->on_host_change(host, up);
  if (auto* h = hosts_.find(host))
    emit("host." + host, v1::MarketEventBody::HostChange,
         [&](flatbuffers::FlatBufferBuilder& b) { return v1::CreateHostChange(b, build_host_status(b, *h)).Union(); });
}

void ControllerServer::on_ingest(std::vector<zmq::message_t>& parts) {
  std::string peer = peer_.user_id.empty() ? peer_.address : peer_.user_id;
  if (parts.size() != 2)
    return bad(
        peer, "",
        Error(Errc::protocol, "ingest: expected [topic][KpiReport], got " + std::to_string(parts.size()) + " frames"));
  auto r = msg::decode_kpi_report_lenient(msg::bytes_of(parts[1]));  // header faults reject the whole report
  if (!r) return bad(peer, "", r.error());
  std::string_view host = sv(r->report->host());
  auto topic = msg::view_of(parts[0]);
  if (topic.size() != msg::topic::kKpiPrefix.size() + host.size() || !topic.starts_with(msg::topic::kKpiPrefix) ||
      !topic.ends_with(host))
    return bad(peer, std::string(host), Error(Errc::protocol, "ingest: topic does not match the report's host"));
  if (auto uid = peer_.user_id; !uid.empty() || curve_on(bound_.ingest)) {
    auto p = msg::parse_user_id(uid);
    if (!p || p->first != msg::Role::agent || p->second != host)
      return bad(peer, std::string(host),
                 Error(Errc::permission_denied, "ingest: " + uid + " may not report for host " + std::string(host)));
  }
  HostTable::Change change;
  std::string host_s(host);
  zmq::message_t body = std::move(parts[1]);
  // Re-rooted in the moved message (a small message's bytes move with it); verified above.
  const v1::KpiReport* report = flatbuffers::GetRoot<v1::KpiReport>(body.data());
  if (!r->dropped.empty()) {
    // One bad VM entry must not lose the other VMs' KPIs: count and log each (per peer, rate-limited), and
    // hand every consumer below a copy of the report holding only the good VMs. The good path copies nothing.
    for (const auto& d : r->dropped)
      bad(peer, host_s, Error(Errc::protocol, "ingest: VM entry left out, the rest of the report kept: " + d.reason));
    flatbuffers::FlatBufferBuilder fbb(body.size());
    msg::rebuild_kpi_report(fbb, *report, r->dropped);
    body.rebuild(fbb.GetBufferPointer(), fbb.GetSize());
    report = flatbuffers::GetRoot<v1::KpiReport>(body.data());
  }
  uint64_t received = msg::now_ns();
  uint64_t missing = hosts_.apply_kpi_report(*report, std::move(body), received, change);
  ++stats_.kpi_reports;
  // The buffer moved into the HostTable (small messages live inside zmq's message struct, so re-root).
  const auto& stored = hosts_.find(host_s)->latest_report;
  if (!cfg_.kpi_observers.empty()) {
    const auto* kept = flatbuffers::GetRoot<v1::KpiReport>(stored.data());
    for (const auto& o : cfg_.kpi_observers) o->on_kpi_report(*kept, received);
  }
  if (missing) {
    stats_.kpi_gaps += missing;
    spdlog::debug("host={} KpiReport gap: {} missing", host_s, missing);
  }
  if (change == HostTable::Change::came_up) host_changed(host_s, true);
  if (cfg_.republish_kpis && wanted("kpi." + host_s)) {
    emit("kpi." + host_s, v1::MarketEventBody::KpiUpdate, [&](flatbuffers::FlatBufferBuilder& b) {
      b.ForceVectorAlignment(stored.size(), sizeof(uint8_t), 8);  // a nested root needs 8-byte alignment
      auto v = b.CreateVector(static_cast<const uint8_t*>(stored.data()), stored.size());
      return v1::CreateKpiUpdate(b, v).Union();
    });
  }
}

void ControllerServer::on_control(std::vector<zmq::message_t>& parts) {
  if (parts.size() < 1) return;
  std::string rid(msg::view_of(parts[0]));
  std::string uid = peer_.user_id;
  std::string peer = uid.empty() ? "control:" + rid : uid;
  if (parts.size() != 3) return bad(peer, "", Error(Errc::protocol, "control: expected [kind][buffer]"));
  auto kind = msg::view_of(parts[1]);
  auto buf = msg::bytes_of(parts[2]);
  auto check_identity = [&](std::string_view host) -> bool {
    if (uid.empty() && !curve_on(bound_.control)) return true;
    auto p = msg::parse_user_id(uid);
    return p && p->first == msg::Role::agent && p->second == host;
  };
  uint64_t now = msg::now_ns();
  auto reply_heartbeat = [&](bool hello_needed) {
    fbb_.Clear();
    fbb_.Finish(v1::CreateHeartbeatDirect(fbb_, "controller", incarnation_, now, events_seq_, hello_needed),
                v1::HeartbeatIdentifier());
    send_control(rid, msg::topic::kHeartbeat, fbb_);
  };
  if (kind == msg::topic::kHeartbeat) {
    auto hb = msg::decode_heartbeat(buf);
    if (!hb) return bad(peer, "", hb.error());
    std::string host(sv((*hb)->sender()));
    if (!check_identity(host))
      return bad(peer, host, Error(Errc::permission_denied, "heartbeat: " + uid + " is not host " + host));
    ++stats_.heartbeats;
    HostTable::Change change;
    bool known = hosts_.apply_heartbeat(host, rid, now, change);
    if (change == HostTable::Change::came_up) host_changed(host, true);
    reply_heartbeat(!known);
  } else if (kind == msg::topic::kHello) {
    auto h = msg::decode_host_hello(buf);
    if (!h) return bad(peer, "", h.error());
    std::string host(sv((*h)->host()));
    if (!check_identity(host))
      return bad(peer, host, Error(Errc::permission_denied, "hello: " + uid + " is not host " + host));
    ++stats_.hellos;
    auto change = hosts_.apply_hello(**h, buf, rid, now);
    market_->on_host_hello(**h);
    spdlog::info("host={} hello: {} VMs, incarnation {}", host, (*h)->vms() ? (*h)->vms()->size() : 0,
                 (*h)->incarnation());
    if (change == HostTable::Change::came_up) host_changed(host, true);
    reply_heartbeat(false);
  } else if (kind == msg::topic::kShiftResult) {
    auto r = msg::decode_shift_result(buf);
    if (!r) return bad(peer, "", r.error());
    std::string host(sv((*r)->host()));
    if (!check_identity(host))
      return bad(peer, host, Error(Errc::permission_denied, "shift result: " + uid + " is not host " + host));
    ++stats_.shift_results;
    auto outcome = msg::to_shift_outcome(**r);
    market_->on_shift_result(host, outcome);
    emit("shift." + host, v1::MarketEventBody::ShiftEvent, [&](flatbuffers::FlatBufferBuilder& b) {
      std::vector<flatbuffers::Offset<v1::Adjustment>> adj;
      for (auto& a : outcome.in_force)
        adj.push_back(v1::CreateAdjustment(b, a.resource, a.value, b.CreateString(a.target)));
      flatbuffers::Offset<v1::Error> err;
      if (outcome.error != v1::ErrorCode::ok)
        err = v1::CreateErrorDirect(b, outcome.error, outcome.error_message.c_str());
      return v1::CreateShiftEventDirect(b, host.c_str(), outcome.command_id, outcome.vm_uuid.c_str(), &adj, err,
                                        outcome.phase())
          .Union();
    });
  } else {
    bad(peer, "", Error(Errc::protocol, "control: unknown message kind"));
  }
}

void ControllerServer::on_api(std::vector<zmq::message_t>& parts) {
  // [rid][""][api.req][ApiRequest] from REQ and well-behaved DEALERs; [rid][api.req][ApiRequest] tolerated.
  if (parts.size() < 2) return;
  std::string rid(msg::view_of(parts[0]));
  bool delimited = parts.size() == 4 && parts[1].size() == 0;
  size_t t = delimited ? 2 : 1;
  std::string uid = peer_.user_id;
  std::string peer = uid.empty() ? "api:" + peer_.address : uid;
  auto reply = [&](const flatbuffers::FlatBufferBuilder& b) {
    std::string_view body{reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize()};
    if (delimited) {
      std::array<std::string_view, 4> p{rid, "", msg::topic::kApiReply, body};
      msg::send_parts(api_, p);
    } else {
      std::array<std::string_view, 3> p{rid, msg::topic::kApiReply, body};
      msg::send_parts(api_, p);
    }
  };
  if (parts.size() != t + 2 || msg::view_of(parts[t]) != msg::topic::kApiRequest) {
    bad(peer, "", Error(Errc::protocol, "api: expected [\"\"][api.req][ApiRequest]"));
    fbb_.Clear();
    ApiService::error_reply(fbb_, 0, Error(Errc::protocol, "expected frames [\"\"][api.req][ApiRequest]"));
    return reply(fbb_);
  }
  auto req = msg::decode_api_request(msg::bytes_of(parts[t + 1]));
  fbb_.Clear();
  if (!req) {
    bad(peer, "", req.error());
    ApiService::error_reply(fbb_, 0, req.error());
    return reply(fbb_);
  }
  ++stats_.api_requests;
  api_service_.handle(caller_of(uid), **req, events_seq_, incarnation_, fbb_);
  reply(fbb_);
}

void ControllerServer::tick(uint64_t now) {
  for (auto& h : hosts_.expire(now, cfg_.peer_timeout_ns)) host_changed(h, false);
  // What libzmq held for a subscriber that left or was dropped (its queued subscriptions, its trie) is freed
  // in many small chunks that glibc keeps; give the pages back, at most once a tick and only after one left.
  if (std::exchange(trim_after_drop_, false)) ::malloc_trim(0);
}

}  // namespace morph::controller
