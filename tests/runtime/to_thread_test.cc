// to_thread() (runtime/to_thread.h): results and exceptions cross to and from a pool thread, and
// a cancelled awaiter resumes at once while its job keeps running.
//
// Timing: only generous bounds, never precise durations. Coroutine lambdas that capture by
// reference are only awaited in the same full-expression; spawned tasks are free functions taking
// parameters.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "runtime/errors.h"
#include "runtime/runtime.h"
#include "runtime/sleep.h"
#include "runtime/task.h"
#include "runtime/task_group.h"
#include "runtime/to_thread.h"
#include "test_util.h"

namespace rt = curfew::rt;
using namespace std::chrono_literals;
using curfew_test::Primitives;
using rt::Clock;
using rt::Duration;
using rt::Task;
using rt::TimePoint;

namespace {

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

// --- to_thread(): a cancelled job that has not started is dropped ------------------------------

class ToThread : public curfew_test::Primitives {};

struct QueuedJobLog {
  bool cancelled = false;
  bool returned = false;
};

Task<void> await_queued_job(std::shared_ptr<std::atomic<bool>> ran, QueuedJobLog& log) {
  try {
    co_await rt::to_thread([ran] { ran->store(true); });
    log.returned = true;
  } catch (const rt::CancelledError&) {
    log.cancelled = true;
    throw;
  }
}

TEST_F(ToThread, CancelledBeforeItsJobStartedTheJobNeverRuns) {
  // One pool thread, held by a first job: the second job is still queued when its awaiter is
  // cancelled. A third job, queued behind it, proves the pool got past the second one.
  auto gate = std::make_shared<Gate>();
  auto queued_ran = std::make_shared<std::atomic<bool>>(false);
  QueuedJobLog log;
  BlockedAwaiter blocker_log;
  bool blocker_started = false, handle_cancelled = false, third_ran = false;
  rt::run(
      [&]() -> Task<void> {
        rt::TaskGroup group;
        co_await group.run([&]() -> Task<void> {
          group.spawn(await_blocking_job(gate, blocker_log), "blocker");
          for (int i = 0; i < 2000 && !gate->started.load(); ++i) co_await rt::sleep(1ms);
          blocker_started = gate->started.load();
          auto queued = group.spawn(await_queued_job(queued_ran, log), "queued");
          co_await rt::sleep(5ms);  // the queued job is submitted, behind the blocker
          queued.cancel("not needed any more");
          co_await rt::sleep(5ms);
          handle_cancelled = queued.cancelled();
          gate->release();
          third_ran = co_await rt::to_thread([] { return true; });
        }());
      }(),
      {.blocking_threads = 1});
  EXPECT_TRUE(blocker_started);
  EXPECT_TRUE(log.cancelled);
  EXPECT_FALSE(log.returned);
  EXPECT_TRUE(handle_cancelled);
  EXPECT_TRUE(third_ran);
  EXPECT_FALSE(queued_ran->load());
}

}  // namespace
