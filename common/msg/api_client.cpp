#include "common/msg/api_client.h"

#include <array>
#include <string>

namespace morph::msg {

ApiClient::ApiClient(zmq::context_t& ctx, const std::string& endpoint, const ClientSecurity& sec)
    : ctx_(ctx), endpoint_(endpoint), sec_(sec) {}

namespace {
// What a failed handshake means to the person running the client.
Error refusal(const SocketMonitor::Event& e, const std::string& endpoint) {
  std::string why;
  if (e.event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
    why = "it refused this client's key (ZAP status " + std::to_string(e.value) +
          "): the key is not on its allow-list, or its role may not use the api";
  } else if (e.event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
    switch (e.value) {
      case ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
        why = "the CURVE handshake failed: the server key given does not match the controller's";
        break;
      case ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
        why = "the security mechanisms differ (CURVE on one side only)";
        break;
      default:
        why = "the handshake failed with ZMTP protocol error " + std::to_string(e.value);
    }
  } else {
    // libzmq gives no detail when the server drops the handshake without an ERROR command, as it does when
    // it cannot decrypt this client's HELLO: the server key given is the usual cause.
    why = "the handshake failed without a reason from the controller (is the server key given the controller's?)";
  }
  return Error(Errc::permission_denied, "the controller at " + endpoint + " refused the connection: " + why);
}
}  // namespace

Status ApiClient::connect() {
  sock_ = make_socket(ctx_, zmq::socket_type::dealer);
  MORPH_TRY_ASSIGN(monitor_,
                   SocketMonitor::start(ctx_, sock_,
                                        ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                            ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL));
  return connect_endpoint(sock_, endpoint_, sec_);
}

Result<zmq::message_t> ApiClient::call(
    v1::ApiRequestBody type, const std::function<flatbuffers::Offset<void>(flatbuffers::FlatBufferBuilder&)>& build,
    std::chrono::milliseconds timeout) {
  flatbuffers::FlatBufferBuilder fbb;
  uint64_t id = next_id_++;
  auto body = build(fbb);
  fbb.Finish(v1::CreateApiRequest(fbb, id, type, body, now_ns()), v1::ApiRequestIdentifier());
  std::array<std::string_view, 3> p{
      "", topic::kApiRequest, {reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize()}};
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!send_parts(sock_, p)) {
    if (std::chrono::steady_clock::now() >= deadline)
      return Error(Errc::unavailable, "api: cannot send to " + endpoint_);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::vector<zmq::message_t> parts;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return Error(Errc::unavailable, "api: no reply from " + endpoint_ + " in time");
    std::array<zmq::pollitem_t, 2> items{{{sock_.handle(), 0, ZMQ_POLLIN, 0}, {monitor_.handle(), 0, ZMQ_POLLIN, 0}}};
    zmq::poll(items.data(), monitor_.active() ? 2 : 1, left);
    // libzmq retries a refused handshake on its own; the first refusal is the answer.
    if (auto e = monitor_.next()) return refusal(*e, endpoint_);
    while (recv_parts(sock_, parts)) {
      if (parts.size() != 3 || parts[0].size() != 0 || view_of(parts[1]) != topic::kApiReply) continue;
      auto r = decode_api_reply(bytes_of(parts[2]));
      if (!r) return std::move(r).error();
      if ((*r)->request_id() != id && (*r)->request_id() != 0) continue;  // a late reply to an earlier call
      return std::move(parts[2]);
    }
  }
}

}  // namespace morph::msg
