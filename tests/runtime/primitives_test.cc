// The runtime's building blocks: Task<T>, sleep, race(), to_thread(), Runtime, TaskState's
// cancellation counting, and a load test of many concurrent tasks with timers.
//
// Timing: only generous bounds (a 10 s wait that is cancelled ends well under 1 s), never
// precise durations. Coroutine lambdas that capture by reference are only awaited in the same
// full-expression; spawned tasks are free functions taking parameters.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <time.h>

#include <gtest/gtest.h>

#include "runtime/errors.h"
#include "runtime/loop.h"
#include "runtime/race.h"
#include "runtime/runtime.h"
#include "runtime/sleep.h"
#include "runtime/task.h"
#include "runtime/task_group.h"
#include "runtime/task_state.h"
#include "runtime/timeout.h"
#include "runtime/to_thread.h"

namespace rt = curfew::rt;
using namespace std::chrono_literals;
using rt::Clock;
using rt::Duration;
using rt::Task;
using rt::TimePoint;

namespace {

// Every test must leave no coroutine frame behind.
class Primitives : public ::testing::Test {
 protected:
  void SetUp() override { frames_at_start_ = rt::live_frames(); }
  void TearDown() override {
    EXPECT_EQ(rt::live_frames(), frames_at_start_) << "coroutine frames leaked by the test";
  }
  long frames_at_start() const { return frames_at_start_; }

 private:
  long frames_at_start_ = 0;
};

Task<void> nap(Duration d) { co_await rt::sleep(d); }

// --- Task<T> ----------------------------------------------------------------------------------

Task<int> answer() { co_return 42; }
Task<std::string> greeting() {
  co_await rt::yield_now();
  co_return "hello";
}
Task<std::unique_ptr<int>> boxed(int v) { co_return std::make_unique<int>(v); }
Task<int> add_answers() {
  int a = co_await answer();
  int b = co_await answer();
  co_return a + b;
}
Task<void> fail_void() {
  co_await rt::yield_now();
  throw std::runtime_error("void task failed");
}
Task<int> fail_int() {
  throw std::invalid_argument("int task failed");
  co_return 0;
}
Task<int> forward_failure() { co_return co_await fail_int() + 1; }

TEST_F(Primitives, TaskValuesAndExceptionsReachTheAwaiter) {
  int value = 0, sum = 0;
  std::string text;
  std::unique_ptr<int> box;
  std::string void_error, int_error, forwarded_error;
  rt::run([&]() -> Task<void> {
    value = co_await answer();
    text = co_await greeting();
    box = co_await boxed(7);
    sum = co_await add_answers();
    try {
      co_await fail_void();
    } catch (const std::runtime_error& e) {
      void_error = e.what();
    }
    try {
      co_await fail_int();
    } catch (const std::invalid_argument& e) {
      int_error = e.what();
    }
    try {
      co_await forward_failure();
    } catch (const std::invalid_argument& e) {
      forwarded_error = e.what();
    }
  }());
  EXPECT_EQ(value, 42);
  EXPECT_EQ(text, "hello");
  ASSERT_NE(box, nullptr);
  EXPECT_EQ(*box, 7);
  EXPECT_EQ(sum, 84);
  EXPECT_EQ(void_error, "void task failed");
  EXPECT_EQ(int_error, "int task failed");
  EXPECT_EQ(forwarded_error, "int task failed");

  // rt::run yields the root's value and rethrows its error.
  EXPECT_EQ(rt::run(answer()), 42);
  EXPECT_THROW(rt::run(fail_int()), std::invalid_argument);
}

Task<void> set_flag(bool& flag) {
  flag = true;
  co_return;
}

TEST_F(Primitives, TaskIsMoveOnlyAndLazy) {
  static_assert(!std::is_copy_constructible_v<Task<int>>);
  static_assert(!std::is_copy_assignable_v<Task<int>>);
  static_assert(std::is_nothrow_move_constructible_v<Task<int>>);
  static_assert(std::is_nothrow_move_assignable_v<Task<int>>);

  // Never awaited: the body never runs, and dropping it frees its frame.
  bool ran = false;
  {
    Task<void> t = set_flag(ran);
    EXPECT_TRUE(static_cast<bool>(t));
    EXPECT_EQ(rt::live_frames(), frames_at_start() + 1);
    Task<void> moved = std::move(t);
    EXPECT_FALSE(static_cast<bool>(t));
    EXPECT_TRUE(static_cast<bool>(moved));
    EXPECT_EQ(rt::live_frames(), frames_at_start() + 1);
    Task<void> other = set_flag(ran);
    moved = std::move(other);  // the overwritten task is destroyed unrun
    EXPECT_EQ(rt::live_frames(), frames_at_start() + 1);
  }
  EXPECT_FALSE(ran);
  EXPECT_EQ(rt::live_frames(), frames_at_start());

  // Inside a running task: nothing runs until the co_await.
  bool ran_before_await = true, ran_after_await = false, dropped_ran = false;
  rt::run([&]() -> Task<void> {
    bool flag = false;
    Task<void> t = set_flag(flag);
    co_await rt::yield_now();
    ran_before_await = flag;
    co_await std::move(t);
    ran_after_await = flag;
    { Task<void> dropped = set_flag(dropped_ran); }
    co_await rt::yield_now();
  }());
  EXPECT_FALSE(ran_before_await);
  EXPECT_TRUE(ran_after_await);
  EXPECT_FALSE(dropped_ran);
}

// Address of the machine stack at a call from the coroutine: constant if awaiting never nests.
[[gnu::noinline]] std::uintptr_t stack_position() {
  return reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
}

struct StackSpan {
  std::uintptr_t lowest = UINTPTR_MAX;
  std::uintptr_t highest = 0;
};

Task<int> trivially_completes(StackSpan& span, bool probe) {
  if (probe) {
    const std::uintptr_t here = stack_position();
    span.lowest = std::min(span.lowest, here);
    span.highest = std::max(span.highest, here);
  }
  co_return 1;
}

Task<long> await_sequentially(int n, StackSpan& span) {
  long sum = 0;
  for (int i = 0; i < n; ++i) sum += co_await trivially_completes(span, i % 1000 == 0);
  co_return sum;
}

TEST_F(Primitives, SymmetricTransferMillionSequentialAwaitsInConstantStack) {
  StackSpan span;
  const long sum = rt::run(await_sequentially(1'000'000, span));
  EXPECT_EQ(sum, 1'000'000);
  // Had each await nested on the machine stack, the probe (every 1000th await) would have moved
  // by at least 1000 frames between probes.
  EXPECT_LT(span.highest - span.lowest, 4096u);
}

// --- sleep ------------------------------------------------------------------------------------

struct Wake {
  int id;
  bool on_time;  // not before its deadline
};

Task<void> sleep_until_and_record(TimePoint until, int id, std::vector<Wake>& order) {
  co_await rt::sleep_until(until);
  order.push_back({id, Clock::now() >= until});
}

Task<void> sleep_for_and_record(Duration d, int id, std::vector<int>& order) {
  co_await rt::sleep(d);
  order.push_back(id);
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

// --- race() -----------------------------------------------------------------------------------

struct RaceLog {
  std::vector<std::string> events;
};

// Sleeps `d`, then returns `value` (or throws when `fail`). When cancelled, runs a cleanup that
// itself awaits before re-raising, so the race must really wait for it.
Task<int> contender(std::string name, Duration d, int value, bool fail, RaceLog& log) {
  std::exception_ptr cancelled;
  try {
    co_await rt::sleep(d);
  } catch (const rt::CancelledError&) {
    cancelled = std::current_exception();
    log.events.push_back(name + " cancelled");
  }
  if (cancelled) {
    co_await rt::sleep(20ms);
    log.events.push_back(name + " cleanup done");
    std::rethrow_exception(cancelled);
  }
  log.events.push_back(name + " finished");
  if (fail) throw std::runtime_error(name + " failed");
  co_return value;
}

bool before(const std::vector<std::string>& events, const std::string& a, const std::string& b) {
  auto ia = std::find(events.begin(), events.end(), a);
  auto ib = std::find(events.begin(), events.end(), b);
  return ia != events.end() && ib != events.end() && ia < ib;
}

TEST_F(Primitives, RaceFirstResultWinsLosersCancelledAndAwaited) {
  RaceLog log;
  size_t winner = 99;
  int value = 0;
  rt::run([&]() -> Task<void> {
    std::vector<Task<int>> contenders;
    contenders.push_back(contender("slow", 10s, 1, false, log));
    contenders.push_back(contender("fast", 10ms, 2, false, log));
    contenders.push_back(contender("slower", 20s, 3, false, log));
    rt::RaceResult<int> r = co_await rt::race(std::move(contenders));
    log.events.push_back("race returned");
    winner = r.index;
    value = r.value;
  }());
  EXPECT_EQ(winner, 1u);
  EXPECT_EQ(value, 2);
  EXPECT_EQ(log.events.size(), 6u);
  EXPECT_EQ(log.events.front(), "fast finished");
  EXPECT_EQ(log.events.back(), "race returned");
  for (const char* loser : {"slow", "slower"}) {
    const std::string name(loser);
    EXPECT_TRUE(before(log.events, name + " cancelled", name + " cleanup done")) << name;
    EXPECT_TRUE(before(log.events, name + " cleanup done", "race returned")) << name;
  }
}

TEST_F(Primitives, RaceWinnerErrorPropagatesAfterLosersCleanedUp) {
  RaceLog log;
  std::string error;
  Duration elapsed{};
  rt::run([&]() -> Task<void> {
    const TimePoint t0 = Clock::now();
    std::vector<Task<int>> contenders;
    contenders.push_back(contender("slow", 10s, 1, false, log));
    contenders.push_back(contender("failing", 10ms, 2, true, log));
    try {
      co_await rt::race(std::move(contenders));
      log.events.push_back("race returned a value");
    } catch (const std::runtime_error& e) {
      error = e.what();
      log.events.push_back("race raised");
    }
    elapsed = Clock::now() - t0;
  }());
  EXPECT_EQ(error, "failing failed");
  const std::vector<std::string> expected = {"failing finished", "slow cancelled",
                                             "slow cleanup done", "race raised"};
  EXPECT_EQ(log.events, expected);
  EXPECT_LT(elapsed, 2s);
}

// --- to_thread() ------------------------------------------------------------------------------

TEST_F(Primitives, ToThreadRoundTripsResultAndExceptionOnAnotherThread) {
  std::thread::id loop_thread, job_thread;
  std::string text, error;
  bool void_job_ran = false;
  rt::run([&]() -> Task<void> {
    loop_thread = std::this_thread::get_id();
    job_thread = co_await rt::to_thread([] { return std::this_thread::get_id(); });
    text = co_await rt::to_thread([] { return std::string("from a pool thread"); });
    auto flag = std::make_shared<std::atomic<bool>>(false);
    co_await rt::to_thread([flag] { flag->store(true); });
    void_job_ran = flag->load();
    try {
      co_await rt::to_thread([]() -> int { throw std::runtime_error("job failed"); });
    } catch (const std::runtime_error& e) {
      error = e.what();
    }
    EXPECT_EQ(std::this_thread::get_id(), loop_thread);  // the awaiter resumes on its loop
  }());
  EXPECT_NE(job_thread, std::thread::id());
  EXPECT_NE(job_thread, loop_thread);
  EXPECT_EQ(text, "from a pool thread");
  EXPECT_TRUE(void_job_ran);
  EXPECT_EQ(error, "job failed");
}

// A blocking job held until the test opens the gate.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  std::atomic<bool> started{false};
  std::atomic<bool> finished{false};

  void pass() {
    started.store(true);
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [this] { return open; });
  }
  void release() {
    {
      std::lock_guard<std::mutex> lock(mu);
      open = true;
    }
    cv.notify_all();
  }
};

struct BlockedAwaiter {
  bool cancelled = false;
  bool job_still_running = false;
  TimePoint resumed_at{};
};

Task<void> await_blocking_job(std::shared_ptr<Gate> gate, BlockedAwaiter& log) {
  try {
    co_await rt::to_thread([gate] {
      gate->pass();
      gate->finished.store(true);
      return 1;
    });
  } catch (const rt::CancelledError&) {
    log.cancelled = true;
    log.resumed_at = Clock::now();
    log.job_still_running = gate->started.load() && !gate->finished.load();
    throw;
  }
}

TEST_F(Primitives, ToThreadCancellationResumesAwaiterWhileJobStillRuns) {
  auto gate = std::make_shared<Gate>();
  BlockedAwaiter log;
  TimePoint cancelled_at{};
  bool child_cancelled = false, job_started = false, job_finished_eventually = false;
  rt::run([&]() -> Task<void> {
    rt::TaskHandle<void> child;
    rt::TaskGroup group;
    co_await group.run([&]() -> Task<void> {
      child = group.spawn(await_blocking_job(gate, log), "blocked");
      for (int i = 0; i < 2000 && !gate->started.load(); ++i) co_await rt::sleep(1ms);
      job_started = gate->started.load();
      cancelled_at = Clock::now();
      child.cancel("stop waiting");
    }());
    child_cancelled = child.cancelled();
    // Only now let the job finish; its late result is discarded.
    gate->release();
    for (int i = 0; i < 2000 && !gate->finished.load(); ++i) co_await rt::sleep(1ms);
    job_finished_eventually = gate->finished.load();
  }());
  EXPECT_TRUE(job_started);
  EXPECT_TRUE(log.cancelled);
  EXPECT_TRUE(child_cancelled);
  EXPECT_TRUE(log.job_still_running);
  EXPECT_LT(log.resumed_at - cancelled_at, 1s);
  EXPECT_TRUE(job_finished_eventually);
}

// --- Runtime ----------------------------------------------------------------------------------

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
  EXPECT_EQ(runtime.leftover_tags(), 0u);
}

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

// --- TaskState --------------------------------------------------------------------------------

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
  EXPECT_EQ(runtime.leftover_tags(), 0u);
}

}  // namespace
