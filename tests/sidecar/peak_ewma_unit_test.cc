// PeakEwma (sidecar/internal/peak_ewma.h): the latency estimate of the peak-EWMA balancer.
#include "sidecar/internal/peak_ewma.h"

#include <gtest/gtest.h>

namespace curfew::sidecar {
namespace {

using namespace std::chrono_literals;

constexpr double kMs = 1e6;  // nanoseconds

TEST(PeakEwma, StartsUnmeasuredAtZero) {
  PeakEwma e;
  EXPECT_FALSE(e.measured());
  EXPECT_EQ(e.estimate_ns(rt::TimePoint{} + 1s), 0);
}

TEST(PeakEwma, AHigherObservationReplacesTheEstimateAtOnce) {
  PeakEwma e(10s);
  const rt::TimePoint t0{};
  e.observe(1ms, t0);
  e.observe(20ms, t0 + 1ms);
  EXPECT_NEAR(e.estimate_ns(t0 + 1ms), 20 * kMs, 1);
}

TEST(PeakEwma, ALowerObservationMovesItByTheTimeSinceTheLast) {
  PeakEwma e(10s);
  const rt::TimePoint t0{};
  e.observe(20ms, t0);
  // 10 s later (one decay period): the estimate decayed to 20/e, then the 1 ms observation
  // weighs 1 - 1/e.
  e.observe(1ms, t0 + 10s);
  const double decayed = 20 * kMs / std::exp(1.0);
  const double expected = decayed / std::exp(1.0) + 1 * kMs * (1 - 1 / std::exp(1.0));
  EXPECT_NEAR(e.estimate_ns(t0 + 10s), expected, 1e3);
  // Right after another observation at once: barely moved.
  e.observe(1ms, t0 + 10s);
  EXPECT_NEAR(e.estimate_ns(t0 + 10s), expected, 1e3);
}

TEST(PeakEwma, AnUnobservedEstimateDecaysTowardsZero) {
  PeakEwma e(10s);
  const rt::TimePoint t0{};
  e.observe(20ms, t0);
  EXPECT_NEAR(e.estimate_ns(t0 + 10s), 20 * kMs / std::exp(1.0), 1e3);
  EXPECT_LT(e.estimate_ns(t0 + 40s), 0.5 * kMs);  // a slow endpoint is tried again later
}

}  // namespace
}  // namespace curfew::sidecar
