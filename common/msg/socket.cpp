#include "common/msg/socket.h"

#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

namespace morph::msg {

zmq::socket_t make_socket(zmq::context_t& ctx, zmq::socket_type type, const SocketOptions& o) {
  zmq::socket_t s(ctx, type);
  s.set(zmq::sockopt::linger, o.linger_ms);
  s.set(zmq::sockopt::sndhwm, o.sndhwm);
  s.set(zmq::sockopt::rcvhwm, o.rcvhwm);
  s.set(zmq::sockopt::reconnect_ivl, o.reconnect_ivl_ms);
  s.set(zmq::sockopt::reconnect_ivl_max, o.reconnect_ivl_max_ms);
  s.set(zmq::sockopt::heartbeat_ivl, o.zmtp_heartbeat_ivl_ms);
  s.set(zmq::sockopt::heartbeat_timeout, o.zmtp_heartbeat_timeout_ms);
  s.set(zmq::sockopt::heartbeat_ttl, o.zmtp_heartbeat_timeout_ms);
  s.set(zmq::sockopt::maxmsgsize, o.max_msg_bytes);
  if (!o.routing_id.empty()) s.set(zmq::sockopt::routing_id, o.routing_id);
  return s;
}

Result<ClientSecurity> load_client_security(const ClientKeyFiles& f) {
  auto origin = [](Error e, const std::string& where) { return where.empty() ? e : std::move(e).with_context(where); };
  auto kp = load_keypair(f.key_file);
  if (!kp) return origin(std::move(kp).error(), f.key_origin);
  auto pub = load_public_key(f.server_key_file);
  if (!pub) return origin(std::move(pub).error(), f.server_key_origin);
  ClientSecurity sec;
  sec.curve = std::move(*kp);
  sec.server_public_z85 = std::move(*pub);
  return sec;
}

bool is_tcp(std::string_view e) {
  return e.starts_with("tcp://");
}
bool is_ipc(std::string_view e) {
  return e.starts_with("ipc://");
}

namespace {
Status ensure_private_dir(const std::string& endpoint) {
  std::filesystem::path p(endpoint.substr(6));
  auto dir = p.parent_path();
  if (dir.empty()) return Error(Errc::invalid_argument, "ipc endpoint " + endpoint + " needs an absolute path");
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return Error::from_errno("creating " + dir.string());
    if (::stat(dir.c_str(), &st) != 0) return Error::from_errno("stat " + dir.string());
  }
  if ((st.st_mode & 077) != 0)
    return Error(Errc::permission_denied,
                 "ipc directory " + dir.string() + " is accessible to group or others; it must be mode 0700");
  return {};
}
}  // namespace

Status bind_endpoint(zmq::socket_t& s, const std::string& endpoint, const ServerSecurity& sec) {
  try {
    if (is_tcp(endpoint)) {
      if (sec.curve) {
        s.set(zmq::sockopt::curve_server, 1);
        s.set(zmq::sockopt::curve_secretkey, sec.curve->secret_z85);
        s.set(zmq::sockopt::zap_domain, sec.zap_domain);
      } else if (!sec.allow_plaintext_tcp) {
        return Error(Errc::permission_denied, "refusing to bind " + endpoint + " without CURVE keys");
      }
    } else if (is_ipc(endpoint)) {
      MORPH_TRY(ensure_private_dir(endpoint));
    }
    s.bind(endpoint);
  } catch (const zmq::error_t& e) {
    return Error(Errc::io, "binding " + endpoint + ": " + e.what(), e.num());
  }
  return {};
}

Status connect_endpoint(zmq::socket_t& s, const std::string& endpoint, const ClientSecurity& sec) {
  try {
    if (is_tcp(endpoint)) {
      if (sec.curve) {
        if (sec.server_public_z85.size() != 40)
          return Error(Errc::invalid_argument, "server public key for " + endpoint + " is not 40 Z85 characters");
        s.set(zmq::sockopt::curve_serverkey, sec.server_public_z85);
        s.set(zmq::sockopt::curve_publickey, sec.curve->public_z85);
        s.set(zmq::sockopt::curve_secretkey, sec.curve->secret_z85);
      } else if (!sec.allow_plaintext_tcp) {
        return Error(Errc::permission_denied, "refusing to connect to " + endpoint + " without CURVE keys");
      }
    }
    s.connect(endpoint);
  } catch (const zmq::error_t& e) {
    return Error(Errc::io, "connecting " + endpoint + ": " + e.what(), e.num());
  }
  return {};
}

std::string last_endpoint(zmq::socket_t& s) {
  return s.get(zmq::sockopt::last_endpoint);
}

Wakeup::Wakeup() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (fd_ < 0) throw std::runtime_error("eventfd failed");
}
Wakeup::~Wakeup() {
  ::close(fd_);
}
void Wakeup::notify() noexcept {
  uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(fd_, &one, sizeof(one));
}
void Wakeup::drain() noexcept {
  uint64_t v;
  [[maybe_unused]] auto n = ::read(fd_, &v, sizeof(v));
}

bool recv_parts(zmq::socket_t& s, std::vector<zmq::message_t>& parts, PeerInfo* peer) {
  parts.clear();
  if (peer) *peer = {};
  for (;;) {
    zmq::message_t m;
    auto r = s.recv(m, zmq::recv_flags::dontwait);
    if (!r) return !parts.empty();
    bool more = m.more();
    if (peer && peer->user_id.empty()) {
      // A ROUTER's identity frame is made locally and carries no metadata; the wire frames do.
      peer->user_id = user_id_of(m);
      if (peer->address.empty()) peer->address = peer_address_of(m);
    }
    if (m.size() > 0 && reinterpret_cast<uintptr_t>(m.data()) % 8 != 0) {
      // libzmq may hand out frames at any offset of its receive buffer; FlatBuffers reads need the
      // buffer 8-byte aligned, so realign (a fresh message's data is malloc'ed).
      zmq::message_t aligned(m.data(), m.size());
      m = std::move(aligned);
    }
    parts.push_back(std::move(m));
    if (!more) return true;
    if (parts.size() > 16) {
      // Drain and drop absurdly long multipart messages; the caller sees an over-long frame list.
      zmq::message_t rest;
      while (s.get(zmq::sockopt::rcvmore) && s.recv(rest, zmq::recv_flags::dontwait)) {
      }
      return true;
    }
  }
}

bool send_parts(zmq::socket_t& s, std::span<const std::string_view> parts) {
  for (size_t i = 0; i < parts.size(); ++i) {
    auto flags = zmq::send_flags::dontwait;
    if (i + 1 < parts.size()) flags = flags | zmq::send_flags::sndmore;
    try {
      if (!s.send(zmq::const_buffer(parts[i].data(), parts[i].size()), flags)) return false;
    } catch (const zmq::error_t&) {
      return false;  // e.g. EHOSTUNREACH on a ROUTER with router_mandatory
    }
  }
  return true;
}

namespace {
std::string property(const zmq::message_t& m, const char* name) {
  const char* v = zmq_msg_gets(const_cast<zmq_msg_t*>(m.handle()), name);
  return v ? std::string(v) : std::string();
}
}  // namespace

std::string user_id_of(const zmq::message_t& m) {
  return property(m, "User-Id");
}
std::string peer_address_of(const zmq::message_t& m) {
  return property(m, "Peer-Address");
}

std::string principal_of(const zmq::message_t& m) {
  if (std::string uid = user_id_of(m); !uid.empty()) return uid;
  std::string addr = peer_address_of(m);
  if (addr.starts_with(':')) return "local uid " + addr.substr(1, addr.find(':', 1) - 1);
  return addr;
}

uint64_t now_ns() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

}  // namespace morph::msg
