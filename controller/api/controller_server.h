#pragma once
// ControllerServer: the controller's side of the messaging topology (docs/architecture.md, DESIGN
// "Messaging"). It binds the four endpoints and runs one thread that owns all of their sockets:
//   ingest  XSUB   ← agents' PUB: KpiReports (topic kpi.<host>), verified, applied to the HostTable and
//                    re-published on events as kpi.<host>
//   control ROUTER ↔ agents' DEALER: HostHello, Heartbeat (answered), ShiftResult ↑; ShiftCommand,
//                    LeaseRenew ↓
//   api     ROUTER ↔ clients' DEALER/REQ: queries and snapshots here, accounts and bids via MarketApi
//   events  XPUB   → subscribers: MarketEvents, seq-numbered per controller incarnation; in manual mode, so
//                    a subscription takes effect only once the SubscriptionTable admits it (limits on
//                    prefix length and on subscriptions per connection and per principal; an inbound
//                    frame over 1 KiB drops the connection)
// With CURVE keys it starts the ZAP handler before binding anything and stops serving (run() ends with
// an error) if the handler dies. Other threads reach the sockets only through ControllerLink, whose calls
// are queued and handed to the owner thread. It never decides anything about the market.

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <variant>
#include <vector>
#include <zmq.hpp>

#include "common/msg/bad_messages.h"
#include "common/msg/curve_keys.h"
#include "common/msg/socket.h"
#include "common/msg/socket_monitor.h"
#include "common/msg/zap_handler.h"
#include "controller/api/api_service.h"
#include "controller/api/market_api.h"
#include "controller/api/subscriptions.h"
#include "controller/ingest/host_table.h"
#include "controller/ingest/kpi_observer.h"

namespace morph::controller {

struct ControllerEndpoints {
  std::string ingest = "tcp://127.0.0.1:7710";
  std::string control = "tcp://127.0.0.1:7711";
  std::string api = "tcp://127.0.0.1:7712";
  std::string events = "tcp://127.0.0.1:7713";
};

struct ControllerConfig {
  ControllerEndpoints endpoints;
  std::optional<msg::KeyPair> server_key;       // required when any endpoint is tcp://
  std::shared_ptr<const msg::AllowList> allow;  // required with server_key
  // A tenant principal that sees every account's rows in snapshots (the in-process dashboard's own
  // identity, docs/security.md); it still acts on nothing. Empty: none.
  std::string reads_all;
  bool allow_plaintext_tcp = false;             // benchmarks only
  uint64_t peer_timeout_ns = 3'000'000'000ULL;  // a host silent this long is down
  uint64_t tick_ns = 250'000'000ULL;            // liveness check period
  bool republish_kpis = true;
  // Consumers of each verified KpiReport, called in this order (controller/ingest/kpi_observer.h).
  std::vector<std::shared_ptr<KpiObserver>> kpi_observers;
  SubscriptionLimits subscription_limits;
};

struct ControllerStats {
  std::atomic<uint64_t> kpi_reports{0}, kpi_gaps{0}, bad_messages{0}, events_published{0}, api_requests{0}, hellos{0},
      heartbeats{0}, shift_results{0}, hosts_up{0}, subscriptions{0}, subscribers_dropped{0};
};

class ControllerServer final : public ControllerLink {
 public:
  explicit ControllerServer(ControllerConfig cfg, std::shared_ptr<MarketApi> market = nullptr);
  ~ControllerServer() override;
  ControllerServer(const ControllerServer&) = delete;
  ControllerServer& operator=(const ControllerServer&) = delete;

  // Starts ZAP (with CURVE), binds the endpoints and starts the messaging thread.
  Status start();
  // Asks the messaging thread to stop and joins it.
  void stop();
  // Blocks until the messaging thread ends (or timeout); returns why it ended if not by stop().
  Status wait();
  bool wait_for(std::chrono::milliseconds timeout);
  bool running() const { return running_.load(); }

  // The endpoints as bound (ephemeral tcp ports resolved).
  const ControllerEndpoints& endpoints() const { return bound_; }
  const ControllerStats& stats() const { return stats_; }
  uint64_t incarnation() const { return incarnation_; }
  msg::ZapHandler* zap() { return zap_.get(); }

  // ControllerLink (thread-safe)
  void publish_event(std::string topic, v1::MarketEventBody type, EventBodyBuilder build) override;
  void send_shift(std::string host, msg::ShiftOrder order) override;
  void renew_lease(std::string host, msg::LeaseRenewal renewal) override;

 private:
  struct EventItem {
    std::string topic;
    v1::MarketEventBody type;
    EventBodyBuilder build;
  };
  struct ShiftItem {
    std::string host;
    msg::ShiftOrder order;
  };
  struct LeaseItem {
    std::string host;
    msg::LeaseRenewal renewal;
  };
  struct StopItem {};
  using OutboxItem = std::variant<EventItem, ShiftItem, LeaseItem, StopItem>;

  void post(OutboxItem item);
  void run();
  bool drain_outbox();  // false on stop
  void on_ingest(std::vector<zmq::message_t>& parts);
  void on_control(std::vector<zmq::message_t>& parts);
  void on_api(std::vector<zmq::message_t>& parts);
  void on_events();  // (un)subscriptions, admitted by subs_
  void drain_events_monitor();
  void tick(uint64_t now);
  void emit(const std::string& topic, v1::MarketEventBody type, const EventBodyBuilder& build);
  void host_changed(const std::string& host, bool up);
  void send_control(const std::string& rid, std::string_view topic, const flatbuffers::FlatBufferBuilder& fbb);
  void bad(const std::string& peer, const std::string& host, const Error& e);
  Caller caller_of(const std::string& user_id) const;
  // With CURVE on a tcp endpoint every message must carry a User-Id; a missing one is refused (fail closed).
  bool curve_on(const std::string& endpoint) const;
  // Whether any subscriber's prefix matches: KPIs are only re-serialised for someone who reads them.
  bool wanted(const std::string& topic) const;

  ControllerConfig cfg_;
  std::shared_ptr<MarketApi> market_;
  zmq::context_t ctx_;
  std::unique_ptr<msg::ZapHandler> zap_;
  zmq::socket_t ingest_, control_, api_, events_;
  ControllerEndpoints bound_;
  HostTable hosts_;
  ApiService api_service_;
  msg::BadMessageCounters bad_counters_;
  msg::PeerInfo peer_;  // of the message being handled
  flatbuffers::FlatBufferBuilder fbb_{64 * 1024}, event_fbb_{64 * 1024};
  uint64_t incarnation_;
  uint64_t events_seq_ = 0;
  SubscriptionTable subs_;             // topic prefixes subscribed on events, per connection and principal
  msg::SocketMonitor events_monitor_;  // accepted / disconnected subscribers
  bool trim_after_drop_ = false;       // a subscriber left: return freed memory at the next tick

  msg::Wakeup wake_;
  std::mutex outbox_mu_;
  std::deque<OutboxItem> outbox_;

  std::thread thread_;
  std::atomic<bool> running_{false};
  std::mutex done_mu_;
  std::condition_variable done_cv_;
  bool done_ = false;
  std::optional<Error> exit_error_;
  ControllerStats stats_;
};

}  // namespace morph::controller
