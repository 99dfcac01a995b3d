// Conformance of the runtime's deadline scopes with asyncio.timeout / asyncio.timeout_at (mirrors
// CPython's Lib/test/test_asyncio/test_timeouts.py) and with Trio's shielded cancel scopes.
// One test per item 30–47 of docs/runtime-conformance.md, named after the item.
//
// Timing: only generous bounds (a deadline of tens of milliseconds fires well before 2 s, a 10 s
// sleep is "interrupted" if the scope ends within 2 s), never precise durations.
//
// Coroutine lambdas that capture by reference are only used where they are awaited in the same
// full-expression (the closure then outlives the coroutine); spawned tasks take parameters.
#include <chrono>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/errors.h"
#include "runtime/runtime.h"
#include "runtime/shield.h"
#include "runtime/sleep.h"
#include "runtime/task.h"
#include "runtime/task_group.h"
#include "runtime/task_state.h"
#include "runtime/timeout.h"

namespace rt = curfew::rt;
using namespace std::chrono_literals;
using rt::Clock;
using rt::Duration;
using rt::Task;
using rt::TimePoint;

namespace {

// Every test must leave no coroutine frame behind.
class TimeoutConformance : public ::testing::Test {
 protected:
  void SetUp() override { frames_at_start_ = rt::live_frames(); }
  void TearDown() override {
    EXPECT_EQ(rt::live_frames(), frames_at_start_) << "coroutine frames leaked by the test";
  }

 private:
  long frames_at_start_ = 0;
};

Task<void> nap(Duration d) { co_await rt::sleep(d); }

Task<int> nap_then(Duration d, int value) {
  co_await rt::sleep(d);
  co_return value;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// --- 30 ---------------------------------------------------------------------------------------

TEST_F(TimeoutConformance, T30_BodyOutlastingScopeRaisesTimeoutErrorAndScopeReportsExpired) {
  bool timed_out = false;
  bool expired = false;
  bool helper_timed_out = false;
  Duration elapsed{};
  rt::run([&]() -> Task<void> {
    const TimePoint t0 = Clock::now();
    rt::Timeout scope = rt::Timeout::after(50ms);
    try {
      co_await scope.run(nap(10s));
    } catch (const rt::TimeoutError&) {
      timed_out = true;
    }
    elapsed = Clock::now() - t0;
    expired = scope.expired();

    // The functional form (asyncio.wait_for-like) behaves the same.
    try {
      co_await rt::timeout(50ms, nap(10s));
    } catch (const rt::TimeoutError&) {
      helper_timed_out = true;
    }
  }());
  EXPECT_TRUE(timed_out);
  EXPECT_TRUE(expired);
  EXPECT_LT(elapsed, 2s);
  EXPECT_TRUE(helper_timed_out);
}

// --- 31 ---------------------------------------------------------------------------------------

TEST_F(TimeoutConformance, T31_AbsoluteDeadlineRaisesTimeoutErrorAndReportsItsDeadline) {
  bool timed_out = false;
  bool expired = false;
  bool helper_timed_out = false;
  TimePoint deadline{};
  std::optional<TimePoint> when_before, when_inside, when_after;
  rt::run([&]() -> Task<void> {
    deadline = Clock::now() + 50ms;
    rt::Timeout scope = rt::Timeout::at(deadline);
    when_before = scope.when();
    try {
      co_await scope.run([&]() -> Task<void> {
        when_inside = scope.when();
        co_await rt::sleep(10s);
      }());
    } catch (const rt::TimeoutError&) {
      timed_out = true;
    }
    when_after = scope.when();
    expired = scope.expired();

    try {
      co_await rt::deadline(Clock::now() + 50ms, nap(10s));
    } catch (const rt::TimeoutError&) {
      helper_timed_out = true;
    }
  }());
  EXPECT_TRUE(timed_out);
  EXPECT_TRUE(expired);
  EXPECT_EQ(when_before, deadline);
  EXPECT_EQ(when_inside, deadline);
  EXPECT_EQ(when_after, deadline);
  EXPECT_TRUE(helper_timed_out);
}

// --- 32 ---------------------------------------------------------------------------------------

TEST_F(TimeoutConformance, T32_NestedSameDeadlineOnlyOutermostRaisesTimeout) {
  bool inner_let_cancellation_through = false;
  bool inner_raised_timeout = false;
  bool outer_raised_timeout = false;
  bool outer_let_cancellation_through = false;
  bool outer_expired = false, inner_expired = false;
  rt::run([&]() -> Task<void> {
    const TimePoint deadline = Clock::now() + 50ms;
    rt::Timeout outer = rt::Timeout::at(deadline);
    rt::Timeout inner = rt::Timeout::at(deadline);
    try {
      co_await outer.run([&]() -> Task<void> {
        try {
          co_await inner.run(nap(10s));
        } catch (const rt::CancelledError&) {
          inner_let_cancellation_through = true;
          throw;
        } catch (const rt::TimeoutError&) {
          inner_raised_timeout = true;
          throw;
        }
      }());
    } catch (const rt::TimeoutError&) {
      outer_raised_timeout = true;
    } catch (const rt::CancelledError&) {
      outer_let_cancellation_through = true;
    }
    outer_expired = outer.expired();
    inner_expired = inner.expired();
  }());
  EXPECT_TRUE(inner_let_cancellation_through);
  EXPECT_FALSE(inner_raised_timeout);
  EXPECT_TRUE(outer_raised_timeout);
  EXPECT_FALSE(outer_let_cancellation_through);
  EXPECT_TRUE(outer_expired);
  EXPECT_TRUE(inner_expired);
}

// --- 33 ---------------------------------------------------------------------------------------

TEST_F(TimeoutConformance, T33_BodySeesCancellationAndCleanupRunsBeforeTimeoutError) {
  std::vector<std::string> events;
  struct Cleanup {
    std::vector<std::string>& events;
    ~Cleanup() { events.push_back("body cleanup (destructor)"); }
  };
  rt::run([&]() -> Task<void> {
    try {
      co_await rt::timeout(50ms, [&]() -> Task<void> {
        Cleanup guard{events};
        std::exception_ptr cancellation;
        try {
          co_await rt::sleep(10s);
          events.push_back("body finished its sleep");
        } catch (const rt::CancelledError&) {
          events.push_back("body saw CancelledError");
          cancellation = std::current_exception();
        }
        // Cleanup may await before the cancellation is re-raised.
        co_await rt::sleep(1ms);
        events.push_back("body cleanup awaited");
        if (cancellation) std::rethrow_exception(cancellation);
      }());
      events.push_back("no error reached the caller");
    } catch (const rt::TimeoutError&) {
      events.push_back("caller got TimeoutError");
    }
  }());
  const std::vector<std::string> expected = {"body saw CancelledError", "body cleanup awaited",
                                             "body cleanup (destructor)",
                                             "caller got TimeoutError"};
  EXPECT_EQ(events, expected);
}

// --- 34 ---------------------------------------------------------------------------------------

TEST_F(TimeoutConformance, T34_ScopeThatDoesNotExpireReportsNotExpiredAndFutureDeadline) {
  int value = 0;
  bool expired = true;
  std::optional<TimePoint> when;
  TimePoint after_exit{};
  rt::run([&]() -> Task<void> {
    rt::Timeout scope = rt::Timeout::after(10s);
    value = co_await scope.run(nap_then(10ms, 7));
    after_exit = Clock::now();
    expired = scope.expired();
    when = scope.when();
  }());
  EXPECT_EQ(value, 7);
  EXPECT_FALSE(expired);
  ASSERT_TRUE(when.has_value());
  EXPECT_GT(*when, after_exit);
}

// --- 35 ---------------------------------------------------------------------------------------

TEST_F(TimeoutConformance, T35_DisabledScopeNeverFiresAndReportsNoDeadline) {
  bool completed_never = false, completed_nullopt = false;
  bool expired_never = true, expired_nullopt = true;
  std::optional<TimePoint> when_never = Clock::now(), when_nullopt = Clock::now();
  std::optional<TimePoint> task_deadline_inside = Clock::now();
  rt::run([&]() -> Task<void> {
    rt::Timeout never = rt::Timeout::never();
    co_await never.run([&]() -> Task<void> {
      task_deadline_inside = (co_await rt::this_task{}).deadline();
      co_await rt::sleep(50ms);
      completed_never = true;
    }());
    expired_never = never.expired();
    when_never = never.when();

    rt::Timeout disabled(std::nullopt);
    co_await disabled.run([&]() -> Task<void> {
      co_await rt::sleep(50ms);
      completed_nullopt = true;
    }());
    expired_nullopt = disabled.expired();
    when_nullopt = disabled.when();
  }());
  EXPECT_TRUE(completed_never);
  EXPECT_TRUE(completed_nullopt);
  EXPECT_FALSE(expired_never);
  EXPECT_FALSE(expired_nullopt);
  EXPECT_EQ(when_never, std::nullopt);
  EXPECT_EQ(when_nullopt, std::nullopt);
  EXPECT_EQ(task_deadline_inside, std::nullopt);
}

// --- 36 ---------------------------------------------------------------------------------------

TEST_F(TimeoutConformance, T36_ZeroOrNegativeTimeoutFiresAtNextSuspensionEvenZeroSleep) {
  bool zero_sleep_zero = false, negative_sleep_zero = false, zero_long_sleep = false;
  bool ran_until_suspension = false, ran_past_suspension = false;
  bool zero_expired = false;
  Duration elapsed{};
  rt::run([&]() -> Task<void> {
    const TimePoint t0 = Clock::now();
    rt::Timeout zero = rt::Timeout::after(0s);
    try {
      co_await zero.run([&]() -> Task<void> {
        ran_until_suspension = true;  // code before the first suspension runs
        co_await rt::sleep(0s);
        ran_past_suspension = true;
      }());
    } catch (const rt::TimeoutError&) {
      zero_sleep_zero = true;
    }
    zero_expired = zero.expired();

    try {
      co_await rt::timeout(-11s, nap(0s));
    } catch (const rt::TimeoutError&) {
      negative_sleep_zero = true;
    }

    try {
      co_await rt::timeout(0s, nap(10s));
    } catch (const rt::TimeoutError&) {
      zero_long_sleep = true;
    }
    elapsed = Clock::now() - t0;
  }());
  EXPECT_TRUE(zero_sleep_zero);
  EXPECT_TRUE(zero_expired);
  EXPECT_TRUE(ran_until_suspension);
  EXPECT_FALSE(ran_past_suspension);
  EXPECT_TRUE(negative_sleep_zero);
  EXPECT_TRUE(zero_long_sleep);
  EXPECT_LT(elapsed, 2s);
}

// --- 37 ---------------------------------------------------------------------------------------

TEST_F(TimeoutConformance, T37_ForeignErrorPassesThroughUnchangedScopeNotExpired) {
  std::string immediate_error, later_error;
  bool immediate_timeout = false, later_timeout = false;
  bool immediate_expired = true, later_expired = true;
  rt::run([&]() -> Task<void> {
    rt::Timeout immediate = rt::Timeout::after(10s);
    try {
      co_await immediate.run([]() -> Task<void> {
        throw std::out_of_range("key not found");
        co_return;
      }());
    } catch (const std::out_of_range& e) {
      immediate_error = e.what();
    } catch (const rt::TimeoutError&) {
      immediate_timeout = true;
    }
    immediate_expired = immediate.expired();

    // Also after the body has suspended inside the scope.
    rt::Timeout later = rt::Timeout::after(10s);
    try {
      co_await later.run([]() -> Task<void> {
        co_await rt::sleep(1ms);
        throw std::out_of_range("key gone");
      }());
    } catch (const std::out_of_range& e) {
      later_error = e.what();
    } catch (const rt::TimeoutError&) {
      later_timeout = true;
    }
    later_expired = later.expired();
  }());
  EXPECT_EQ(immediate_error, "key not found");
  EXPECT_EQ(later_error, "key gone");
  EXPECT_FALSE(immediate_timeout);
  EXPECT_FALSE(later_timeout);
  EXPECT_FALSE(immediate_expired);
  EXPECT_FALSE(later_expired);
}

// --- 38 ---------------------------------------------------------------------------------------

TEST_F(TimeoutConformance, T38_ForeignErrorFromCleanupDuringTimeoutWinsOverTimeout) {
  bool body_saw_cancellation = false;
  std::string error;
  bool timed_out = false;
  rt::run([&]() -> Task<void> {
    try {
      co_await rt::timeout(50ms, [&]() -> Task<void> {
        try {
          co_await rt::sleep(10s);
        } catch (const rt::CancelledError&) {
          body_saw_cancellation = true;
        }
        // `finally: 1/0` in CPython's test_foreign_exception_on_timeout.
        throw std::domain_error("cleanup failed");
      }());
    } catch (const std::domain_error& e) {
      error = e.what();
    } catch (const rt::TimeoutError&) {
      timed_out = true;
    }
  }());
  EXPECT_TRUE(body_saw_cancellation);
  EXPECT_EQ(error, "cleanup failed");
  EXPECT_FALSE(timed_out);
}

// --- 39 ---------------------------------------------------------------------------------------

struct ScopedSleeper {
  bool entered = false;
  bool got_timeout = false;
  bool got_cancellation = false;
};

Task<void> sleep_in_scope(rt::Timeout& scope, ScopedSleeper& s) {
  s.entered = true;
  try {
    co_await scope.run(nap(10s));
  } catch (const rt::TimeoutError&) {
    s.got_timeout = true;
    throw;
  } catch (const rt::CancelledError&) {
    s.got_cancellation = true;
    throw;
  }
}

TEST_F(TimeoutConformance, T39_OutsideCancellationBeforeDeadlineStaysCancellationNotExpired) {
  ScopedSleeper sleeper;
  bool child_cancelled = false;
  std::string child_error;
  bool expired = true;
  bool self_cancel_stays_cancellation = false;
  bool self_expired = true;
  Duration elapsed{};
  rt::run([&]() -> Task<void> {
    const TimePoint t0 = Clock::now();
    rt::Timeout scope = rt::Timeout::after(10s);
    rt::TaskHandle<void> child;
    rt::TaskGroup group;
    co_await group.run([&]() -> Task<void> {
      child = group.spawn(sleep_in_scope(scope, sleeper), "sleeper");
      co_await rt::sleep(20ms);
      child.cancel("cancelled from outside");
    }());
    elapsed = Clock::now() - t0;
    child_cancelled = child.cancelled();
    child_error = rt::describe_error(child.error());
    expired = scope.expired();

    // CPython's variant: the task cancels itself inside the scope.
    rt::Timeout self_scope = rt::Timeout::after(10s);
    try {
      co_await self_scope.run([]() -> Task<void> {
        (co_await rt::this_task{}).cancel("self");
        co_await rt::sleep(10s);
      }());
    } catch (const rt::CancelledError&) {
      self_cancel_stays_cancellation = true;
    }
    self_expired = self_scope.expired();
    (co_await rt::this_task{}).uncancel();  // the root task goes on normally
  }());
  EXPECT_TRUE(sleeper.entered);
  EXPECT_TRUE(sleeper.got_cancellation);
  EXPECT_FALSE(sleeper.got_timeout);
  EXPECT_TRUE(child_cancelled);
  EXPECT_EQ(child_error, "cancelled: cancelled from outside");
  EXPECT_FALSE(expired);
  EXPECT_LT(elapsed, 2s);
  EXPECT_TRUE(self_cancel_stays_cancellation);
  EXPECT_FALSE(self_expired);
}

// --- 40 ---------------------------------------------------------------------------------------

struct OwnerAfterTimeout {
  bool timed_out = false;
  int cancelling_after = -1;
  bool cancel_pending_after = true;
  bool later_sleep_completed = false;
};

Task<void> time_out_then_go_on(OwnerAfterTimeout& o) {
  try {
    co_await rt::timeout(10ms, nap(10s));
  } catch (const rt::TimeoutError&) {
    o.timed_out = true;
  }
  rt::TaskState& self = co_await rt::this_task{};
  o.cancelling_after = self.cancelling();
  o.cancel_pending_after = self.cancel_pending();
  co_await rt::sleep(1ms);  // not interrupted: nothing is left pending
  o.later_sleep_completed = true;
}

TEST_F(TimeoutConformance, T40_OwnerTaskNotLeftCancelledAfterTimeoutConverted) {
  OwnerAfterTimeout o;
  bool child_cancelled = true;
  bool child_failed = true;
  rt::run([&]() -> Task<void> {
    rt::TaskHandle<void> child;
    rt::TaskGroup group;
    co_await group.run([&]() -> Task<void> {
      child = group.spawn(time_out_then_go_on(o), "owner");
      co_return;
    }());
    child_cancelled = child.cancelled();
    child_failed = child.error() != nullptr;
  }());
  EXPECT_TRUE(o.timed_out);
  EXPECT_EQ(o.cancelling_after, 0);
  EXPECT_FALSE(o.cancel_pending_after);
  EXPECT_TRUE(o.later_sleep_completed);
  EXPECT_FALSE(child_cancelled);
  EXPECT_FALSE(child_failed);
}

// --- 41 ---------------------------------------------------------------------------------------

TEST_F(TimeoutConformance, T41_InnerFiresWhileLoopBusyOuterStillFiresLaterAndInterruptsNextWait) {
  bool inner_raised = false, outer_raised = false;
  bool outer_expired_when_inner_raised = true;
  bool reached_after_second_wait = false;
  bool inner_expired = false, outer_expired = false;
  TimePoint inner_at{}, outer_at{};
  std::optional<TimePoint> outer_deadline;
  TimePoint t0{};
  rt::run([&]() -> Task<void> {
    t0 = Clock::now();
    rt::Timeout outer = rt::Timeout::after(1s);  // clearly later than the inner one
    rt::Timeout inner = rt::Timeout::after(10ms);
    outer_deadline = outer.when();
    try {
      co_await outer.run([&]() -> Task<void> {
        try {
          co_await inner.run([]() -> Task<void> {
            // The loop is busy (a blocking stretch) past the inner deadline.
            std::this_thread::sleep_for(50ms);
            co_await rt::sleep(10s);
          }());
        } catch (const rt::TimeoutError&) {
          inner_raised = true;
          inner_at = Clock::now();
          outer_expired_when_inner_raised = outer.expired();
        }
        co_await rt::sleep(10s);  // must be interrupted by the outer scope
        reached_after_second_wait = true;
      }());
    } catch (const rt::TimeoutError&) {
      outer_raised = true;
      outer_at = Clock::now();
    }
    inner_expired = inner.expired();
    outer_expired = outer.expired();
  }());
  EXPECT_TRUE(inner_raised);
  EXPECT_TRUE(inner_expired);
  EXPECT_FALSE(outer_expired_when_inner_raised);
  EXPECT_TRUE(outer_raised);
  EXPECT_TRUE(outer_expired);
  EXPECT_FALSE(reached_after_second_wait);
  EXPECT_LT(inner_at, outer_at);
  ASSERT_TRUE(outer_deadline.has_value());
  EXPECT_GE(outer_at, *outer_deadline);  // the outer fired at its own deadline, not earlier
  EXPECT_LT(outer_at - t0, 5s);          // and interrupted the 10 s wait
}

// --- 42 ---------------------------------------------------------------------------------------

struct RescheduledFromOutside {
  rt::Timeout* scope = nullptr;
  bool timed_out = false;
};

Task<void> wait_in_rescheduled_scope(RescheduledFromOutside& r) {
  rt::Timeout scope = rt::Timeout::after(10s);
  r.scope = &scope;
  try {
    co_await scope.run(nap(20s));
  } catch (const rt::TimeoutError&) {
    r.timed_out = true;
  }
  r.scope = nullptr;
}

TEST_F(TimeoutConformance, T42_DeadlineCanBeMovedLaterOrRemovedInsideScope) {
  bool later_completed = false, later_expired = true;
  std::optional<TimePoint> later_target, later_when, later_task_deadline;
  bool removed_completed = false, removed_expired = true;
  std::optional<TimePoint> removed_when = Clock::now(), removed_task_deadline = Clock::now();
  RescheduledFromOutside outside;
  Duration outside_elapsed{};
  rt::run([&]() -> Task<void> {
    // Later: a 20 ms scope moved to 10 s; the body outlives the original deadline.
    rt::Timeout later = rt::Timeout::after(20ms);
    co_await later.run([&]() -> Task<void> {
      later_target = Clock::now() + 10s;
      later.reschedule(later_target);
      later_when = later.when();
      later_task_deadline = (co_await rt::this_task{}).deadline();
      co_await rt::sleep(100ms);
      later_completed = true;
    }());
    later_expired = later.expired();

    // Removed: a 20 ms scope disabled from inside.
    rt::Timeout removed = rt::Timeout::after(20ms);
    co_await removed.run([&]() -> Task<void> {
      removed.reschedule(std::nullopt);
      removed_when = removed.when();
      removed_task_deadline = (co_await rt::this_task{}).deadline();
      co_await rt::sleep(100ms);
      removed_completed = true;
    }());
    removed_expired = removed.expired();

    // CPython's test_reschedule: another task reschedules the scope; moved earlier, it fires.
    const TimePoint t0 = Clock::now();
    rt::TaskGroup group;
    co_await group.run([&]() -> Task<void> {
      group.spawn(wait_in_rescheduled_scope(outside), "waiter");
      while (outside.scope == nullptr) co_await rt::yield_now();
      outside.scope->reschedule(Clock::now() + 20ms);
    }());
    outside_elapsed = Clock::now() - t0;
  }());
  EXPECT_TRUE(later_completed);
  EXPECT_FALSE(later_expired);
  EXPECT_EQ(later_when, later_target);
  EXPECT_EQ(later_task_deadline, later_target);
  EXPECT_TRUE(removed_completed);
  EXPECT_FALSE(removed_expired);
  EXPECT_EQ(removed_when, std::nullopt);
  EXPECT_EQ(removed_task_deadline, std::nullopt);
  EXPECT_TRUE(outside.timed_out);
  EXPECT_LT(outside_elapsed, 2s);
}

// --- 43 ---------------------------------------------------------------------------------------

TEST_F(TimeoutConformance, T43_TimeoutInsideCleanupWorksAndNewCancellationStaysCancellation) {
  bool first_work_cancelled = false, cleanup_timed_out = false;
  bool second_work_cancelled = false, inner_cancel_stayed_cancellation = false;
  bool inner_cancel_became_timeout = false;
  std::string inner_cancel_reason;
  Duration elapsed{};
  rt::run([&]() -> Task<void> {
    const TimePoint t0 = Clock::now();
    rt::TaskState& self = co_await rt::this_task{};

    // test_timeout_after_cancellation
    try {
      self.cancel("work cancelled");
      co_await rt::sleep(10s);  // work which will be cancelled
    } catch (const rt::CancelledError&) {
      first_work_cancelled = true;
    }
    // "finally:" — a timeout scope in the cleanup still works.
    try {
      co_await rt::timeout(0s, nap(10s));
    } catch (const rt::TimeoutError&) {
      cleanup_timed_out = true;
    }

    // test_cancel_in_timeout_after_cancellation
    try {
      self.cancel("work cancelled again");
      co_await rt::sleep(10s);
    } catch (const rt::CancelledError&) {
      second_work_cancelled = true;
    }
    try {
      co_await rt::timeout(10s, [&]() -> Task<void> {
        self.cancel("cancelled during cleanup");
        co_await rt::sleep(20s);  // some cleanup
      }());
    } catch (const rt::CancelledError& e) {
      inner_cancel_stayed_cancellation = true;
      inner_cancel_reason = e.reason();
    } catch (const rt::TimeoutError&) {
      inner_cancel_became_timeout = true;
    }
    while (self.cancelling() > 0) self.uncancel();  // the root goes on normally
    elapsed = Clock::now() - t0;
  }());
  EXPECT_TRUE(first_work_cancelled);
  EXPECT_TRUE(cleanup_timed_out);
  EXPECT_TRUE(second_work_cancelled);
  EXPECT_TRUE(inner_cancel_stayed_cancellation);
  EXPECT_FALSE(inner_cancel_became_timeout);
  EXPECT_EQ(inner_cancel_reason, "cancelled during cleanup");
  EXPECT_LT(elapsed, 2s);
}

// --- 44 ---------------------------------------------------------------------------------------

TEST_F(TimeoutConformance, T44_TimeoutErrorCarriesTheCancellationAsItsCause) {
  std::exception_ptr seen_by_body;
  std::exception_ptr cause;
  bool cause_rethrows_as_cancellation = false;
  rt::run([&]() -> Task<void> {
    try {
      co_await rt::timeout(0s, [&]() -> Task<void> {
        try {
          co_await rt::sleep(10s);
        } catch (...) {
          seen_by_body = std::current_exception();
          throw;
        }
      }());
    } catch (const rt::TimeoutError& e) {
      cause = e.cause();
    }
  }());
  ASSERT_TRUE(cause);
  EXPECT_TRUE(rt::is_cancellation(cause));
  EXPECT_EQ(cause, seen_by_body);  // the very cancellation that interrupted the body
  try {
    std::rethrow_exception(cause);
  } catch (const rt::CancelledError&) {
    cause_rethrows_as_cancellation = true;
  } catch (...) {
  }
  EXPECT_TRUE(cause_rethrows_as_cancellation);
}

// --- 45 ---------------------------------------------------------------------------------------

TEST_F(TimeoutConformance, T45_DoubleEnterAndReschedulingFinishedOrUnenteredScopeAreClearErrors) {
  std::string nested_enter, enter_after_exit, reschedule_finished, reschedule_expired,
      reschedule_unentered;
  bool outer_scope_completed = false, outer_expired = true;
  rt::run([&]() -> Task<void> {
    rt::Timeout scope = rt::Timeout::after(10s);
    co_await scope.run([&]() -> Task<void> {
      try {
        co_await scope.run(nap(0s));
      } catch (const std::logic_error& e) {
        nested_enter = e.what();
      }
      co_await rt::sleep(1ms);  // the scope is still intact
      outer_scope_completed = true;
    }());
    outer_expired = scope.expired();

    try {
      co_await scope.run(nap(0s));
    } catch (const std::logic_error& e) {
      enter_after_exit = e.what();
    }
    try {
      scope.reschedule(Clock::now() + 1s);
    } catch (const std::logic_error& e) {
      reschedule_finished = e.what();
    }

    rt::Timeout expired = rt::Timeout::after(0s);
    try {
      co_await expired.run(nap(10s));
    } catch (const rt::TimeoutError&) {
    }
    try {
      expired.reschedule(Clock::now() + 1s);
    } catch (const std::logic_error& e) {
      reschedule_expired = e.what();
    }

    rt::Timeout unentered = rt::Timeout::after(1s);
    try {
      unentered.reschedule(Clock::now() + 2s);
    } catch (const std::logic_error& e) {
      reschedule_unentered = e.what();
    }
  }());
  EXPECT_TRUE(contains(nested_enter, "entered twice")) << nested_enter;
  EXPECT_TRUE(contains(enter_after_exit, "entered twice")) << enter_after_exit;
  EXPECT_TRUE(contains(reschedule_finished, "finished")) << reschedule_finished;
  EXPECT_TRUE(contains(reschedule_expired, "finished")) << reschedule_expired;
  EXPECT_TRUE(contains(reschedule_unentered, "never entered")) << reschedule_unentered;
  EXPECT_TRUE(outer_scope_completed);
  EXPECT_FALSE(outer_expired);
}

// --- 46 ---------------------------------------------------------------------------------------

struct ShieldLog {
  std::vector<std::string> events;
  bool started = false;
  std::string delivered_reason;
};

Task<void> shielded_cleanup(ShieldLog& log, int steps) {
  log.started = true;
  log.events.push_back("shield body started");
  for (int i = 1; i <= steps; ++i) {
    co_await rt::sleep(30ms);
    log.events.push_back("shield await " + std::to_string(i) + " completed");
  }
}

Task<void> shielded_forever(ShieldLog& log) {
  log.started = true;
  log.events.push_back("shield body started");
  try {
    co_await rt::sleep(10s);
  } catch (const rt::CancelledError&) {
    log.events.push_back("shield body cancelled by its own deadline");
    throw;
  }
}

Task<void> task_running_shield(ShieldLog& log, Task<void> body, Duration limit) {
  try {
    co_await rt::shield(std::move(body), limit);
    log.events.push_back("code after the shield ran");
  } catch (const rt::CancelledError& e) {
    log.events.push_back("task cancelled after the shield");
    log.delivered_reason = e.reason();
    throw;
  } catch (const rt::TimeoutError&) {
    log.events.push_back("shield raised TimeoutError");
    throw;
  }
}

TEST_F(TimeoutConformance, T46_ShieldCompletesAwaitsDespiteCancellationBoundedByOwnDeadline) {
  ShieldLog completes, bounded;
  bool completes_cancelled = false, bounded_cancelled = false;
  Duration bounded_elapsed{};
  bool unshielded_limit_timed_out = false;
  std::vector<std::string> under_scope;
  rt::run([&]() -> Task<void> {
    // (a) The task is cancelled while in the shield: every await of the body completes, then
    //     the cancellation is delivered.
    {
      rt::TaskHandle<void> child;
      rt::TaskGroup group;
      co_await group.run([&]() -> Task<void> {
        child = group.spawn(task_running_shield(completes, shielded_cleanup(completes, 3), 5s));
        while (!completes.started) co_await rt::yield_now();
        child.cancel("stop");
      }());
      completes_cancelled = child.cancelled();
    }
    // (b) The shield's own deadline bounds it: a body that would run 10 s is cancelled by the
    //     shield's limit, then the task's pending cancellation is delivered.
    {
      const TimePoint t0 = Clock::now();
      rt::TaskHandle<void> child;
      rt::TaskGroup group;
      co_await group.run([&]() -> Task<void> {
        child = group.spawn(task_running_shield(bounded, shielded_forever(bounded), 50ms));
        while (!bounded.started) co_await rt::yield_now();
        child.cancel("stop");
      }());
      bounded_elapsed = Clock::now() - t0;
      bounded_cancelled = child.cancelled();
    }
    // (c) Without a cancellation, a shield that outlasts its limit raises TimeoutError.
    try {
      co_await rt::shield(nap(10s), 50ms);
    } catch (const rt::TimeoutError&) {
      unshielded_limit_timed_out = true;
    }
    // (d) An enclosing deadline firing during the shield: the cleanup completes, then the scope
    //     raises TimeoutError (the seed's "cleanup under a shield while the deadline fires").
    try {
      co_await rt::timeout(10ms, [&]() -> Task<void> {
        co_await rt::shield(
            [](std::vector<std::string>& ev) -> Task<void> {
              co_await rt::sleep(60ms);
              ev.push_back("shielded cleanup completed");
            }(under_scope),
            5s);
        under_scope.push_back("code after the shield ran");
      }());
    } catch (const rt::TimeoutError&) {
      under_scope.push_back("scope raised TimeoutError");
    }
  }());

  const std::vector<std::string> expected_completes = {
      "shield body started", "shield await 1 completed", "shield await 2 completed",
      "shield await 3 completed", "task cancelled after the shield"};
  EXPECT_EQ(completes.events, expected_completes);
  EXPECT_EQ(completes.delivered_reason, "stop");
  EXPECT_TRUE(completes_cancelled);

  const std::vector<std::string> expected_bounded = {"shield body started",
                                                     "shield body cancelled by its own deadline",
                                                     "task cancelled after the shield"};
  EXPECT_EQ(bounded.events, expected_bounded);
  EXPECT_EQ(bounded.delivered_reason, "stop");
  EXPECT_TRUE(bounded_cancelled);
  EXPECT_LT(bounded_elapsed, 2s);

  EXPECT_TRUE(unshielded_limit_timed_out);
  const std::vector<std::string> expected_under_scope = {"shielded cleanup completed",
                                                         "scope raised TimeoutError"};
  EXPECT_EQ(under_scope, expected_under_scope);
}

// --- 47 ---------------------------------------------------------------------------------------

Task<void> read_deadline(std::optional<TimePoint>& out) {
  out = (co_await rt::this_task{}).deadline();
}

TEST_F(TimeoutConformance, T47_DeadlineReadableInsideScopeAndInGroupChild) {
  std::optional<TimePoint> scope_when, in_body, in_child, in_nested_later, in_nested_earlier;
  std::optional<TimePoint> nested_earlier_when;
  std::optional<TimePoint> before = Clock::now(), after = Clock::now();
  rt::run([&]() -> Task<void> {
    rt::TaskState& self = co_await rt::this_task{};
    before = self.deadline();
    rt::Timeout scope = rt::Timeout::after(10s);
    scope_when = scope.when();
    co_await scope.run([&]() -> Task<void> {
      in_body = self.deadline();
      rt::TaskGroup group;
      co_await group.run([&]() -> Task<void> {
        group.spawn(read_deadline(in_child), "reader");
        co_return;
      }());
      // A nested scope with a later deadline does not extend the outer one; an earlier one wins.
      co_await rt::timeout(20s, read_deadline(in_nested_later));
      rt::Timeout earlier = rt::Timeout::after(5s);
      nested_earlier_when = earlier.when();
      co_await earlier.run(read_deadline(in_nested_earlier));
    }());
    after = self.deadline();
  }());
  ASSERT_TRUE(scope_when.has_value());
  EXPECT_EQ(before, std::nullopt);
  EXPECT_EQ(in_body, scope_when);
  EXPECT_EQ(in_child, scope_when);
  EXPECT_EQ(in_nested_later, scope_when);
  EXPECT_EQ(in_nested_earlier, nested_earlier_when);
  EXPECT_EQ(after, std::nullopt);
}

}  // namespace
