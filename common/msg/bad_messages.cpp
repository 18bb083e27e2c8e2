#include "common/msg/bad_messages.h"

#include <spdlog/spdlog.h>

#include "common/printable.h"

namespace morph::msg {

void BadMessageCounters::record(const std::string& peer, const std::string& reason, uint64_t now_ns) {
  if (peers_.size() > 10000 && !peers_.contains(peer)) peers_.clear();  // bound memory under address churn
  auto& p = peers_[peer];
  ++p.count;
  ++p.since_last_log;
  ++total_;
  if (!p.logged || now_ns - p.last_log_ns >= log_every_ns_) {
    // Both may carry bytes the peer chose (a routing id, a name it sent): escaped, one line each.
    spdlog::warn("dropped bad message from {}: {} ({} dropped from this peer since the last warning, {} in total)",
                 peer.empty() ? "unknown peer" : printable(peer), printable(reason), p.since_last_log, p.count);
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
