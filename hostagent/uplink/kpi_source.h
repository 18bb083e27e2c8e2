#pragma once
// KpiSource: where the uplink gets each interval's per-VM KPIs. The BPF probes implement it (they read
// their per-CPU maps' deltas once per interval); until then QueuedKpiSource lets a caller feed batches.
// collect() is called on the uplink thread once per interval and should return quickly.

#include <deque>
#include <mutex>
#include <vector>

#include "common/error.h"
#include "common/kpi/vm_kpis.h"

namespace morph::agent {

class KpiSource {
 public:
  virtual ~KpiSource() = default;
  // The KPIs of the interval just ended (interval_ns long). An empty vector publishes an empty report,
  // which still advances the sequence; an Error skips this interval (logged).
  virtual Result<std::vector<kpi::VmKpis>> collect(uint64_t interval_ns) = 0;
};

// Fed by its caller (thread-safe): each collect() returns the oldest pushed batch, or nothing if none is
// queued (the interval is then skipped, not published empty).
class QueuedKpiSource final : public KpiSource {
 public:
  void push(std::vector<kpi::VmKpis> batch) {
    std::lock_guard lk(mu_);
    if (queue_.size() >= 64) queue_.pop_front();  // a stalled uplink must not grow memory without bound
    queue_.push_back(std::move(batch));
  }
  Result<std::vector<kpi::VmKpis>> collect(uint64_t) override {
    std::lock_guard lk(mu_);
    if (queue_.empty()) return Error(Errc::unavailable, "no KPIs queued");
    auto b = std::move(queue_.front());
    queue_.pop_front();
    return b;
  }

 private:
  std::mutex mu_;
  std::deque<std::vector<kpi::VmKpis>> queue_;
};

}  // namespace morph::agent
