#include "common/msg/zap_handler.h"

#include <spdlog/spdlog.h>
#include <zmq.h>

#include <array>

namespace morph::msg {

ZapHandler::ZapHandler(zmq::context_t& ctx, std::shared_ptr<const AllowList> allow, DomainPolicy policy)
    : ctx_(ctx), allow_(std::move(allow)), policy_(std::move(policy)) {
  ctl_endpoint_ = "inproc://morph.zap.ctl." + std::to_string(reinterpret_cast<uintptr_t>(this));
}

ZapHandler::~ZapHandler() {
  stop();
}

Status ZapHandler::start() {
  try {
    auto zap = make_socket(ctx_, zmq::socket_type::rep);
    zap.bind("inproc://zeromq.zap.01");
    auto ctl_in = make_socket(ctx_, zmq::socket_type::pair);
    ctl_in.bind(ctl_endpoint_);
    ctl_ = std::make_unique<zmq::socket_t>(make_socket(ctx_, zmq::socket_type::pair));
    ctl_->connect(ctl_endpoint_);
    thread_ =
        std::thread([this, z = std::move(zap), c = std::move(ctl_in)]() mutable { run(std::move(z), std::move(c)); });
  } catch (const zmq::error_t& e) {
    dead_ = true;
    death_.notify();
    return Error(Errc::io, std::string("starting the ZAP handler: ") + e.what(), e.num());
  }
  return {};
}

void ZapHandler::stop() {
  if (ctl_) {
    try {
      ctl_->send(zmq::str_buffer("STOP"), zmq::send_flags::dontwait);
    } catch (const zmq::error_t&) {
    }
  }
  if (thread_.joinable()) thread_.join();
  ctl_.reset();
}

void ZapHandler::run(zmq::socket_t zap, zmq::socket_t ctl) {
  std::map<std::string, uint64_t> last_warned;  // refusals are logged once per peer key per minute
  auto warn_once = [&](const std::string& who, const std::string& line) {
    uint64_t now = now_ns();
    auto& t = last_warned[who];
    if (t != 0 && now - t < 60'000'000'000ULL) return;
    if (last_warned.size() > 10000) last_warned.clear();
    t = now;
    spdlog::warn("zap: {} (further refusals of this peer are not logged for a minute)", line);
  };
  try {
    std::vector<zmq::message_t> req;
    for (;;) {
      std::array<zmq::pollitem_t, 2> items{{{zap.handle(), 0, ZMQ_POLLIN, 0}, {ctl.handle(), 0, ZMQ_POLLIN, 0}}};
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(-1));
      if (items[1].revents & ZMQ_POLLIN) break;
      if (!(items[0].revents & ZMQ_POLLIN)) continue;
      if (!recv_parts(zap, req)) continue;
      // version, request id, domain, address, identity, mechanism, credentials...
      std::string version = req.size() > 0 ? std::string(view_of(req[0])) : "";
      std::string request_id = req.size() > 1 ? std::string(view_of(req[1])) : "";
      std::string domain = req.size() > 2 ? std::string(view_of(req[2])) : "";
      std::string address = req.size() > 3 ? std::string(view_of(req[3])) : "";
      std::string mechanism = req.size() > 5 ? std::string(view_of(req[5])) : "";
      std::string status = "400", text = "denied", uid;
      if (version == "1.0" && mechanism == "CURVE" && req.size() == 7 && req[6].size() == 32) {
        char z85[41];
        zmq_z85_encode(z85, static_cast<const uint8_t*>(req[6].data()), 32);
        const Principal* p = allow_->find_by_key(z85);
        auto pol = policy_.find(domain);
        if (p == nullptr) {
          text = "key not on the allow-list";
          warn_once(z85, "refused " + address + " on " + domain + ": public key " + z85 + " is not on the allow-list");
        } else if (pol == policy_.end() || !pol->second.contains(p->role)) {
          text = "role not allowed on this endpoint";
          warn_once(std::string(z85) + domain, "refused " + std::string(role_name(p->role)) + " " + p->name + " from " +
                                                   address + " on " + domain + ": role not allowed there");
        } else {
          status = "200";
          text = "OK";
          uid = user_id(*p);
          spdlog::info("zap: accepted {} from {} on {}", uid, address, domain);
        }
      } else {
        text = "only CURVE is accepted";
        warn_once(address + mechanism, "refused " + address + " on " + domain + ": mechanism '" + mechanism + "'");
      }
      (status == "200" ? accepted_ : refused_).fetch_add(1);
      std::array<std::string_view, 6> rep{"1.0", request_id, status, text, uid, ""};
      zap.set(zmq::sockopt::sndtimeo, 1000);
      for (size_t i = 0; i < rep.size(); ++i)
        zap.send(zmq::const_buffer(rep[i].data(), rep[i].size()),
                 i + 1 < rep.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
  } catch (const std::exception& e) {
    spdlog::error("zap: handler failed: {}", e.what());
  }
  dead_ = true;
  death_.notify();
  spdlog::info("zap: handler stopped; CURVE endpoints must not serve any longer");
}

}  // namespace morph::msg
