#pragma once
// ApiClient: a synchronous client of the controller's api endpoint (DEALER, frames [""][api.req][buf]),
// for morphctl, integrations and tests. One request at a time; a timed-out request's late reply is
// discarded by request_id. A handshake the controller refuses (a key not on its allow-list or not
// admitted on the api, a wrong server key, plaintext against CURVE) is told apart from silence: call()
// returns Errc::permission_denied naming the cause, read from the socket monitor, rather than timing out
// as unavailable. Not thread-safe: one owner thread, like every socket.

#include <chrono>
#include <functional>
#include <thread>
#include <zmq.hpp>

#include "common/msg/socket.h"
#include "common/msg/socket_monitor.h"
#include "common/msg/wire.h"

namespace morph::msg {

class ApiClient {
 public:
  ApiClient(zmq::context_t& ctx, const std::string& endpoint, const ClientSecurity& sec);
  Status connect();
  // Sends the request body (built by `build`, which returns the body's type and offset) and waits for the
  // verified reply. The returned message owns the reply buffer; decode it with decode_api_reply.
  Result<zmq::message_t> call(v1::ApiRequestBody type,
                              const std::function<flatbuffers::Offset<void>(flatbuffers::FlatBufferBuilder&)>& build,
                              std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));

 private:
  zmq::context_t& ctx_;
  std::string endpoint_;
  ClientSecurity sec_;
  zmq::socket_t sock_;
  SocketMonitor monitor_;  // handshake failures
  uint64_t next_id_ = 1;
};

}  // namespace morph::msg
