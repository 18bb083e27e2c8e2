#pragma once
// ManualClock: simulated time for unit tests of components that take a morph::Clock (common/clock.h).
// Time moves only when the test moves it (advance, step_wall) or when a component waits: nobody else moves
// time in a unit test, so a wait jumps the clock straight to its deadline and returns. A tick loop on it
// runs as fast as the CPU allows, and each tick falls exactly where the cadence puts it.

#include <atomic>
#include <chrono>
#include <cstdint>

#include "common/clock.h"

namespace morph::test {

class ManualClock final : public Clock {
 public:
  // Defaults: a wall clock well past the epoch (2026-01-01), a monotonic clock at one hour.
  explicit ManualClock(uint64_t wall_ns = 1'767'225'600'000'000'000ULL, uint64_t mono_ns = 3'600'000'000'000ULL)
      : wall_(wall_ns), mono_(mono_ns) {}

  uint64_t wall_ns() const override { return wall_.load(); }
  uint64_t mono_ns() const override { return mono_.load(); }
  bool wait_until(std::unique_lock<std::mutex>& /*lk*/, std::condition_variable& /*cv*/, uint64_t deadline_mono_ns,
                  const std::function<bool()>& stop) override {
    if (stop()) return true;
    if (uint64_t now = mono_.load(); deadline_mono_ns > now) advance(std::chrono::nanoseconds(deadline_mono_ns - now));
    return stop();
  }

  // Both clocks move on by d.
  void advance(std::chrono::nanoseconds d) {
    wall_ += static_cast<uint64_t>(d.count());
    mono_ += static_cast<uint64_t>(d.count());
  }
  // The wall clock alone is stepped (NTP, an operator), by d either way; the monotonic clock does not move.
  void step_wall(std::chrono::nanoseconds d) { wall_ += static_cast<uint64_t>(d.count()); }
  void set_wall(uint64_t wall_ns) { wall_ = wall_ns; }

 private:
  std::atomic<uint64_t> wall_, mono_;
};

}  // namespace morph::test
