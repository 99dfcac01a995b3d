// RetryBudget (sidecar/internal/retry.h): retries may be at most ratio x calls + kMinRetries, both
// counts decaying with a 10 s time constant. Only the budget's arithmetic: fixed time points, no
// clock.
//
// RetryBudget exposes no counters, so each test measures the budget by acquiring until refused;
// a refused try_acquire() counts nothing, so draining leaves the counts as they were plus the
// retries granted.
#include <chrono>
#include <cmath>

#include <gtest/gtest.h>

#include "sidecar/internal/retry.h"

namespace curfew::sidecar {
namespace {

using namespace std::chrono_literals;

const rt::TimePoint kT0 = rt::TimePoint{} + 1000h;

void record_calls(RetryBudget& budget, int n, rt::TimePoint now) {
  for (int i = 0; i < n; ++i) budget.record_call(now);
}

// Acquires retries at `now` until refused (at most `limit`); returns how many were granted.
int drain(RetryBudget& budget, rt::TimePoint now, int limit = 100000) {
  int granted = 0;
  while (granted < limit && budget.try_acquire(now)) ++granted;
  return granted;
}

TEST(RetryBudget, MinRetriesIsThree) { EXPECT_EQ(RetryBudget::kMinRetries, 3.0); }

TEST(RetryBudget, NoCallsOnlyTheFloor) {
  RetryBudget budget(0.2);
  EXPECT_TRUE(budget.try_acquire(kT0));
  EXPECT_TRUE(budget.try_acquire(kT0));
  EXPECT_TRUE(budget.try_acquire(kT0));   // the third: exactly kMinRetries
  EXPECT_FALSE(budget.try_acquire(kT0));  // the fourth does not fit
  EXPECT_FALSE(budget.try_acquire(kT0));
}

TEST(RetryBudget, RatioZeroOnlyTheFloor) {
  RetryBudget budget(0.0);
  record_calls(budget, 1000, kT0);
  EXPECT_EQ(drain(budget, kT0), 3);
}

// 0.5 x 10 calls + 3 = 8: the 8th retry just fits (retries == limit), the 9th does not.
TEST(RetryBudget, ExactBoundaryRetryThatJustFits) {
  RetryBudget budget(0.5);
  record_calls(budget, 10, kT0);
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(budget.try_acquire(kT0)) << "retry " << i + 1;
  EXPECT_TRUE(budget.try_acquire(kT0)) << "the 8th retry reaches the limit exactly and fits";
  EXPECT_FALSE(budget.try_acquire(kT0)) << "the 9th retry is over 0.5 x 10 + 3";
}

// A fractional allowance rounds down: 0.25 x 9 + 3 = 5.25 -> 5 retries.
TEST(RetryBudget, FractionalAllowanceRoundsDown) {
  RetryBudget budget(0.25);
  record_calls(budget, 9, kT0);
  EXPECT_EQ(drain(budget, kT0), 5);
}

// One more call adds `ratio` of a retry: at 0.25, four calls make room for exactly one more.
TEST(RetryBudget, EachCallAddsRatioOfARetry) {
  RetryBudget budget(0.25);
  record_calls(budget, 8, kT0);  // 0.25 x 8 + 3 = 5
  EXPECT_EQ(drain(budget, kT0), 5);
  record_calls(budget, 3, kT0);  // 0.25 x 11 + 3 = 5.75: still 5
  EXPECT_FALSE(budget.try_acquire(kT0));
  record_calls(budget, 1, kT0);  // 0.25 x 12 + 3 = 6
  EXPECT_TRUE(budget.try_acquire(kT0));
  EXPECT_FALSE(budget.try_acquire(kT0));
}

// A refused retry is not counted: two more calls at 0.5 make room for exactly one more.
TEST(RetryBudget, RefusedRetryIsNotCounted) {
  RetryBudget budget(0.5);
  EXPECT_EQ(drain(budget, kT0), 3);
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(budget.try_acquire(kT0));
  record_calls(budget, 2, kT0);  // 0.5 x 2 + 3 = 4
  EXPECT_TRUE(budget.try_acquire(kT0));
  EXPECT_FALSE(budget.try_acquire(kT0));
}

TEST(RetryBudget, SetRatioRaisesAndLowersTheLimit) {
  RetryBudget budget(0.25);
  record_calls(budget, 20, kT0);  // 0.25 x 20 + 3 = 8
  EXPECT_EQ(drain(budget, kT0), 8);
  budget.set_ratio(0.5);  // 0.5 x 20 + 3 = 13: 5 more
  EXPECT_EQ(drain(budget, kT0), 5);
  budget.set_ratio(0.0);  // 3 < 13 already granted: none
  EXPECT_FALSE(budget.try_acquire(kT0));
  record_calls(budget, 100, kT0);
  EXPECT_FALSE(budget.try_acquire(kT0)) << "at ratio 0 calls add nothing";
  budget.set_ratio(0.1);  // 0.1 x 120 + 3 = 15: 2 more
  EXPECT_EQ(drain(budget, kT0), 2);
}

TEST(RetryBudget, ManyCallsAtOnce) {
  RetryBudget budget(0.25);
  record_calls(budget, 100000, kT0);  // 0.25 x 100000 + 3
  EXPECT_EQ(drain(budget, kT0), 25003);
}

// Steady traffic: after each call one retry is tried. Retry k+1 fits after call n when
// k + 1 <= 0.25 n + 3, so after n >= 4 calls exactly floor(0.25 n + 3) retries were granted.
TEST(RetryBudget, ManyCallsInterleavedWithRetries) {
  RetryBudget budget(0.25);
  int granted = 0;
  for (int n = 1; n <= 1000; ++n) {
    budget.record_call(kT0);
    if (budget.try_acquire(kT0)) ++granted;
    if (n == 1) ASSERT_EQ(granted, 1);
    if (n == 3) ASSERT_EQ(granted, 3);
    if (n == 4) ASSERT_EQ(granted, 4);
    if (n == 5) ASSERT_EQ(granted, 4);
    if (n == 8) ASSERT_EQ(granted, 5);
  }
  EXPECT_EQ(granted, 253);  // floor(0.25 x 1000 + 3)
}

// --- Decay: both counts are multiplied by exp(-dt / 10 s) ---------------------------------------

// 200 calls, no retries, then 10 s later: 0.5 x 200 / e + 3 = 39.79 -> 39 retries (no decay
// would give 103, a 5 s time constant 16, a 10 s half-life 53).
TEST(RetryBudget, CallsDecayByOneOverEAfterTenSeconds) {
  RetryBudget budget(0.5);
  record_calls(budget, 200, kT0);
  const int expected = static_cast<int>(std::floor(0.5 * 200 * std::exp(-1.0) + 3));
  ASSERT_EQ(expected, 39);
  EXPECT_EQ(drain(budget, kT0 + 10s), 39);
}

TEST(RetryBudget, CallsDecayOverOneSecond) {
  RetryBudget budget(0.5);
  record_calls(budget, 200, kT0);
  // 100 x e^-0.1 + 3 = 93.48
  EXPECT_EQ(drain(budget, kT0 + 1s), 93);
}

// Retries decay too: 100 calls and 53 retries (all of 0.5 x 100 + 3) at t0; 10 s later
// calls = 36.79 and retries = 19.50, so one more fits (20.50 <= 21.39) and not two (21.50).
// Were retries not decayed, none would fit.
TEST(RetryBudget, RetriesDecayAlongWithCalls) {
  RetryBudget budget(0.5);
  record_calls(budget, 100, kT0);
  EXPECT_EQ(drain(budget, kT0), 53);
  const double k = std::exp(-1.0);
  ASSERT_LE(53 * k + 1, 0.5 * 100 * k + 3);
  ASSERT_GT(53 * k + 2, 0.5 * 100 * k + 3);
  EXPECT_EQ(drain(budget, kT0 + 10s), 1);
}

// After 20 s: calls 13.53, retries 7.17 -> limit 9.77: 2 more (8.17, 9.17).
TEST(RetryBudget, DecayCompoundsOverTwentySeconds) {
  RetryBudget budget(0.5);
  record_calls(budget, 100, kT0);
  EXPECT_EQ(drain(budget, kT0), 53);
  EXPECT_EQ(drain(budget, kT0 + 20s), 2);
}

// Decay in steps equals decay in one go: nine refused acquires 1 s apart (refusals count nothing
// but do decay), then the 10 s step, leave the budget where one jump of 10 s does.
TEST(RetryBudget, DecayInStepsEqualsDecayAtOnce) {
  RetryBudget stepped(0.5);
  record_calls(stepped, 100, kT0);
  EXPECT_EQ(drain(stepped, kT0), 53);
  stepped.set_ratio(0.0);  // limit 3 while retries stay >= 53 e^-0.9 = 21.5: every try refused
  for (int i = 1; i <= 9; ++i) EXPECT_FALSE(stepped.try_acquire(kT0 + i * 1s)) << i << " s";
  stepped.set_ratio(0.5);
  EXPECT_EQ(drain(stepped, kT0 + 10s), 1);  // as in RetriesDecayAlongWithCalls
}

// A long idle period forgets everything: only the floor is left.
TEST(RetryBudget, LongIdleLeavesOnlyTheFloor) {
  RetryBudget budget(0.5);
  record_calls(budget, 1000, kT0);
  EXPECT_EQ(drain(budget, kT0), 503);
  EXPECT_EQ(drain(budget, kT0 + 10min), 3);
}

// Calls and retries at the same instant do not decay each other.
TEST(RetryBudget, NoDecayWithinTheSameInstant) {
  RetryBudget budget(0.5);
  record_calls(budget, 10, kT0 + 5s);
  EXPECT_EQ(drain(budget, kT0 + 5s), 8);
}

}  // namespace
}  // namespace curfew::sidecar
