#include "common/cadence.h"

#include <gtest/gtest.h>

namespace morph {
namespace {

constexpr uint64_t kMs = 1'000'000;

TEST(Cadence, NextBoundaryIsStrictlyAfterNow) {
  // 500 ms period, no offset: boundaries at ...000 and ...500 ms.
  EXPECT_EQ(next_aligned_ns(10'000 * kMs, 500 * kMs, 0), 10'500 * kMs);  // on a boundary: the next one
  EXPECT_EQ(next_aligned_ns(10'001 * kMs, 500 * kMs, 0), 10'500 * kMs);
  EXPECT_EQ(next_aligned_ns(10'499 * kMs, 500 * kMs, 0), 10'500 * kMs);
  EXPECT_EQ(next_aligned_ns(10'500 * kMs, 500 * kMs, 0), 11'000 * kMs);
}

TEST(Cadence, OffsetShiftsThePhase) {
  // 1 s ticks 50 ms after each second.
  EXPECT_EQ(next_aligned_ns(7'000 * kMs, 1'000 * kMs, 50 * kMs), 7'050 * kMs);
  EXPECT_EQ(next_aligned_ns(7'049 * kMs, 1'000 * kMs, 50 * kMs), 7'050 * kMs);
  EXPECT_EQ(next_aligned_ns(7'050 * kMs, 1'000 * kMs, 50 * kMs), 8'050 * kMs);
  EXPECT_EQ(next_aligned_ns(7'999 * kMs, 1'000 * kMs, 50 * kMs), 8'050 * kMs);
  // An offset of a period or more wraps.
  EXPECT_EQ(next_aligned_ns(7'000 * kMs, 1'000 * kMs, 1'050 * kMs), 7'050 * kMs);
}

TEST(Cadence, MinimumGapSkipsABoundaryTooClose) {
  // 300 ms before the boundary with a 250 ms gap: that boundary; 200 ms before: the one after.
  EXPECT_EQ(next_aligned_ns(9'700 * kMs, 1'000 * kMs, 0, 250 * kMs), 10'000 * kMs);
  EXPECT_EQ(next_aligned_ns(9'800 * kMs, 1'000 * kMs, 0, 250 * kMs), 11'000 * kMs);
}

TEST(Cadence, NearTheEpochDoesNotWrap) {
  EXPECT_EQ(next_aligned_ns(0, 500 * kMs, 0), 500 * kMs);
  EXPECT_EQ(next_aligned_ns(10 * kMs, 500 * kMs, 50 * kMs), 50 * kMs);
  EXPECT_EQ(next_aligned_ns(60 * kMs, 500 * kMs, 50 * kMs), 550 * kMs);
}

TEST(Cadence, EveryResultIsOnThePhaseAndWithinOnePeriod) {
  for (uint64_t now = 1'700'000'000'000 * kMs; now < 1'700'000'000'000 * kMs + 3'000 * kMs; now += 7 * kMs + 13) {
    const uint64_t t = next_aligned_ns(now, 500 * kMs, 20 * kMs);
    ASSERT_GT(t, now);
    ASSERT_LE(t - now, 500 * kMs);
    ASSERT_EQ(t % (500 * kMs), 20 * kMs);
  }
}

}  // namespace
}  // namespace morph
