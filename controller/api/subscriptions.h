#pragma once
// SubscriptionTable: which topic prefixes the events endpoint's subscribers hold, per connection and per
// principal, and the limits on them (docs/security.md, "Limits"). The events socket runs in XPUB manual
// mode, so a subscription takes effect only once this table accepted it; one it refuses is never
// subscribed, and the controller disconnects the connection that sent it (libzmq then frees everything
// that connection held). wanted(topic) answers "does anyone read this topic" in time that does not grow
// with the number of subscriptions (one hash lookup per distinct prefix length), for the KPI republish.
//
// Connections are known by what libzmq tells: each message's source fd and a tag unique to the
// connection (its metadata), and the socket monitor's accepted/disconnected events per fd. The two
// arrive on different channels, so a connection's messages can be seen before its accept event and after
// another connection on the same fd has ended; connections on one fd are strictly sequential, which is
// what keeps them apart (see the .cpp). Pure logic: no sockets, no clock; owned by the messaging thread.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace morph::controller {

struct SubscriptionLimits {
  // The longest topic the controller publishes: "price."/"alloc."/"shift." and a 255-character name. A
  // longer prefix can match nothing.
  size_t max_prefix_bytes = 261;
  size_t per_connection = 64;
  size_t per_principal = 256;
};

// Who sent a subscription message.
struct SubscriptionPeer {
  int fd = -1;                 // the connection's socket (ZMQ_SRCFD); -1 when libzmq gave none
  const void* tag = nullptr;   // unique to the connection while it lives (its metadata)
  std::string principal;       // "role:name" under CURVE, "local uid N" on ipc, else the peer address
  std::shared_ptr<void> keep;  // holds the tag alive while the table knows the connection
};

class SubscriptionTable {
 public:
  // After a refusal the connection is being dropped: what it sent after is ignored (dropped_already), so the
  // caller ends it once, not again on an fd that may by then be another connection's.
  enum class Verdict {
    accepted,
    duplicate,
    too_long,
    too_many_for_connection,
    too_many_for_principal,
    dropped_already
  };

  explicit SubscriptionTable(SubscriptionLimits limits = {}) : limits_(limits) {}

  Verdict subscribe(const SubscriptionPeer& peer, std::string_view prefix);
  // True when the connection held it (the caller then unsubscribes it on the socket).
  bool unsubscribe(const SubscriptionPeer& peer, std::string_view prefix);
  // Socket monitor events of the events socket.
  void accepted(int fd);
  void disconnected(int fd);

  bool wanted(std::string_view topic) const;
  // Why a verdict refused, with the limit, for the log and the bad-message counter.
  std::string describe(Verdict v, std::string_view prefix) const;

  const SubscriptionLimits& limits() const { return limits_; }
  size_t connections() const;
  size_t subscriptions() const { return total_; }
  size_t held_by(const std::string& principal) const;

 private:
  struct Connection {
    const void* tag = nullptr;  // null: accepted, no message seen yet
    bool accept_seen = false;
    bool refused = false;  // a subscription past the limits: being disconnected
    std::string principal;
    std::shared_ptr<void> keep;
    std::set<std::string, std::less<>> prefixes;
  };
  Connection& find(const SubscriptionPeer& peer);
  void add_prefix(const std::string& p);
  void remove_prefix(const std::string& p);
  void release(Connection& c);

  SubscriptionLimits limits_;
  std::unordered_map<int, std::deque<Connection>> by_fd_;  // oldest connection on the fd first
  std::unordered_map<std::string, size_t> principals_;     // subscriptions held per principal
  std::unordered_map<std::string, size_t> prefixes_;       // connections holding each prefix
  std::map<size_t, size_t> lengths_;                       // prefix length -> distinct prefixes of it
  size_t total_ = 0;
};

}  // namespace morph::controller
