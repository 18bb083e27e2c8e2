#include "common/clock.h"

#include <chrono>

namespace morph {

namespace {
class RealClock final : public Clock {
 public:
  uint64_t wall_ns() const override {
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
  }
  uint64_t mono_ns() const override {
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count());
  }
  bool wait_until(std::unique_lock<std::mutex>& lk, std::condition_variable& cv, uint64_t deadline_mono_ns,
                  const std::function<bool()>& stop) override {
    const std::chrono::steady_clock::time_point at{std::chrono::nanoseconds(deadline_mono_ns)};
    return cv.wait_until(lk, at, stop);
  }
};
}  // namespace

Clock& real_clock() {
  static RealClock clock;
  return clock;
}

}  // namespace morph
