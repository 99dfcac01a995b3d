// Event (runtime/event.h): set / clear / is_set, wait() and wait_until(), waking every waiter,
// and waiting as a cancellation point that leaves neither a timer nor a list entry behind.
//
// Timing: only "not before the deadline" and generous upper bounds (a cancelled 10 s wait ends
// well under 2 s), never precise durations. Coroutine lambdas that capture by reference are only
// awaited in the same full-expression; spawned tasks are free functions taking parameters.
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/errors.h"
#include "runtime/event.h"
#include "runtime/loop.h"
#include "runtime/runtime.h"
#include "runtime/sleep.h"
#include "runtime/task.h"
#include "runtime/task_group.h"
#include "runtime/task_state.h"
#include "test_util.h"

namespace rt = curfew::rt;
using namespace std::chrono_literals;
using rt::Clock;
using rt::Duration;
using rt::Task;
using rt::TimePoint;

namespace {

class EventTest : public curfew_test::Primitives {};

// What one waiter saw.
struct WaitLog {
  bool returned = false;   // the wait completed normally
  bool result = false;     // ... with this value
  bool cancelled = false;  // the wait raised CancelledError
  std::string reason;
  TimePoint ended{};
};

// Waits on `event` (until `deadline` when given) and records the outcome; a cancellation is
// recorded and re-raised.
Task<void> wait_and_record(rt::Event& event, std::optional<TimePoint> deadline, WaitLog& log) {
  try {
    if (deadline) {
      log.result = co_await event.wait_until(*deadline);
    } else {
      log.result = co_await event.wait();
    }
    log.returned = true;
  } catch (const rt::CancelledError& e) {
    log.cancelled = true;
    log.reason = e.reason();
    log.ended = Clock::now();
    throw;
  }
  log.ended = Clock::now();
}

size_t timers_of_this_loop() { return rt::Loop::current()->timers().size(); }

TEST_F(EventTest, SetClearAndIsSetReflectTheFlagAndASetEventIsNotWaitedFor) {
  bool initially = true, after_set = false, after_second_set = false, after_clear = true;
  bool wait_on_set = false, wait_until_on_set = false, wait_until_past_on_set = false;
  size_t timers_after = 99;
  rt::run([&]() -> Task<void> {
    rt::Event event;
    initially = event.is_set();
    event.set();
    after_set = event.is_set();
    event.set();  // setting twice is harmless
    after_second_set = event.is_set();
    // Already set: every form of waiting yields true, even with a deadline in the past.
    wait_on_set = co_await event.wait();
    wait_until_on_set = co_await event.wait_until(Clock::now() + 10s);
    wait_until_past_on_set = co_await event.wait_until(Clock::now() - 1s);
    timers_after = timers_of_this_loop();
    event.clear();
    after_clear = event.is_set();
  }());
  EXPECT_FALSE(initially);
  EXPECT_TRUE(after_set);
  EXPECT_TRUE(after_second_set);
  EXPECT_FALSE(after_clear);
  EXPECT_TRUE(wait_on_set);
  EXPECT_TRUE(wait_until_on_set);
  EXPECT_TRUE(wait_until_past_on_set);
  EXPECT_EQ(timers_after, 0u);  // no deadline timer was left for the 10 s form
}

TEST_F(EventTest, WaitSuspendsUntilSetAndWaitersWakeOnTheNextPassNotInsideSet) {
  WaitLog log;
  bool returned_before_set = true, returned_inside_set = true, returned_after_one_pass = false;
  rt::run([&]() -> Task<void> {
    rt::Event event;
    rt::TaskGroup group;
    co_await group.run([&]() -> Task<void> {
      group.spawn(wait_and_record(event, std::nullopt, log), "waiter");
      for (int i = 0; i < 5; ++i) co_await rt::yield_now();
      co_await rt::sleep(10ms);
      returned_before_set = log.returned;
      event.set();
      returned_inside_set = log.returned;  // set() only schedules the waiter
      co_await rt::yield_now();
      returned_after_one_pass = log.returned;
    }());
  }());
  EXPECT_FALSE(returned_before_set);
  EXPECT_FALSE(returned_inside_set);
  EXPECT_TRUE(returned_after_one_pass);
  EXPECT_TRUE(log.returned);
  EXPECT_TRUE(log.result);
  EXPECT_FALSE(log.cancelled);
}

TEST_F(EventTest, OneSetWakesManyWaitersOfBothFormsAndRemovesTheirTimers) {
  constexpr int kWaiters = 500;
  std::vector<WaitLog> logs(kWaiters);
  int returned_before_set = -1;
  size_t timers_before_set = 0, timers_after_wake = 99;
  rt::run([&]() -> Task<void> {
    rt::Event event;
    rt::TaskGroup group;
    co_await group.run([&]() -> Task<void> {
      const TimePoint far = Clock::now() + 10s;
      for (int i = 0; i < kWaiters; ++i) {
        std::optional<TimePoint> deadline;
        if (i % 2 == 1) deadline = far;
        group.spawn(wait_and_record(event, deadline, logs[i]));
      }
      for (int i = 0; i < 3; ++i) co_await rt::yield_now();
      returned_before_set = 0;
      for (const WaitLog& l : logs) returned_before_set += l.returned ? 1 : 0;
      timers_before_set = timers_of_this_loop();
      event.set();
      co_await rt::yield_now();
      timers_after_wake = timers_of_this_loop();
    }());
  }());
  EXPECT_EQ(returned_before_set, 0);
  EXPECT_EQ(timers_before_set, static_cast<size_t>(kWaiters / 2));
  EXPECT_EQ(timers_after_wake, 0u);
  for (int i = 0; i < kWaiters; ++i) {
    EXPECT_TRUE(logs[i].returned) << "waiter " << i;
    EXPECT_TRUE(logs[i].result) << "waiter " << i;
  }
}

TEST_F(EventTest, WaitUntilGivesUpAtTheDeadlineNotBeforeAndLeavesNothingBehind) {
  WaitLog log;
  TimePoint deadline{};
  size_t timers_after = 99;
  bool later_wait = false;
  rt::run([&]() -> Task<void> {
    rt::Event event;
    deadline = Clock::now() + 30ms;
    co_await wait_and_record(event, deadline, log);
    timers_after = timers_of_this_loop();
    // The timed-out waiter is off the event's list: a later set() touches only live waiters.
    event.set();
    later_wait = co_await event.wait();
  }());
  EXPECT_TRUE(log.returned);
  EXPECT_FALSE(log.result);
  EXPECT_FALSE(log.cancelled);
  EXPECT_GE(log.ended, deadline);
  EXPECT_LT(log.ended - deadline, 2s);
  EXPECT_EQ(timers_after, 0u);
  EXPECT_TRUE(later_wait);
}

TEST_F(EventTest, WaitUntilWithADeadlineInThePastYieldsFalseWhenNotSet) {
  WaitLog past, now;
  rt::run([&]() -> Task<void> {
    rt::Event event;
    co_await wait_and_record(event, Clock::now() - 1s, past);
    co_await wait_and_record(event, Clock::now(), now);
  }());
  EXPECT_TRUE(past.returned);
  EXPECT_FALSE(past.result);
  EXPECT_TRUE(now.returned);
  EXPECT_FALSE(now.result);
}

TEST_F(EventTest, WaitUntilSetBeforeTheDeadlineYieldsTrueAndCancelsItsTimer) {
  WaitLog log;
  size_t timers_while_waiting = 0, timers_after = 99;
  TimePoint set_at{};
  rt::run([&]() -> Task<void> {
    rt::Event event;
    rt::TaskGroup group;
    co_await group.run([&]() -> Task<void> {
      group.spawn(wait_and_record(event, Clock::now() + 10s, log), "waiter");
      co_await rt::sleep(10ms);
      timers_while_waiting = timers_of_this_loop();
      set_at = Clock::now();
      event.set();
    }());
    timers_after = timers_of_this_loop();
  }());
  EXPECT_EQ(timers_while_waiting, 1u);
  EXPECT_TRUE(log.returned);
  EXPECT_TRUE(log.result);
  EXPECT_LT(log.ended - set_at, 2s);  // woken by set(), not by the 10 s deadline
  EXPECT_EQ(timers_after, 0u);
}

TEST_F(EventTest, CancelledWaitersLeaveNoTimerNorListEntryAndOthersStillWake) {
  // Three waiters on one event; the first and the second (the one with a deadline) are cancelled,
  // which unlinks them from the head and the middle of the list. The third must still be woken
  // by set(), and nothing of the cancelled ones may be touched by it.
  std::vector<WaitLog> logs(4);
  size_t timers_while_waiting = 0, timers_after_cancel = 99;
  TimePoint cancelled_at{};
  bool first_cancelled = false, second_cancelled = false;
  rt::run([&]() -> Task<void> {
    rt::Event event;
    rt::TaskGroup group;
    co_await group.run([&]() -> Task<void> {
      auto first = group.spawn(wait_and_record(event, std::nullopt, logs[0]), "first");
      auto second = group.spawn(wait_and_record(event, Clock::now() + 10s, logs[1]), "second");
      group.spawn(wait_and_record(event, std::nullopt, logs[2]), "third");
      group.spawn(wait_and_record(event, Clock::now() + 10s, logs[3]), "fourth");
      co_await rt::sleep(5ms);
      timers_while_waiting = timers_of_this_loop();
      cancelled_at = Clock::now();
      first.cancel("stop first");
      second.cancel("stop second");
      co_await rt::yield_now();
      timers_after_cancel = timers_of_this_loop();
      first_cancelled = first.cancelled();
      second_cancelled = second.cancelled();
      event.set();
    }());
  }());
  EXPECT_EQ(timers_while_waiting, 2u);
  EXPECT_EQ(timers_after_cancel, 1u);  // only the fourth waiter's deadline is left
  EXPECT_TRUE(first_cancelled);
  EXPECT_TRUE(second_cancelled);
  for (int i : {0, 1}) {
    SCOPED_TRACE("waiter " + std::to_string(i));
    EXPECT_TRUE(logs[i].cancelled);
    EXPECT_FALSE(logs[i].returned);
    EXPECT_LT(logs[i].ended - cancelled_at, 2s);
  }
  EXPECT_EQ(logs[0].reason, "stop first");
  EXPECT_EQ(logs[1].reason, "stop second");
  for (int i : {2, 3}) {
    SCOPED_TRACE("waiter " + std::to_string(i));
    EXPECT_FALSE(logs[i].cancelled);
    EXPECT_TRUE(logs[i].returned);
    EXPECT_TRUE(logs[i].result);
  }
}

TEST_F(EventTest, PendingCancellationIsDeliveredAtAWaitOnAnUnsetEvent) {
  bool plain_cancelled = false, timed_cancelled = false;
  std::string reason;
  size_t timers_after = 99;
  int cancelling_after = -1;
  rt::run([&]() -> Task<void> {
    rt::TaskState& self = co_await rt::this_task{};
    rt::Event event;
    self.cancel("early");
    try {
      co_await event.wait();
    } catch (const rt::CancelledError& e) {
      plain_cancelled = true;
      reason = e.reason();
    }
    self.uncancel();
    self.cancel("early again");
    try {
      co_await event.wait_until(Clock::now() + 10s);
    } catch (const rt::CancelledError&) {
      timed_cancelled = true;
    }
    cancelling_after = self.uncancel();
    timers_after = timers_of_this_loop();
    event.set();  // no cancelled waiter is left on the list to be touched
  }());
  EXPECT_TRUE(plain_cancelled);
  EXPECT_EQ(reason, "early");
  EXPECT_TRUE(timed_cancelled);
  EXPECT_EQ(cancelling_after, 0);
  EXPECT_EQ(timers_after, 0u);
}

TEST_F(EventTest, CancellationAfterSetButBeforeTheWaiterRanIsStillDelivered) {
  // As in asyncio: a task woken by set() but cancelled before it got to run sees the
  // cancellation, not the event.
  WaitLog log;
  bool handle_cancelled = false;
  rt::run([&]() -> Task<void> {
    rt::Event event;
    rt::TaskHandle<void> waiter;
    rt::TaskGroup group;
    co_await group.run([&]() -> Task<void> {
      waiter = group.spawn(wait_and_record(event, Clock::now() + 10s, log), "waiter");
      co_await rt::sleep(5ms);
      event.set();
      waiter.cancel("too late for the event");
    }());
    handle_cancelled = waiter.cancelled();
  }());
  EXPECT_TRUE(log.cancelled);
  EXPECT_FALSE(log.returned);
  EXPECT_EQ(log.reason, "too late for the event");
  EXPECT_TRUE(handle_cancelled);
}

TEST_F(EventTest, ClearedEventBlocksNewWaitersUntilSetAgain) {
  WaitLog first, second;
  bool second_returned_while_cleared = true;
  rt::run([&]() -> Task<void> {
    rt::Event event;
    rt::TaskGroup group;
    co_await group.run([&]() -> Task<void> {
      group.spawn(wait_and_record(event, std::nullopt, first), "first");
      co_await rt::sleep(2ms);
      event.set();
      co_await rt::yield_now();
      event.clear();
      group.spawn(wait_and_record(event, std::nullopt, second), "second");
      co_await rt::sleep(20ms);
      second_returned_while_cleared = second.returned;
      event.set();
    }());
  }());
  EXPECT_TRUE(first.returned);
  EXPECT_TRUE(first.result);
  EXPECT_FALSE(second_returned_while_cleared);
  EXPECT_TRUE(second.returned);
  EXPECT_TRUE(second.result);
}

TEST_F(EventTest, WaiterWokenBySetIsResumedEvenIfClearedBeforeItRuns) {
  // set() wakes every current waiter; a clear() before they run must not strand them (the plain
  // waiter would wait forever, the timed one would sit out its 10 s deadline). Stranded waiters
  // are cancelled after 2 s so that the test fails instead of hanging.
  WaitLog plain, timed;
  TimePoint set_at{};
  rt::run([&]() -> Task<void> {
    rt::Event event;
    rt::TaskGroup group;
    co_await group.run([&]() -> Task<void> {
      auto p = group.spawn(wait_and_record(event, std::nullopt, plain), "plain");
      auto t = group.spawn(wait_and_record(event, Clock::now() + 10s, timed), "timed");
      co_await rt::sleep(5ms);
      set_at = Clock::now();
      event.set();
      event.clear();
      for (int i = 0; i < 2000 && !(plain.returned && timed.returned); ++i) co_await rt::sleep(1ms);
      p.cancel("stranded");
      t.cancel("stranded");
    }());
  }());
  EXPECT_TRUE(plain.returned);
  EXPECT_TRUE(timed.returned);
  EXPECT_LT(timed.ended - set_at, 2s);
}

// wait() yields true, and wait_until() false only when the deadline passed: a waiter woken by
// set() yields true even when a clear() came before it ran (asyncio's Event.wait() returns True
// here too). It used to read the flag again and yield false.
TEST_F(EventTest, WaiterWokenBySetYieldsTrueEvenIfClearedBeforeItRuns) {
  WaitLog plain, timed;
  rt::run([&]() -> Task<void> {
    rt::Event event;
    rt::TaskGroup group;
    co_await group.run([&]() -> Task<void> {
      group.spawn(wait_and_record(event, std::nullopt, plain), "plain");
      group.spawn(wait_and_record(event, Clock::now() + 10s, timed), "timed");
      co_await rt::sleep(5ms);
      event.set();
      event.clear();
    }());
  }());
  EXPECT_TRUE(plain.result);
  EXPECT_TRUE(timed.result);
}

}  // namespace
