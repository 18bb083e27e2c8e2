#include "common/msg/bad_messages.h"

#include <spdlog/spdlog.h>

namespace morph::msg {

void BadMessageCounters::record(const std::string& peer, const std::string& reason, uint64_t now_ns) {
  if (peers_.size() > 10000 && !peers_.contains(peer)) peers_.clear();  // bound memory under address churn
  auto& p = peers_[peer];
  ++p.count;
  ++p.since_last_log;
  ++total_;
  if (!p.logged || now_ns - p.last_log_ns >= log_every_ns_) {
    spdlog::warn("dropped bad message from {}: {} ({} dropped from this peer since the last warning, {} in total)",
                 peer.empty() ? "unknown peer" : peer, reason, p.since_last_log, p.count);
    p.logged = true;
    p.last_log_ns = now_ns;
    p.since_last_log = 0;
    ++warnings_;
  }
}

uint64_t BadMessageCounters::count(const std::string& peer) const {
  auto it = peers_.find(peer);
  return it == peers_.end() ? 0 : it->second.count;
}

}  // namespace morph::msg
