// TaskState (runtime/task_state.h): counting of cancellation requests (cancel / uncancel /
// cancelling / cancel_pending), as asyncio.Task does since Python 3.11.
//
// Timing: only generous bounds, never precise durations. Coroutine lambdas that capture by
// reference are only awaited in the same full-expression; spawned tasks are free functions taking
// parameters.
#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "runtime/errors.h"
#include "runtime/runtime.h"
#include "runtime/sleep.h"
#include "runtime/task.h"
#include "runtime/task_group.h"
#include "runtime/task_state.h"
#include "test_util.h"

namespace rt = curfew::rt;
using namespace std::chrono_literals;
using curfew_test::nap;
using curfew_test::Primitives;
using rt::Clock;
using rt::Duration;
using rt::Task;
using rt::TimePoint;

namespace {

TEST_F(Primitives, TaskStateCancelUncancelCounting) {
  int after_two = -1, after_first_uncancel = -1, after_second_uncancel = -1, at_zero = -1;
  bool pending_after_two = false, pending_after_one_uncancel = false, pending_at_zero = true;
  bool rescinded_sleep_completed = false;
  bool partial_delivered = false;
  std::string partial_reason;
  int cancelling_after_delivery = -1;
  bool cancel_finished_child = true;
  rt::run([&]() -> Task<void> {
    rt::TaskState& self = co_await rt::this_task{};
    EXPECT_EQ(self.cancelling(), 0);
    EXPECT_FALSE(self.cancel_pending());

    EXPECT_TRUE(self.cancel("first"));
    EXPECT_TRUE(self.cancel("second"));
    after_two = self.cancelling();
    pending_after_two = self.cancel_pending();
    after_first_uncancel = self.uncancel();
    pending_after_one_uncancel = self.cancel_pending();
    after_second_uncancel = self.uncancel();
    pending_at_zero = self.cancel_pending();
    co_await rt::sleep(1ms);  // rescinded: not interrupted
    rescinded_sleep_completed = true;
    at_zero = self.uncancel();  // never below zero

    // Two requests, one withdrawn: still delivered, with the latest reason.
    self.cancel("third");
    self.cancel("fourth");
    self.uncancel();
    try {
      co_await rt::sleep(10s);
    } catch (const rt::CancelledError& e) {
      partial_delivered = true;
      partial_reason = e.reason();
    }
    cancelling_after_delivery = self.cancelling();  // delivery does not withdraw the request
    self.uncancel();

    // A finished task refuses further requests.
    rt::TaskHandle<void> child;
    rt::TaskGroup group;
    co_await group.run([&]() -> Task<void> {
      child = group.spawn(nap(10s), "napper");
      co_await rt::yield_now();
      child.cancel("stop");
    }());
    cancel_finished_child = child.cancel("too late");
  }());
  EXPECT_EQ(after_two, 2);
  EXPECT_TRUE(pending_after_two);
  EXPECT_EQ(after_first_uncancel, 1);
  EXPECT_TRUE(pending_after_one_uncancel);
  EXPECT_EQ(after_second_uncancel, 0);
  EXPECT_FALSE(pending_at_zero);
  EXPECT_TRUE(rescinded_sleep_completed);
  EXPECT_EQ(at_zero, 0);
  EXPECT_TRUE(partial_delivered);
  EXPECT_EQ(partial_reason, "fourth");
  EXPECT_EQ(cancelling_after_delivery, 1);
  EXPECT_FALSE(cancel_finished_child);
}
}  // namespace
