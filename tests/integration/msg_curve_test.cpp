// Agent ↔ controller over loopback tcp with CURVE, in one process but through real sockets: the happy
// path (hello, KPIs ingested, re-published, queried, shifts round-tripped), every refusal the security
// model promises, ZAP handler death, malformed input dropped and counted while serving, and a report with
// bad VM entries keeping its good VMs.
#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <array>
#include <map>
#include <mutex>
#include <optional>

#include "common/msg/api_client.h"
#include "common/msg/wire.h"
#include "controller/api/controller_server.h"
#include "hostagent/uplink/uplink.h"
#include "tests/integration/msg_support.h"

namespace morph {
namespace {

using namespace std::chrono_literals;
using controller::ControllerServer;
using test::wait_until;

class RecordingMarket final : public controller::MarketApi {
 public:
  Result<controller::ReplyBody> handle(const controller::Caller& c, const v1::ApiRequest&,
                                       flatbuffers::FlatBufferBuilder&) override {
    std::lock_guard lk(mu);
    last_caller = c;
    return Error(Errc::unavailable, "no market in this test");
  }
  void on_shift_result(const std::string& host, const msg::ShiftOutcome& r) override {
    std::lock_guard lk(mu);
    results.emplace_back(host, r);
  }
  std::mutex mu;
  controller::Caller last_caller;
  std::vector<std::pair<std::string, msg::ShiftOutcome>> results;
};

class EchoShifter final : public agent::ShiftHandler {
 public:
  void apply(msg::ShiftOrder o, agent::ShiftDone done) override {
    ++applied;
    msg::ShiftOutcome r;
    r.command_id = o.command_id;
    r.vm_uuid = o.vm_uuid;
    r.in_force = o.adjustments;
    r.lease_expires_ns = msg::now_ns() + o.lease_ns;
    done(r);
  }
  std::atomic<int> applied{0};
};

// What the controller hands its KPI consumers (the market's rescue observer in production).
class RecordingKpiObserver final : public controller::KpiObserver {
 public:
  void on_kpi_report(const v1::KpiReport& r, uint64_t) override {
    std::lock_guard lk(mu);
    auto& vms = by_seq[r.seq()];
    if (r.vms())
      for (auto* k : *r.vms()) vms.push_back(msg::to_vm_kpis(*k));
  }
  std::optional<std::vector<kpi::VmKpis>> report(uint64_t seq) {
    std::lock_guard lk(mu);
    auto it = by_seq.find(seq);
    return it == by_seq.end() ? std::nullopt : std::optional(it->second);
  }
  std::mutex mu;
  std::map<uint64_t, std::vector<kpi::VmKpis>> by_seq;
};

const char* kUuid = "11111111-2222-4333-8444-555555555555";

kpi::VmKpis kpis(uint64_t cpu) {
  kpi::VmKpis k;
  k.uuid = kUuid;
  k.name = "vm1";
  k.interval_ns = 100'000'000;
  k.cpu_run_ns = cpu;
  k.runq_lat_us[2] = 5;
  return k;
}

class MsgCurve : public ::testing::Test {
 protected:
  void SetUp() override {
    controller::ControllerConfig cfg;
    cfg.endpoints = {"tcp://127.0.0.1:0", "tcp://127.0.0.1:0", "tcp://127.0.0.1:0", "tcp://127.0.0.1:0"};
    cfg.server_key = keys.controller;
    cfg.allow = keys.allow;
    cfg.kpi_observers = {observer};
    server = std::make_unique<ControllerServer>(cfg, market);
    ASSERT_TRUE(server->start());
  }
  void TearDown() override {
    for (auto& a : agents) a->stop();
    server->stop();
  }

  agent::Uplink& start_agent(const std::string& host, const msg::ClientSecurity& sec,
                             std::shared_ptr<agent::KpiSource> src = nullptr,
                             std::shared_ptr<agent::ShiftHandler> sh = nullptr) {
    agent::UplinkConfig c;
    c.host = host;
    c.ingest_endpoint = server->endpoints().ingest;
    c.control_endpoint = server->endpoints().control;
    c.security = sec;
    c.interval_ns = 100'000'000;
    agent::HostDescription d;
    d.capacity = {{msg::Resource::cpu, 8000}};
    agent::VmInfo vm;
    vm.uuid = kUuid;
    vm.name = "vm1";
    vm.ownership.owner = "acct-1";
    vm.baseline = {2, 1 << 20, 2 << 20};
    d.vms = {vm};
    agents.push_back(std::make_unique<agent::Uplink>(c, d, src ? src : std::make_shared<agent::QueuedKpiSource>(), sh));
    EXPECT_TRUE(agents.back()->start());
    return *agents.back();
  }

  // One api call as the admin; returns the verified reply buffer.
  zmq::message_t api(v1::ApiRequestBody type,
                     std::function<flatbuffers::Offset<void>(flatbuffers::FlatBufferBuilder&)> b,
                     const msg::KeyPair* as = nullptr) {
    msg::ApiClient c(ctx, server->endpoints().api, keys.as(as ? *as : keys.admin));
    EXPECT_TRUE(c.connect());
    auto r = c.call(type, b, 3000ms);
    EXPECT_TRUE(r) << r.error().describe();
    return r ? std::move(r).value() : zmq::message_t();
  }

  const v1::HostStatus* host_status(zmq::message_t& m, const std::string& host) {
    auto r = msg::decode_api_reply(msg::bytes_of(m));
    if (!r || (*r)->body_type() != v1::ApiReplyBody::HostsReply) return nullptr;
    for (auto* h : *(*r)->body_as_HostsReply()->hosts())
      if (msg::sv(h->host()) == host) return h;
    return nullptr;
  }

  bool host_up(const std::string& host) {
    auto m = api(v1::ApiRequestBody::HostsQuery, [](auto& f) { return v1::CreateHostsQuery(f).Union(); });
    auto* h = host_status(m, host);
    return h && h->up();
  }

  test::KeySet keys;
  std::shared_ptr<RecordingMarket> market = std::make_shared<RecordingMarket>();
  std::shared_ptr<RecordingKpiObserver> observer = std::make_shared<RecordingKpiObserver>();
  std::unique_ptr<ControllerServer> server;
  std::vector<std::unique_ptr<agent::Uplink>> agents;
  zmq::context_t ctx{1};
};

TEST_F(MsgCurve, AgentIsIngestedQueriedAndRepublished) {
  // A tenant subscribes to the events stream first.
  auto sub = msg::make_socket(ctx, zmq::socket_type::sub);
  sub.set(zmq::sockopt::subscribe, "kpi.host-a");
  ASSERT_TRUE(msg::connect_endpoint(sub, server->endpoints().events, keys.as(keys.tenant)));

  auto src = std::make_shared<agent::QueuedKpiSource>();
  auto& up = start_agent("host-a", keys.as(keys.host_a), src);
  ASSERT_TRUE(wait_until([&] { return server->stats().hellos >= 1 && up.stats().controller_up; }, 5s));
  // Keep feeding until reports flow (PUB/SUB drops what is sent before the subscription arrives).
  uint64_t cpu = 1000;
  ASSERT_TRUE(wait_until(
      [&] {
        src->push({kpis(++cpu)});
        return server->stats().kpi_reports >= 3;
      },
      5s));

  std::vector<zmq::message_t> parts;
  ASSERT_TRUE(wait_until([&] { return msg::recv_parts(sub, parts); }, 5s));
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(msg::view_of(parts[0]), "kpi.host-a");
  auto ev = msg::decode_market_event(msg::bytes_of(parts[1]));
  ASSERT_TRUE(ev) << ev.error().describe();
  ASSERT_EQ((*ev)->body_type(), v1::MarketEventBody::KpiUpdate);
  EXPECT_EQ((*ev)->incarnation(), server->incarnation());
  auto* nested = (*ev)->body_as_KpiUpdate()->report_nested_root();
  EXPECT_EQ(msg::sv(nested->host()), "host-a");
  EXPECT_GT(nested->vms()->Get(0)->cpu_run_ns(), 1000u);

  auto hosts = api(v1::ApiRequestBody::HostsQuery, [](auto& f) { return v1::CreateHostsQuery(f).Union(); });
  auto* h = host_status(hosts, "host-a");
  ASSERT_NE(h, nullptr);
  EXPECT_TRUE(h->up());
  EXPECT_EQ(h->vm_count(), 1u);
  EXPECT_EQ(h->incarnation(), up.incarnation());
  EXPECT_EQ(h->capacity()->Get(0)->amount(), 8000);

  auto k = api(v1::ApiRequestBody::KpisQuery, [](auto& f) { return v1::CreateKpisQueryDirect(f, "host-a").Union(); });
  auto kr = msg::decode_api_reply(msg::bytes_of(k));
  ASSERT_TRUE(kr);
  auto* reports = (*kr)->body_as_KpisReply()->reports();
  ASSERT_EQ(reports->size(), 1u);
  EXPECT_EQ(msg::sv(reports->Get(0)->vms()->Get(0)->uuid()), kUuid);
  EXPECT_EQ(reports->Get(0)->vms()->Get(0)->runq_lat_us()->Get(2), 5u);

  auto snap = api(v1::ApiRequestBody::SnapshotRequest, [](auto& f) { return v1::CreateSnapshotRequest(f).Union(); });
  auto sr = msg::decode_api_reply(msg::bytes_of(snap));
  ASSERT_TRUE(sr);
  auto* s = (*sr)->body_as_SnapshotReply();
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->controller_incarnation(), server->incarnation());
  EXPECT_GE(s->events_seq(), 1u);
  ASSERT_EQ(s->vms()->size(), 1u);
  EXPECT_EQ(msg::sv(s->vms()->Get(0)->vm()->owner()), "acct-1");

  // Market requests reach the seam with the caller's identity and come back as "unavailable".
  auto bid = api(
      v1::ApiRequestBody::BidList, [](auto& f) { return v1::CreateBidListDirect(f, "acct-1").Union(); }, &keys.tenant);
  auto br = msg::decode_api_reply(msg::bytes_of(bid));
  ASSERT_TRUE(br);
  EXPECT_EQ((*br)->error()->code(), v1::ErrorCode::unavailable);
  std::lock_guard lk(market->mu);
  EXPECT_EQ(market->last_caller.role, msg::Role::tenant);
  EXPECT_EQ(market->last_caller.account, "acct-1");
}

TEST_F(MsgCurve, ShiftCommandIsAppliedOnceAndAnswered) {
  auto shifter = std::make_shared<EchoShifter>();
  auto& up = start_agent("host-a", keys.as(keys.host_a), nullptr, shifter);
  ASSERT_TRUE(wait_until([&] { return host_up("host-a"); }, 5s));
  msg::ShiftOrder o{
      77, kUuid, {{msg::Resource::cpu, 2500, ""}, {msg::Resource::disk_iops, 800, ""}}, 5'000'000'000ULL, 0};
  server->send_shift("host-a", o);
  server->send_shift("host-a", o);  // a duplicate is answered from the agent's cache
  ASSERT_TRUE(wait_until(
      [&] {
        std::lock_guard lk(market->mu);
        return market->results.size() >= 2;
      },
      5s));
  EXPECT_EQ(shifter->applied.load(), 1);
  EXPECT_EQ(up.stats().shifts_received.load(), 2u);
  {
    std::lock_guard lk(market->mu);
    EXPECT_EQ(market->results[0].first, "host-a");
    EXPECT_EQ(market->results[0].second.command_id, 77u);
    EXPECT_EQ(market->results[0].second.error, v1::ErrorCode::ok);
    EXPECT_EQ(market->results[0].second.in_force, o.adjustments);
    EXPECT_EQ(market->results[1].second.in_force, o.adjustments);
  }
  // A shift for an unknown host fails back to the market, not into the void.
  server->send_shift("host-zz", o);
  ASSERT_TRUE(wait_until(
      [&] {
        std::lock_guard lk(market->mu);
        return market->results.size() >= 3;
      },
      3s));
  std::lock_guard lk(market->mu);
  EXPECT_EQ(market->results[2].first, "host-zz");
  EXPECT_EQ(market->results[2].second.error, v1::ErrorCode::unavailable);
}

TEST_F(MsgCurve, RefusesStrangerPlaintextWrongServerKeyAndTenantAsAgent) {
  // A legitimate agent alongside proves the controller is serving while it refuses the others.
  start_agent("host-a", keys.as(keys.host_a));
  start_agent("stranger", keys.as(keys.stranger));                        // key not listed
  start_agent("host-b", {keys.host_b, keys.stranger.public_z85, false});  // wrong server key
  start_agent("tenant1", keys.as(keys.tenant));                           // tenant acting as agent
  start_agent("host-x", {std::nullopt, "", true});                        // plaintext (explicitly allowed client-side)
  ASSERT_TRUE(wait_until([&] { return host_up("host-a"); }, 5s));
  std::this_thread::sleep_for(2500ms);  // several heartbeats and reconnect attempts of the refused peers
  auto hosts = api(v1::ApiRequestBody::HostsQuery, [](auto& f) { return v1::CreateHostsQuery(f).Union(); });
  auto r = msg::decode_api_reply(msg::bytes_of(hosts));
  ASSERT_TRUE(r);
  ASSERT_EQ((*r)->body_as_HostsReply()->hosts()->size(), 1u) << "only host-a may be known";
  EXPECT_EQ(msg::sv((*r)->body_as_HostsReply()->hosts()->Get(0)->host()), "host-a");
  EXPECT_EQ(server->stats().hellos.load(), 1u);
  for (size_t i = 1; i < agents.size(); ++i) EXPECT_EQ(agents[i]->stats().heartbeats_received.load(), 0u) << i;
  // ZAP saw and refused the stranger and the tenant (the other two fail the CURVE handshake before ZAP).
  EXPECT_GE(server->zap()->refused(), 2u);

  // An agent key may not use the api, nor a stranger's, nor a client with the wrong server key, nor a
  // plaintext one: each call fails as a refused connection naming why, well before its timeout, not as an
  // unreachable controller.
  struct Case {
    const char* what;
    msg::ClientSecurity sec;
    const char* why;
  };
  for (const Case& c : {Case{"agent key", keys.as(keys.host_a), "its role may not use the api"},
                        Case{"stranger", keys.as(keys.stranger), "not on its allow-list"},
                        Case{"wrong server key", {keys.tenant, keys.stranger.public_z85, false}, "server key"},
                        Case{"plaintext", {std::nullopt, "", true}, "refused the connection"}}) {
    msg::ApiClient client(ctx, server->endpoints().api, c.sec);
    ASSERT_TRUE(client.connect());
    const auto t0 = std::chrono::steady_clock::now();
    auto refused = client.call(
        v1::ApiRequestBody::HostsQuery, [](auto& f) { return v1::CreateHostsQuery(f).Union(); }, 3000ms);
    ASSERT_FALSE(refused) << c.what;
    EXPECT_EQ(refused.error().code(), Errc::permission_denied) << c.what << ": " << refused.error().what();
    EXPECT_NE(refused.error().what().find(c.why), std::string::npos) << c.what << ": " << refused.error().what();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2500ms) << c.what;
  }
}

TEST_F(MsgCurve, ZapHandlerDeathStopsTheController) {
  start_agent("host-a", keys.as(keys.host_a));
  ASSERT_TRUE(wait_until([&] { return host_up("host-a"); }, 5s));
  server->zap()->stop();
  ASSERT_TRUE(server->wait_for(2s)) << "the controller kept serving without its ZAP handler";
  auto st = server->wait();
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), Errc::unavailable);
  EXPECT_FALSE(server->running());
  // Nobody is answered any more, not even a listed admin.
  msg::ApiClient c(ctx, server->endpoints().api, keys.as(keys.admin));
  ASSERT_TRUE(c.connect());
  EXPECT_FALSE(c.call(
      v1::ApiRequestBody::HostsQuery, [](auto& f) { return v1::CreateHostsQuery(f).Union(); }, 700ms));
}

TEST_F(MsgCurve, MalformedInputIsCountedAndDroppedWhileServing) {
  auto pub = msg::make_socket(ctx, zmq::socket_type::pub);
  ASSERT_TRUE(msg::connect_endpoint(pub, server->endpoints().ingest, keys.as(keys.host_a)));
  auto send = [&](std::string_view topic, std::span<const uint8_t> b) {
    std::array<std::string_view, 2> p{topic, {reinterpret_cast<const char*>(b.data()), b.size()}};
    msg::send_parts(pub, p);
  };
  auto good = [&](uint64_t seq, uint64_t interval = 1'000'000'000) {
    flatbuffers::FlatBufferBuilder f;
    msg::encode_kpi_report(f, {"host-a", seq, 1, interval, msg::now_ns()}, {kpis(5)});
    return std::vector<uint8_t>(f.GetBufferPointer(), f.GetBufferPointer() + f.GetSize());
  };
  uint64_t seq = 0;
  ASSERT_TRUE(wait_until(
      [&] {
        send("kpi.host-a", good(++seq));
        return server->stats().kpi_reports >= 1;
      },
      5s));
  std::this_thread::sleep_for(100ms);
  const uint64_t reports_before = server->stats().kpi_reports, bad_before = server->stats().bad_messages;

  auto valid = good(++seq);
  std::vector<std::vector<uint8_t>> bad;
  bad.emplace_back(valid.begin(), valid.begin() + valid.size() / 3);  // truncated
  bad.emplace_back(std::vector<uint8_t>(5u << 20, 0));                // oversized (5 MiB)
  std::memcpy(bad.back().data() + 4, "MKPI", 4);
  bad.push_back(valid);
  std::memcpy(bad.back().data() + 4, "MHHL", 4);  // wrong identifier
  std::vector<uint8_t> junk(700);
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = uint8_t(i * 131 + 7);
  bad.push_back(junk);                    // random bytes
  bad.push_back(good(++seq, 5'000'000));  // interval 5 ms: out of range
  // (A bad VM entry drops only that VM: KpiReportWithBadVmsKeepsTheGoodVms.)
  bad.push_back(good(++seq));  // valid buffer, but published under another host's topic
  for (size_t i = 0; i < bad.size(); ++i) send(i + 1 == bad.size() ? "kpi.host-b" : "kpi.host-a", bad[i]);
  send("kpi.host-a", good(++seq));
  ASSERT_TRUE(wait_until([&] { return server->stats().kpi_reports >= reports_before + 1; }, 5s));
  ASSERT_TRUE(wait_until([&] { return server->stats().bad_messages >= bad_before + bad.size(); }, 2s));
  EXPECT_EQ(server->stats().bad_messages.load(), bad_before + bad.size());
  EXPECT_EQ(server->stats().kpi_reports.load(), reports_before + 1);

  // Garbage on the control channel and the api: counted, and the api answers with a protocol error.
  auto dealer = msg::make_socket(ctx, zmq::socket_type::dealer);
  ASSERT_TRUE(msg::connect_endpoint(dealer, server->endpoints().control, keys.as(keys.host_a)));
  std::array<std::string_view, 2> hb{"heartbeat",
                                     std::string_view(reinterpret_cast<const char*>(junk.data()), junk.size())};
  msg::send_parts(dealer, hb);
  ASSERT_TRUE(wait_until([&] { return server->stats().bad_messages >= bad_before + bad.size() + 1; }, 3s));
  auto dapi = msg::make_socket(ctx, zmq::socket_type::dealer);
  ASSERT_TRUE(msg::connect_endpoint(dapi, server->endpoints().api, keys.as(keys.admin)));
  std::array<std::string_view, 3> req{"", "api.req",
                                      std::string_view(reinterpret_cast<const char*>(junk.data()), junk.size())};
  msg::send_parts(dapi, req);
  std::vector<zmq::message_t> parts;
  ASSERT_TRUE(wait_until([&] { return msg::recv_parts(dapi, parts); }, 3s));
  ASSERT_EQ(parts.size(), 3u);
  auto rep = msg::decode_api_reply(msg::bytes_of(parts[2]));
  ASSERT_TRUE(rep);
  EXPECT_EQ((*rep)->error()->code(), v1::ErrorCode::protocol);
  // Still serving.
  EXPECT_TRUE(server->running());
  auto hosts = api(v1::ApiRequestBody::HostsQuery, [](auto& f) { return v1::CreateHostsQuery(f).Union(); });
  auto* h = host_status(hosts, "host-a");
  ASSERT_NE(h, nullptr);
  EXPECT_GE(h->bad_messages(), 1u);
}

// The same controller, with a ring buffer added to the default logger before it starts (so the warnings
// about dropped VM entries can be read back without racing the controller's thread).
class MsgCurveLogged : public MsgCurve {
 protected:
  void SetUp() override {
    previous = spdlog::default_logger();
    auto sinks = previous->sinks();
    sinks.push_back(ring);
    auto logger = std::make_shared<spdlog::logger>("msg-curve-capture", sinks.begin(), sinks.end());
    logger->set_level(std::min(previous->level(), spdlog::level::warn));
    spdlog::set_default_logger(logger);
    MsgCurve::SetUp();
  }
  void TearDown() override {
    MsgCurve::TearDown();
    spdlog::set_default_logger(previous);
  }
  bool logged(const std::vector<std::string>& all_of) {
    for (auto& line : ring->last_formatted()) {
      bool ok = true;
      for (auto& s : all_of) ok = ok && line.find(s) != std::string::npos;
      if (ok) return true;
    }
    return false;
  }
  std::shared_ptr<spdlog::logger> previous;
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> ring = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(256);
};

TEST_F(MsgCurveLogged, KpiReportWithBadVmsKeepsTheGoodVms) {
  auto sub = msg::make_socket(ctx, zmq::socket_type::sub);
  sub.set(zmq::sockopt::subscribe, "kpi.host-a");
  ASSERT_TRUE(msg::connect_endpoint(sub, server->endpoints().events, keys.as(keys.tenant)));
  auto pub = msg::make_socket(ctx, zmq::socket_type::pub);
  ASSERT_TRUE(msg::connect_endpoint(pub, server->endpoints().ingest, keys.as(keys.host_a)));
  auto send = [&](uint64_t seq, const std::vector<kpi::VmKpis>& vms) {
    flatbuffers::FlatBufferBuilder f;
    msg::encode_kpi_report(f, {"host-a", seq, 1, 1'000'000'000, msg::now_ns()}, vms);
    std::array<std::string_view, 2> p{"kpi.host-a", {reinterpret_cast<const char*>(f.GetBufferPointer()), f.GetSize()}};
    msg::send_parts(pub, p);
  };
  auto vm = [](int i, uint64_t cpu) {
    auto k = kpis(cpu);
    k.uuid = "11111111-2222-4333-8444-00000000000" + std::to_string(i);
    k.name = "vm" + std::to_string(i);
    k.interval_ns = 1'000'000'000;
    k.net_tx_bytes = 1000 + uint64_t(i);
    return k;
  };
  // Good reports until both the ingest PUB and the events SUB are connected (PUB/SUB drops before that).
  std::vector<zmq::message_t> parts;
  uint64_t seq = 0;
  ASSERT_TRUE(wait_until(
      [&] {
        send(++seq, {vm(0, 1)});
        return msg::recv_parts(sub, parts);
      },
      5s));
  std::this_thread::sleep_for(200ms);
  while (msg::recv_parts(sub, parts)) {
  }
  const uint64_t reports_before = server->stats().kpi_reports, bad_before = server->stats().bad_messages;

  // One bad VM (run-queue wait of 5000 CPUs) between two good ones.
  auto spoilt = vm(1, 300);
  spoilt.cpu_wait_ns = 5000ULL * 1'000'000'000ULL;
  const uint64_t mixed = ++seq;
  send(mixed, {vm(0, 100), spoilt, vm(2, 200)});
  ASSERT_TRUE(wait_until([&] { return observer->report(mixed).has_value(); }, 5s)) << "the report was dropped whole";
  auto seen = *observer->report(mixed);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].uuid, vm(0, 0).uuid);
  EXPECT_EQ(seen[0].cpu_run_ns, 100u);
  EXPECT_EQ(seen[0].net_tx_bytes, 1000u);
  EXPECT_EQ(seen[1].uuid, vm(2, 0).uuid);
  EXPECT_EQ(seen[1].cpu_run_ns, 200u);
  EXPECT_EQ(seen[1].runq_lat_us[2], 5u);
  EXPECT_EQ(server->stats().bad_messages.load(), bad_before + 1);
  EXPECT_TRUE(logged({"agent:host-a", "vm=11111111-2222-4333-8444-000000000001", "cpu_wait_ns=5000000000000"}))
      << "no warning naming the VM and the field";

  // The events stream carries the same report, holding only the good VMs, and passing the strict checks.
  const v1::KpiReport* nested = nullptr;
  std::vector<uint8_t> copy;
  ASSERT_TRUE(wait_until(
      [&] {
        while (msg::recv_parts(sub, parts)) {
          auto ev = msg::decode_market_event(msg::bytes_of(parts[1]));
          if (!ev || (*ev)->body_type() != v1::MarketEventBody::KpiUpdate) continue;
          auto* r = (*ev)->body_as_KpiUpdate()->report();
          copy.assign(r->begin(), r->end());
          auto rep = msg::decode_kpi_report(copy);
          EXPECT_TRUE(rep) << rep.error().describe();
          if (rep && (*rep)->seq() == mixed) {
            nested = *rep;
            return true;
          }
        }
        return false;
      },
      5s));
  ASSERT_EQ(nested->vms()->size(), 2u);
  EXPECT_EQ(msg::sv(nested->vms()->Get(0)->uuid()), vm(0, 0).uuid);
  EXPECT_EQ(msg::sv(nested->vms()->Get(1)->uuid()), vm(2, 0).uuid);

  // Two bad VMs of other kinds (a uuid that is none, a VM interval out of range) around one good one.
  auto not_uuid = vm(3, 1);
  not_uuid.uuid = "../../etc/passwd";
  auto bad_interval = vm(4, 1);
  bad_interval.interval_ns = 10'000'000;
  const uint64_t mixed2 = ++seq;
  send(mixed2, {not_uuid, vm(0, 400), bad_interval});
  ASSERT_TRUE(wait_until([&] { return observer->report(mixed2).has_value(); }, 5s));
  seen = *observer->report(mixed2);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].cpu_run_ns, 400u);
  EXPECT_EQ(server->stats().bad_messages.load(), bad_before + 3);
  EXPECT_EQ(server->stats().kpi_reports.load(), reports_before + 2);

  // What the api serves is the last report without its bad VMs; the host's bad-message count has all 3.
  auto k = api(v1::ApiRequestBody::KpisQuery, [](auto& f) { return v1::CreateKpisQueryDirect(f, "host-a").Union(); });
  auto kr = msg::decode_api_reply(msg::bytes_of(k));
  ASSERT_TRUE(kr);
  auto* reports = (*kr)->body_as_KpisReply()->reports();
  ASSERT_EQ(reports->size(), 1u);
  EXPECT_EQ(reports->Get(0)->seq(), mixed2);
  ASSERT_EQ(reports->Get(0)->vms()->size(), 1u);
  EXPECT_EQ(msg::sv(reports->Get(0)->vms()->Get(0)->uuid()), vm(0, 0).uuid);
  auto hosts = api(v1::ApiRequestBody::HostsQuery, [](auto& f) { return v1::CreateHostsQuery(f).Union(); });
  auto* h = host_status(hosts, "host-a");
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->bad_messages(), 3u);
}

}  // namespace
}  // namespace morph

namespace morph {
namespace {

// ipc:// endpoints: no CURVE, protected by a 0700 directory; a directory others can enter is refused.
TEST(MsgIpc, AgentConnectsOverIpcInPrivateDirAndLooseDirIsRefused) {
  auto base = std::filesystem::temp_directory_path() / ("morph-ipc-" + std::to_string(getpid()));
  std::filesystem::remove_all(base);
  std::filesystem::create_directories(base);
  auto dir = (base / "run").string();  // created 0700 by the controller
  controller::ControllerConfig cfg;
  cfg.endpoints = {"ipc://" + dir + "/ingest", "ipc://" + dir + "/control", "ipc://" + dir + "/api",
                   "ipc://" + dir + "/events"};
  ControllerServer server(cfg);
  ASSERT_TRUE(server.start());
  struct stat st {};
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  agent::UplinkConfig c;
  c.host = "host-ipc";
  c.ingest_endpoint = cfg.endpoints.ingest;
  c.control_endpoint = cfg.endpoints.control;
  c.interval_ns = 100'000'000;
  auto src = std::make_shared<agent::QueuedKpiSource>();
  agent::Uplink up(c, {}, src, nullptr);
  ASSERT_TRUE(up.start());
  EXPECT_TRUE(wait_until(
      [&] {
        src->push({kpis(7)});
        return server.stats().hellos >= 1 && server.stats().kpi_reports >= 1;
      },
      5s));
  up.stop();
  server.stop();

  auto loose = (base / "loose").string();
  std::filesystem::create_directories(loose);
  ::chmod(loose.c_str(), 0755);
  controller::ControllerConfig bad = cfg;
  bad.endpoints.ingest = "ipc://" + loose + "/ingest";
  ControllerServer refused(bad);
  auto r = refused.start();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::permission_denied);
  std::filesystem::remove_all(base);
}

}  // namespace
}  // namespace morph
