#pragma once
// Clock: the time a component reads and waits on, passed in rather than read from std::chrono, so the
// component runs on simulated time in its unit tests (tests/support/manual_clock.h) and on the real clocks
// in production (real_clock()). It owns no thread and never decides anything; it only tells the time and
// waits.
//
// Two clocks, as the controller needs both: the wall clock (ns since the epoch: tick cadence, timestamps
// on the wire) and a monotonic one (deadlines and durations, which a stepped wall clock must not move).
// The agent's ShiftEngine takes a plain `std::function<TimePoint()>` instead: it reads the wall clock only
// and never waits.

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>

namespace morph {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual uint64_t wall_ns() const = 0;  // since the epoch
  virtual uint64_t mono_ns() const = 0;  // since an arbitrary origin; never goes back
  // Waits on `cv` (with `lk` held on entry and on return) until mono_ns() reaches `deadline_mono_ns` or
  // `stop()` holds; whoever makes stop() true does so under lk's mutex and notifies cv. Returns stop().
  virtual bool wait_until(std::unique_lock<std::mutex>& lk, std::condition_variable& cv, uint64_t deadline_mono_ns,
                          const std::function<bool()>& stop) = 0;
};

// std::chrono::system_clock and steady_clock. Shared by every user; stateless.
Clock& real_clock();

}  // namespace morph
