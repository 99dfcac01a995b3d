// Runtime (runtime/runtime.h): one root task per worker, cancellation from another thread, and a
// load test of many concurrent tasks with timers that must leave nothing behind.
//
// Timing: only generous bounds, never precise durations. Coroutine lambdas that capture by
// reference are only awaited in the same full-expression; spawned tasks are free functions taking
// parameters.
#include <array>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "runtime/errors.h"
#include "runtime/loop.h"
#include "runtime/runtime.h"
#include "runtime/sleep.h"
#include "runtime/task.h"
#include "runtime/task_group.h"
#include "runtime/timeout.h"
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

struct RootView {
  rt::Loop* loop_at_start = nullptr;
  rt::Loop* loop_after_await = nullptr;
  int index = -1;
  std::thread::id thread;
  bool cancelled = false;
  std::string reason;
};

Task<void> root_task(RootView& view, std::atomic<int>& waiting) {
  view.loop_at_start = rt::Loop::current();
  view.index = view.loop_at_start ? view.loop_at_start->index() : -1;
  view.thread = std::this_thread::get_id();
  co_await rt::sleep(1ms);
  view.loop_after_await = rt::Loop::current();
  waiting.fetch_add(1);
  try {
    co_await rt::sleep(10s);
  } catch (const rt::CancelledError& e) {
    view.cancelled = true;
    view.reason = e.reason();
    throw;
  }
}

TEST_F(Primitives, RuntimeRunsARootPerWorkerAndCancelFromAnotherThreadStopsBoth) {
  std::array<RootView, 2> views;
  std::atomic<int> waiting{0};
  rt::Runtime runtime({.threads = 2});
  ASSERT_EQ(runtime.threads(), 2);
  const TimePoint t0 = Clock::now();
  std::thread canceller([&] {
    for (int i = 0; i < 5000 && waiting.load() < 2; ++i) std::this_thread::sleep_for(1ms);
    runtime.cancel("shutdown requested");
  });
  EXPECT_NO_THROW(runtime.run([&](int worker) { return root_task(views[worker], waiting); }));
  const Duration elapsed = Clock::now() - t0;
  canceller.join();

  for (int w = 0; w < 2; ++w) {
    SCOPED_TRACE("worker " + std::to_string(w));
    EXPECT_EQ(views[w].loop_at_start, &runtime.loop(w));
    EXPECT_EQ(views[w].loop_after_await, &runtime.loop(w));
    EXPECT_EQ(views[w].index, w);
    EXPECT_TRUE(views[w].cancelled);
    EXPECT_EQ(views[w].reason, "shutdown requested");
  }
  EXPECT_NE(views[0].thread, views[1].thread);
  EXPECT_EQ(views[0].thread, std::this_thread::get_id());  // worker 0 runs on the caller
  EXPECT_LT(elapsed, 5s);
  EXPECT_EQ(runtime.close(), 0u);  // no fd watch left registered
}

// --- Load -------------------------------------------------------------------------------------

Task<void> ticker(int i, int& completed) {
  co_await rt::sleep(std::chrono::milliseconds(i % 20));
  co_await rt::timeout(10s, nap(std::chrono::milliseconds(i % 7)));
  ++completed;
}

Task<void> many_tickers(int n, int& completed, long& concurrent_frames) {
  rt::TaskGroup group;
  co_await group.run([](rt::TaskGroup& g, int n, int& completed, long& concurrent) -> Task<void> {
    for (int i = 0; i < n; ++i) g.spawn(ticker(i, completed));
    co_await rt::yield_now();  // every child has started and is waiting on a timer
    concurrent = rt::live_frames();
  }(group, n, completed, concurrent_frames));
}

TEST_F(Primitives, TenThousandConcurrentTasksWithTimersCompleteAndLeaveNothing) {
  constexpr int kTasks = 10'000;
  int completed = 0;
  long concurrent_frames = 0;
  rt::Runtime runtime;
  runtime.run([&](int) { return many_tickers(kTasks, completed, concurrent_frames); });
  EXPECT_EQ(completed, kTasks);
  EXPECT_GE(concurrent_frames - frames_at_start(), kTasks);
  EXPECT_EQ(rt::live_frames(), frames_at_start());
  EXPECT_EQ(runtime.close(), 0u);  // no fd watch left registered
}

}  // namespace
