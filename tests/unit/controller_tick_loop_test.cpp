// TickLoop on simulated time (ManualClock): ticks fall tick_offset after each wall-clock multiple of the
// tick, at least half a tick apart on the monotonic clock whatever the wall clock does, and stop() ends it.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <vector>

#include "controller/tick/tick_loop.h"
#include "tests/support/manual_clock.h"
#include "tests/support/wait.h"

namespace morph::controller {
namespace {

using namespace std::chrono_literals;
constexpr uint64_t kSec = 1'000'000'000ULL;

struct Stamp {
  uint64_t wall, mono;
};

// Runs a loop until it has ticked n times, calling `during(i)` at tick i (0-based) to move the clock.
std::vector<Stamp> run_ticks(test::ManualClock& clock, TickLoop::Cadence cadence, size_t n,
                             std::function<void(size_t)> during = {}) {
  std::mutex mu;
  std::vector<Stamp> stamps;
  std::atomic<bool> done{false};
  TickLoop loop(clock, cadence, [&] {
    std::lock_guard lk(mu);
    if (stamps.size() >= n) return;
    stamps.push_back({clock.wall_ns(), clock.mono_ns()});
    if (during) during(stamps.size() - 1);
    if (stamps.size() == n) done = true;
  });
  loop.start();
  EXPECT_TRUE(test::wait_until([&] { return done.load(); }, 5000ms));
  loop.stop();
  std::lock_guard lk(mu);
  return stamps;
}

TEST(TickLoop, TicksFallOffsetAfterEachWallClockMultiple) {
  test::ManualClock clock(1000 * kSec + 123'456'789, 50 * kSec);  // between two boundaries
  auto s = run_ticks(clock, {1s, 50ms}, 5);
  ASSERT_EQ(s.size(), 5u);
  EXPECT_EQ(s[0].wall, 1001 * kSec + 50'000'000);  // the next boundary + offset, not a tick from start
  for (size_t i = 1; i < s.size(); ++i) {
    EXPECT_EQ(s[i].wall % kSec, 50'000'000u) << i;
    EXPECT_EQ(s[i].wall - s[i - 1].wall, kSec) << i;
    EXPECT_EQ(s[i].mono - s[i - 1].mono, kSec) << i;
  }
}

TEST(TickLoop, OffsetAndPeriodAreTheCadences) {
  test::ManualClock clock(2000 * kSec, 1 * kSec);  // exactly on a boundary: the first tick is offset later
  auto s = run_ticks(clock, {500ms, 120ms}, 4);
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0].wall, 2000 * kSec + 120'000'000);
  for (size_t i = 0; i < s.size(); ++i) EXPECT_EQ(s[i].wall % 500'000'000, 120'000'000u) << i;
}

TEST(TickLoop, AWallClockSteppedBackCannotClearTwiceInARow) {
  test::ManualClock clock(1000 * kSec, 10 * kSec);
  // Right after tick 1 the wall clock goes back 30 ms: the boundary just cleared is 30 ms ahead again on the
  // wall clock, but the next tick waits until half a tick has passed on the monotonic clock, so it is the
  // boundary after (1.03 s later).
  auto s = run_ticks(clock, {1s, 50ms}, 3, [&](size_t i) {
    if (i == 1) clock.step_wall(-30ms);
  });
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[2].mono - s[1].mono, kSec + 30'000'000);
  EXPECT_EQ(s[2].wall, s[1].wall + kSec);  // the same wall-clock cadence, one tick on
}

TEST(TickLoop, AWallClockSteppedForwardSkipsTicks) {
  test::ManualClock clock(1000 * kSec, 10 * kSec);
  auto s = run_ticks(clock, {1s, 50ms}, 3, [&](size_t i) {
    if (i == 1) clock.step_wall(5s);  // like a stalled controller: the ticks in between are not made up
  });
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[2].wall - s[1].wall, 6 * kSec);
  EXPECT_EQ(s[2].mono - s[1].mono, kSec);
}

TEST(TickLoop, NextTickWithoutALastOneIsTheNextBoundary) {
  test::ManualClock clock(1000 * kSec + 10'000'000, 7 * kSec);
  TickLoop loop(clock, {1s, 50ms}, [] {});
  EXPECT_EQ(loop.next_tick_mono_ns(std::nullopt), 7 * kSec + 40'000'000);
  // A tick 100 ms ago (monotonic): the next boundary is 40 ms away, but half a tick must pass first, so the
  // one after it.
  EXPECT_EQ(loop.next_tick_mono_ns(7 * kSec - 100'000'000), 7 * kSec + 1'040'000'000);
}

TEST(TickLoop, StopEndsTheLoopAndItDoesNotStartAgain) {
  test::ManualClock clock;
  std::atomic<int> ticks{0};
  TickLoop loop(clock, {1s, 0ms}, [&] { ++ticks; });
  loop.start();
  ASSERT_TRUE(test::wait_until([&] { return ticks.load() > 0; }, 5000ms));
  loop.stop();
  const int after_stop = ticks.load();
  loop.start();
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(ticks.load(), after_stop);
}

}  // namespace
}  // namespace morph::controller
