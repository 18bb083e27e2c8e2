#pragma once
// ZeroMQ sockets the Morph way: every socket is made here, so linger, high-water marks, reconnect backoff
// and ZMTP heartbeats are set explicitly on all of them; tcp:// endpoints get CURVE (a tcp endpoint without
// keys is refused unless the caller explicitly asks for plaintext, which only benchmarks do); ipc://
// endpoints live in a directory of mode 0700. A socket is owned by one thread; other threads reach it
// through that thread's inproc sockets or a Wakeup + queue, never directly.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>
#include <zmq.hpp>

#include "common/error.h"
#include "common/msg/curve_keys.h"

namespace morph::msg {

struct SocketOptions {
  int linger_ms = 0;  // never block close on unsent messages
  int sndhwm = 10000;
  int rcvhwm = 10000;
  int reconnect_ivl_ms = 100;  // first retry; doubles up to reconnect_ivl_max_ms
  int reconnect_ivl_max_ms = 1000;
  int zmtp_heartbeat_ivl_ms = 1000;  // transport-level ping so dead TCP peers are noticed
  int zmtp_heartbeat_timeout_ms = 3000;
  int64_t max_msg_bytes = 8 << 20;  // larger messages make libzmq drop the connection; our decoders cap at 4 MiB
  std::string routing_id;           // DEALER: the host id, so ROUTER replies reach it
};

// How an endpoint is secured. For tcp:// CURVE is mandatory unless allow_plaintext_tcp is set.
struct ServerSecurity {
  std::optional<KeyPair> curve;      // the controller's key pair
  std::string zap_domain;            // selects the role policy in the ZAP handler
  bool allow_plaintext_tcp = false;  // benchmarks only; never exposed on a command line
};

struct ClientSecurity {
  std::optional<KeyPair> curve;   // this peer's key pair
  std::string server_public_z85;  // the controller's public key
  bool allow_plaintext_tcp = false;
};

// The files a client's CURVE identity is read from: its own NAME.key and the server's NAME.pub, each with
// the flag or configuration key that named it (put before a load error; empty: the error alone).
struct ClientKeyFiles {
  std::string key_file;
  std::string server_key_file;
  std::string key_origin = "--key";
  std::string server_key_origin = "--server-key";
};
// Loads both (load_keypair, load_public_key): the one way every client (morphctl, top, the dashboard, the
// agent) turns key files into ClientSecurity.
Result<ClientSecurity> load_client_security(const ClientKeyFiles& files);

zmq::socket_t make_socket(zmq::context_t& ctx, zmq::socket_type type, const SocketOptions& opts = {});

// Applies security and binds. For ipc:// makes sure the socket's directory exists with mode 0700 and
// refuses a directory that others can enter.
Status bind_endpoint(zmq::socket_t& s, const std::string& endpoint, const ServerSecurity& sec);
Status connect_endpoint(zmq::socket_t& s, const std::string& endpoint, const ClientSecurity& sec);

bool is_tcp(std::string_view endpoint);
bool is_ipc(std::string_view endpoint);
// The endpoint actually bound (tcp://127.0.0.1:0 → the ephemeral port chosen).
std::string last_endpoint(zmq::socket_t& s);

// Wakes a socket-owning thread's poll loop from another thread (an eventfd, pollable by zmq_poll).
class Wakeup {
 public:
  Wakeup();
  ~Wakeup();
  Wakeup(const Wakeup&) = delete;
  Wakeup& operator=(const Wakeup&) = delete;
  void notify() noexcept;
  void drain() noexcept;
  int fd() const noexcept { return fd_; }

 private:
  int fd_;
};

// Receives all parts of one message without blocking. False when nothing was waiting. Every part's data
// is 8-byte aligned (copied if libzmq delivered it unaligned), as the FlatBuffers decoders require.
// `peer`, when given, receives the connection's ZAP User-Id and address (read before any realignment
// copy, which would lose them).
struct PeerInfo {
  std::string user_id;  // "role:name" under CURVE; empty for ipc/inproc peers
  std::string address;
};
bool recv_parts(zmq::socket_t& s, std::vector<zmq::message_t>& parts, PeerInfo* peer = nullptr);
// Sends the parts as one multipart message without blocking; false when it would block (HWM) or failed.
bool send_parts(zmq::socket_t& s, std::span<const std::string_view> parts);

// Metadata that ZAP attached to a received message: the User-Id ("role:name") and the peer's address.
std::string user_id_of(const zmq::message_t& m);
std::string peer_address_of(const zmq::message_t& m);
// Who sent a message, for per-principal limits: the User-Id under CURVE; on ipc "local uid N" (libzmq's
// peer address there is ":uid:gid:pid"); otherwise the peer's address.
std::string principal_of(const zmq::message_t& m);

inline std::string_view view_of(const zmq::message_t& m) {
  return {static_cast<const char*>(m.data()), m.size()};
}
inline std::span<const uint8_t> bytes_of(const zmq::message_t& m) {
  return {static_cast<const uint8_t*>(m.data()), m.size()};
}

uint64_t now_ns();

}  // namespace morph::msg
