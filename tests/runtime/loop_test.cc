// Loop (runtime/loop.h): busy polling (Loop::set_busy_poll, RuntimeOptions::busy_poll) spins only
// within its window; timers and cross-thread posts work as without it.
//
// Timing: only generous bounds, never precise durations. Coroutine lambdas that capture by
// reference are only awaited in the same full-expression; spawned tasks are free functions taking
// parameters.
#include <chrono>
#include <thread>
#include <vector>

#include <time.h>

#include <gtest/gtest.h>

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

// Busy polling spins only within its window after an event: a loop that then sleeps 300 ms
// idles (its thread's CPU time stays far below the wall time), and timers, cross-thread posts and
// the end of the run work as without it.
TEST_F(Primitives, BusyPollingLoopSpinsOnlyWithinItsWindow) {
  auto thread_cpu = [] {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
  };
  std::vector<int> order;
  Duration idle_cpu{};
  int posted = 0;
  rt::run(
      [&]() -> Task<void> {
        rt::Loop& loop = (co_await rt::this_task{}).loop();
        rt::TaskGroup group;
        co_await group.run([&]() -> Task<void> {
          group.spawn(sleep_for_and_record(20ms, 2, order));
          group.spawn(sleep_for_and_record(10ms, 1, order));
          co_return;
        }());
        std::thread poster([&loop, &posted] { loop.post_threadsafe([&posted] { ++posted; }); });
        poster.join();
        const auto cpu0 = thread_cpu();
        co_await rt::sleep(300ms);
        idle_cpu = thread_cpu() - cpu0;
      }(),
      {.busy_poll = 1ms});
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  EXPECT_EQ(posted, 1);
  EXPECT_LT(idle_cpu, 150ms) << "the loop kept spinning while idle";
}

}  // namespace
