#pragma once
// TickLoop: the market's cadence. One thread calls `on_tick` tick_offset after each wall-clock multiple of
// the tick, where agents end their KPI intervals (common/cadence.h): a rescue raised by the reports of the
// interval just ended is cleared tick_offset later instead of up to a whole tick later. Two ticks are at
// least half a tick apart on the monotonic clock, so a wall clock stepped back cannot clear (and charge)
// twice in a row; a step forward skips ticks, as a stalled controller does.
//
// It owns the thread and the timing, nothing else: what a tick does is `on_tick`'s (the runtime's
// MarketService: fleet feed, then MarketTick). It reads time only from the Clock it is given.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include "common/clock.h"

namespace morph::controller {

class TickLoop {
 public:
  struct Cadence {
    std::chrono::nanoseconds tick = std::chrono::seconds(1);
    std::chrono::nanoseconds offset = std::chrono::milliseconds(50);  // shorter than the tick
  };

  TickLoop(Clock& clock, Cadence cadence, std::function<void()> on_tick);
  ~TickLoop();
  TickLoop(const TickLoop&) = delete;
  TickLoop& operator=(const TickLoop&) = delete;

  void start();  // a second call does nothing
  void stop();   // joins the thread; the loop does not start again

  // The monotonic instant of the next tick, read from the clock now, when the last one fell at
  // `last_mono_ns` (nullopt: none yet).
  uint64_t next_tick_mono_ns(std::optional<uint64_t> last_mono_ns) const;

 private:
  void run();

  Clock& clock_;
  const Cadence cadence_;
  const std::function<void()> on_tick_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
};

}  // namespace morph::controller
