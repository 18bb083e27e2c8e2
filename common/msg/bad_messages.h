#pragma once
// Per-peer counters of dropped messages. A bad message is counted and dropped; the warning about a peer
// is logged at most once per minute, with how many were dropped since the last warning. Single-threaded:
// owned by the thread that owns the receiving socket.

#include <cstdint>
#include <map>
#include <string>

namespace morph::msg {

class BadMessageCounters {
 public:
  explicit BadMessageCounters(uint64_t log_every_ns = 60'000'000'000ULL) : log_every_ns_(log_every_ns) {}
  // Counts one bad message from peer; logs a warning if none was logged for it within the period.
  void record(const std::string& peer, const std::string& reason, uint64_t now_ns);
  uint64_t count(const std::string& peer) const;
  uint64_t total() const { return total_; }
  uint64_t warnings_logged() const { return warnings_; }

 private:
  struct PeerState {
    uint64_t count = 0;
    uint64_t since_last_log = 0;
    uint64_t last_log_ns = 0;
    bool logged = false;
  };
  uint64_t log_every_ns_;
  std::map<std::string, PeerState> peers_;
  uint64_t total_ = 0;
  uint64_t warnings_ = 0;
};

}  // namespace morph::msg
