// before_poll() and BeforePollEvent (runtime/before_poll.h): a waiter runs after the tasks that
// were ready before it, once per burst however often the event is set, never starves I/O nor
// is starved by a loop that stays busy, and a cancelled waiter leaves the loop's list at once.
//
// Timing: only generous bounds. Coroutine lambdas that capture by reference are only awaited in
// the same full-expression.
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/before_poll.h"
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
using rt::Clock;
using rt::Task;

namespace {

class BeforePollTest : public Primitives {};

Task<void> record(std::vector<std::string>& log, std::string what) {
  log.push_back(std::move(what));
  co_return;
}

Task<void> before_poll_then_record(std::vector<std::string>& log) {
  co_await rt::before_poll();
  log.push_back("before-poll");
}

TEST_F(BeforePollTest, RunsAfterEveryTaskReadyBeforeIt) {
  std::vector<std::string> log;
  rt::run([&]() -> Task<void> {
    rt::TaskGroup group;
    co_await group.run([&]() -> Task<void> {
      group.spawn(before_poll_then_record(log), "waiter");
      co_await rt::yield_now();  // the waiter is on the before-poll list now
      for (int i = 0; i < 20; ++i) group.spawn(record(log, "task"), "task");
    }());
  }());
  ASSERT_EQ(log.size(), 21u);
  EXPECT_EQ(log.back(), "before-poll");  // queued first, yet after all 20
}

// A chain that spans passes: each link readies the next one for the next pass.
Task<void> chain(std::vector<std::string>& log, int links) {
  for (int i = 0; i < links; ++i) co_await rt::yield_now();
  log.push_back("chain");
}

// The waiter runs after the whole burst: after the tasks that the tasks ready before it make
// ready in later passes, not merely after one more pass (the writer's old "let one pass go by").
// A loop that stays busy longer than its repoll interval gives the turn at its next poll instead
// (ALoopThatStaysBusyStillGivesTheWaiterItsTurn); the interval is made long here so that a slow
// build (ASan at -O0) cannot reach it within the chain.
TEST_F(BeforePollTest, RunsAfterTheTasksThoseReadyInLaterPasses) {
  constexpr int kTrials = 20;
  int waiter_last = 0;
  rt::run([&]() -> Task<void> {
    rt::Loop::current()->set_repoll_interval(10s);
    for (int trial = 0; trial < kTrials; ++trial) {
      std::vector<std::string> log;
      rt::TaskGroup group;
      co_await group.run([&]() -> Task<void> {
        group.spawn(before_poll_then_record(log), "waiter");
        group.spawn(chain(log, 3), "chain");
        co_return;
      }());
      if (log.size() == 2 && log.back() == "before-poll") ++waiter_last;
    }
  }());
  EXPECT_EQ(waiter_last, kTrials);
}

Task<void> wait_and_count(rt::BeforePollEvent& event, int& wakeups, int bursts) {
  for (int i = 0; i < bursts; ++i) {
    co_await event.wait();
    event.clear();
    ++wakeups;
  }
}

Task<void> set_it(rt::BeforePollEvent& event, int& sets) {
  event.set();
  ++sets;
  co_return;
}

TEST_F(BeforePollTest, AnEventSetManyTimesInABurstWakesItsWaiterOnce) {
  int wakeups = 0, sets = 0;
  int wakeups_after_first_burst = -1;
  rt::run([&]() -> Task<void> {
    rt::BeforePollEvent event;
    rt::TaskGroup group;
    co_await group.run([&]() -> Task<void> {
      group.spawn(wait_and_count(event, wakeups, 2), "writer");
      co_await rt::yield_now();
      for (int i = 0; i < 50; ++i) group.spawn(set_it(event, sets), "setter");
      co_await rt::sleep(5ms);  // the burst is over, the loop has polled
      wakeups_after_first_burst = wakeups;
      event.set();  // the second burst: one set
    }());
  }());
  EXPECT_EQ(sets, 50);
  EXPECT_EQ(wakeups_after_first_burst, 1);
  EXPECT_EQ(wakeups, 2);
}

TEST_F(BeforePollTest, WaitingOnAnEventAlreadySetStillWaitsForTheBurstToEnd) {
  std::vector<std::string> log;
  rt::run([&]() -> Task<void> {
    rt::BeforePollEvent event;
    event.set();
    rt::TaskGroup group;
    co_await group.run([&]() -> Task<void> {
      for (int i = 0; i < 10; ++i) group.spawn(record(log, "task"), "task");
      co_await event.wait();  // set, but the 10 tasks readied before run first
      log.push_back("waiter");
    }());
  }());
  ASSERT_EQ(log.size(), 11u);
  EXPECT_EQ(log.back(), "waiter");
}

struct CancelLog {
  bool cancelled = false;
  bool returned = false;
};

Task<void> wait_event_and_log(rt::BeforePollEvent& event, CancelLog& log) {
  try {
    co_await event.wait();
    log.returned = true;
  } catch (const rt::CancelledError&) {
    log.cancelled = true;
    throw;
  }
}

Task<void> before_poll_and_log(CancelLog& log) {
  try {
    co_await rt::before_poll();
    log.returned = true;
  } catch (const rt::CancelledError&) {
    log.cancelled = true;
    throw;
  }
}

TEST_F(BeforePollTest, ACancelledWaiterLeavesTheListAtOnceAndALaterSetDoesNotTouchIt) {
  CancelLog queued_then_cancelled, waiting_then_cancelled, plain_cancelled, survivor;
  bool later_set_ok = false;
  rt::run([&]() -> Task<void> {
    rt::BeforePollEvent first, second, third;
    rt::TaskGroup group;
    co_await group.run([&]() -> Task<void> {
      auto a = group.spawn(wait_event_and_log(first, queued_then_cancelled), "queued");
      auto b = group.spawn(wait_event_and_log(second, waiting_then_cancelled), "waiting");
      auto c = group.spawn(before_poll_and_log(plain_cancelled), "plain");
      group.spawn(wait_event_and_log(third, survivor), "survivor");
      co_await rt::yield_now();  // all four suspended
      first.set();               // the list: c (queued when it suspended), a,
      third.set();               // then the survivor
      a.cancel("test");          // off the list again, from its middle
      b.cancel("test");          // never queued
      c.cancel("test");          // off its head
      co_await rt::sleep(2ms);
      first.set();  // the cancelled waiter is gone: nothing to queue
      second.set();
      later_set_ok = true;
    }());
  }());
  EXPECT_TRUE(queued_then_cancelled.cancelled);
  EXPECT_FALSE(queued_then_cancelled.returned);
  EXPECT_TRUE(waiting_then_cancelled.cancelled);
  EXPECT_TRUE(plain_cancelled.cancelled);
  EXPECT_FALSE(plain_cancelled.returned);
  EXPECT_TRUE(survivor.returned);  // the list still held it after its neighbour left
  EXPECT_FALSE(survivor.cancelled);
  EXPECT_TRUE(later_set_ok);
}

// The turn came (the waiters are on the ready list, in order) and the first to run cancels the
// others before they have run: each resumes once, with CancelledError; the cancel path must not
// queue a waiter that is already queued.
Task<void> before_poll_then_cancel(std::vector<rt::TaskHandle<void>>& victims, bool& ran) {
  co_await rt::before_poll();
  for (auto& victim : victims) victim.cancel("test");
  ran = true;
}

TEST_F(BeforePollTest, AWaiterCancelledAfterItsTurnCameResumesOnceWithCancelledError) {
  CancelLog plain, on_event;
  bool canceller_ran = false;
  rt::run([&]() -> Task<void> {
    rt::BeforePollEvent event;
    std::vector<rt::TaskHandle<void>> victims;
    rt::TaskGroup group;
    co_await group.run([&]() -> Task<void> {
      group.spawn(before_poll_then_cancel(victims, canceller_ran), "canceller");
      victims.push_back(group.spawn(before_poll_and_log(plain), "plain"));
      victims.push_back(group.spawn(wait_event_and_log(event, on_event), "on-event"));
      co_await rt::yield_now();  // all three suspended, the canceller first on the list
      event.set();
    }());
  }());
  EXPECT_TRUE(canceller_ran);
  EXPECT_TRUE(plain.cancelled);
  EXPECT_FALSE(plain.returned);
  EXPECT_TRUE(on_event.cancelled);
  EXPECT_FALSE(on_event.returned);
}

// A task that queues itself before every poll does not keep the loop from polling: a post from
// another thread (seen only by polling the loop's eventfd) arrives while it spins.
Task<void> spin_before_poll(const std::atomic<bool>& posted_seen, int& turns) {
  for (turns = 0; turns < 200'000 && !posted_seen.load(); ++turns) co_await rt::before_poll();
}

TEST_F(BeforePollTest, AWaiterThatQueuesItselfAgainDoesNotStarveIO) {
  std::atomic<bool> seen{false};
  int turns = 0;
  bool ok = false;
  rt::run([&]() -> Task<void> {
    rt::Loop* loop = rt::Loop::current();
    std::thread poster([&] {
      std::this_thread::sleep_for(2ms);
      loop->post_threadsafe([&] { seen = true; });
    });
    const auto start = Clock::now();
    co_await spin_before_poll(seen, turns);
    poster.join();
    ok = Clock::now() - start < 10s;
  }());
  EXPECT_TRUE(seen.load());
  EXPECT_LT(turns, 200'000);
  EXPECT_TRUE(ok);
}

// A loop that never runs out of ready tasks still gives a before-poll waiter its turn (at its
// next poll, a few microseconds away): it runs long before the busy task is done.
Task<void> stay_busy(const bool& waiter_ran, int& yields) {
  for (yields = 0; yields < 2'000'000 && !waiter_ran; ++yields) co_await rt::yield_now();
}

Task<void> before_poll_then_flag(bool& ran) {
  co_await rt::before_poll();
  ran = true;
}

TEST_F(BeforePollTest, ALoopThatStaysBusyStillGivesTheWaiterItsTurn) {
  bool ran = false;
  int yields = 0;
  rt::run([&]() -> Task<void> {
    rt::TaskGroup group;
    co_await group.run([&]() -> Task<void> {
      group.spawn(stay_busy(ran, yields), "busy");
      co_await rt::yield_now();
      group.spawn(before_poll_then_flag(ran), "waiter");
      co_return;
    }());
  }());
  EXPECT_TRUE(ran);
  EXPECT_LT(yields, 2'000'000);
}

}  // namespace
