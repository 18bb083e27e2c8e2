#include "controller/tick/tick_loop.h"

#include "common/cadence.h"

namespace morph::controller {

TickLoop::TickLoop(Clock& clock, Cadence cadence, std::function<void()> on_tick)
    : clock_(clock), cadence_(cadence), on_tick_(std::move(on_tick)) {}

TickLoop::~TickLoop() {
  stop();
}

void TickLoop::start() {
  std::lock_guard lk(mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { run(); });
}

void TickLoop::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

uint64_t TickLoop::next_tick_mono_ns(std::optional<uint64_t> last_mono_ns) const {
  const auto period = static_cast<uint64_t>(cadence_.tick.count());
  const auto offset = static_cast<uint64_t>(cadence_.offset.count());
  const uint64_t mono = clock_.mono_ns();
  const uint64_t wall = clock_.wall_ns();
  // The half-tick guard is kept on the monotonic clock: a wall clock stepped back cannot bring it closer.
  uint64_t gap = 0;
  if (last_mono_ns && *last_mono_ns + period / 2 > mono) gap = *last_mono_ns + period / 2 - mono;
  return mono + (next_aligned_ns(wall, period, offset, gap) - wall);
}

void TickLoop::run() {
  std::optional<uint64_t> last;
  std::unique_lock lk(mu_);
  for (;;) {
    const uint64_t at = next_tick_mono_ns(last);
    if (clock_.wait_until(lk, cv_, at, [this] { return stopping_; })) break;
    last = clock_.mono_ns();
    lk.unlock();
    on_tick_();
    lk.lock();
  }
}

}  // namespace morph::controller
