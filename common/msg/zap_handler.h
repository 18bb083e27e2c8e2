#pragma once
// ZapHandler: the ZeroMQ authentication handler (RFC 27, inproc://zeromq.zap.01) for CURVE endpoints.
// It accepts a client only if its public key is on the AllowList with a role the endpoint's ZAP domain
// admits, and sets the User-Id "role:name" that servers read from each message. It must be started before
// any CURVE socket binds. If it stops for any reason, dead() turns true and death_fd() becomes readable:
// servers must then stop serving (libzmq would otherwise accept any client that knows the server key).

#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <zmq.hpp>

#include "common/error.h"
#include "common/msg/curve_keys.h"
#include "common/msg/socket.h"

namespace morph::msg {

// ZAP domain → the roles allowed there.
using DomainPolicy = std::map<std::string, std::set<Role>>;

class ZapHandler {
 public:
  ZapHandler(zmq::context_t& ctx, std::shared_ptr<const AllowList> allow, DomainPolicy policy);
  ~ZapHandler();
  ZapHandler(const ZapHandler&) = delete;
  ZapHandler& operator=(const ZapHandler&) = delete;

  // Binds inproc://zeromq.zap.01 (fails if another handler holds it) and starts the handler thread.
  Status start();
  // Stops the handler; afterwards dead() is true, as after a crash of the handler thread.
  void stop();
  bool dead() const noexcept { return dead_.load(); }
  int death_fd() const noexcept { return death_.fd(); }
  uint64_t accepted() const noexcept { return accepted_.load(); }
  uint64_t refused() const noexcept { return refused_.load(); }

 private:
  void run(zmq::socket_t zap, zmq::socket_t ctl);

  zmq::context_t& ctx_;
  std::shared_ptr<const AllowList> allow_;
  DomainPolicy policy_;
  std::string ctl_endpoint_;
  std::unique_ptr<zmq::socket_t> ctl_;  // owned by the thread calling start/stop
  std::thread thread_;
  Wakeup death_;
  std::atomic<bool> dead_{false};
  std::atomic<uint64_t> accepted_{0}, refused_{0};
};

}  // namespace morph::msg
