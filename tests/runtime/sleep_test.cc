// sleep() / sleep_until() (runtime/sleep.h): wake-up order by deadline, and a cancelled sleep
// reacts at once and leaves no timer behind.
//
// Timing: only generous bounds, never precise durations. Coroutine lambdas that capture by
// reference are only awaited in the same full-expression; spawned tasks are free functions taking
// parameters.
#include <chrono>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/errors.h"
#include "runtime/loop.h"
#include "runtime/runtime.h"
#include "runtime/sleep.h"
#include "runtime/task.h"
#include "runtime/task_group.h"
#include "test_util.h"

namespace rt = curfew::rt;
using namespace std::chrono_literals;
using curfew_test::Primitives;
using curfew_test::sleep_for_and_record;
using rt::Clock;
using rt::Duration;
using rt::Task;
using rt::TimePoint;

namespace {

struct Wake {
  int id;
  bool on_time;  // not before its deadline
};

Task<void> sleep_until_and_record(TimePoint until, int id, std::vector<Wake>& order) {
  co_await rt::sleep_until(until);
  order.push_back({id, Clock::now() >= until});
}

TEST_F(Primitives, SleepWakesInDeadlineOrder) {
  std::vector<Wake> absolute;
  std::vector<int> relative;
  Duration slept{};
  rt::run([&]() -> Task<void> {
    const TimePoint base = Clock::now();
    rt::TaskGroup group;
    co_await group.run([&]() -> Task<void> {
      group.spawn(sleep_until_and_record(base + 90ms, 1, absolute));
      group.spawn(sleep_until_and_record(base + 30ms, 2, absolute));
      group.spawn(sleep_until_and_record(base + 60ms, 3, absolute));
      group.spawn(sleep_until_and_record(base + 30ms, 4, absolute));  // tie: in order of sleeping
      group.spawn(sleep_for_and_record(90ms, 5, relative));
      group.spawn(sleep_for_and_record(30ms, 6, relative));
      group.spawn(sleep_for_and_record(60ms, 7, relative));
      co_return;
    }());
    const TimePoint t0 = Clock::now();
    co_await rt::sleep(20ms);
    slept = Clock::now() - t0;
  }());
  ASSERT_EQ(absolute.size(), 4u);
  EXPECT_EQ(absolute[0].id, 2);
  EXPECT_EQ(absolute[1].id, 4);
  EXPECT_EQ(absolute[2].id, 3);
  EXPECT_EQ(absolute[3].id, 1);
  for (const Wake& w : absolute) EXPECT_TRUE(w.on_time) << "task " << w.id << " woke early";
  EXPECT_EQ(relative, (std::vector<int>{6, 7, 5}));
  EXPECT_GE(slept, 20ms);
}

struct SleeperLog {
  bool cancelled = false;
  TimePoint ended{};
  size_t timers_left = 99;
};

Task<void> long_sleeper(SleeperLog& log) {
  rt::Loop& loop = (co_await rt::this_task{}).loop();
  try {
    co_await rt::sleep(10s);
  } catch (const rt::CancelledError&) {
    log.cancelled = true;
    log.ended = Clock::now();
    log.timers_left = loop.timers().size();
    throw;
  }
}

TEST_F(Primitives, CancelledSleepReactsAtOnce) {
  SleeperLog log;
  TimePoint start{}, cancelled_at{};
  bool child_cancelled = false;
  rt::run([&]() -> Task<void> {
    start = Clock::now();
    rt::TaskHandle<void> child;
    rt::TaskGroup group;
    co_await group.run([&]() -> Task<void> {
      child = group.spawn(long_sleeper(log), "sleeper");
      co_await rt::sleep(20ms);
      cancelled_at = Clock::now();
      child.cancel("wake up");
    }());
    child_cancelled = child.cancelled();
  }());
  EXPECT_TRUE(log.cancelled);
  EXPECT_TRUE(child_cancelled);
  EXPECT_LT(log.ended - cancelled_at, 1s);
  EXPECT_LT(log.ended - start, 1s);
  EXPECT_EQ(log.timers_left, 0u);  // the 10 s timer was removed from the loop
}

}  // namespace
