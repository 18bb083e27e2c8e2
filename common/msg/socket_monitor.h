#pragma once
// SocketMonitor: libzmq's socket monitor (zmq_socket_monitor) read without blocking, for the thread that
// owns the monitored socket. The controller's events endpoint uses it to know when a subscriber's
// connection is accepted and ends; ApiClient uses it to tell a handshake the server refused (a key not in
// its allow-list, a wrong server key) from a server that does not answer. Never touches the monitored
// socket itself; one owner thread, like every socket.

#include <cstdint>
#include <optional>
#include <string>
#include <zmq.hpp>

#include "common/error.h"

namespace morph::msg {

class SocketMonitor {
 public:
  struct Event {
    uint16_t event = 0;  // ZMQ_EVENT_*
    int32_t value = 0;   // the fd for accepted/disconnected, the ZAP status or ZMTP error for handshakes
    std::string endpoint;
  };

  // Monitors `s` for the ZMQ_EVENT_* bits in `events`. Call before the socket binds or connects, so no
  // event is missed.
  static Result<SocketMonitor> start(zmq::context_t& ctx, zmq::socket_t& s, int events);
  SocketMonitor() = default;
  SocketMonitor(SocketMonitor&&) = default;
  SocketMonitor& operator=(SocketMonitor&&) = default;

  // The next event, or nullopt when none is waiting.
  std::optional<Event> next();
  // For zmq_poll.
  void* handle() { return pair_.handle(); }
  bool active() const { return static_cast<bool>(pair_); }

 private:
  zmq::socket_t pair_;
};

}  // namespace morph::msg
