#include "common/msg/socket_monitor.h"

#include <atomic>
#include <cstring>

namespace morph::msg {

Result<SocketMonitor> SocketMonitor::start(zmq::context_t& ctx, zmq::socket_t& s, int events) {
  static std::atomic<uint64_t> serial{0};
  const std::string ep = "inproc://morph-monitor-" + std::to_string(++serial);
  if (zmq_socket_monitor(s.handle(), ep.c_str(), events) != 0)
    return Error(Errc::system, "starting the socket monitor: " + std::string(zmq_strerror(zmq_errno())));
  SocketMonitor m;
  try {
    m.pair_ = zmq::socket_t(ctx, zmq::socket_type::pair);
    m.pair_.set(zmq::sockopt::linger, 0);
    m.pair_.connect(ep);
  } catch (const zmq::error_t& e) {
    return Error(Errc::system, std::string("connecting to the socket monitor: ") + e.what(), e.num());
  }
  return m;
}

std::optional<SocketMonitor::Event> SocketMonitor::next() {
  if (!pair_) return std::nullopt;
  // Two frames: [uint16 event][uint32 value] in host order, then the endpoint.
  zmq::message_t head, addr;
  if (!pair_.recv(head, zmq::recv_flags::dontwait)) return std::nullopt;
  Event e;
  if (head.size() >= 6) {
    std::memcpy(&e.event, head.data(), 2);
    std::memcpy(&e.value, static_cast<const char*>(head.data()) + 2, 4);
  }
  if (head.more() && pair_.recv(addr, zmq::recv_flags::none)) e.endpoint = addr.to_string();
  return e;
}

}  // namespace morph::msg
