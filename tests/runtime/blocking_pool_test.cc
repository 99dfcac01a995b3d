// BlockingPool (runtime/blocking_pool.h): blocking work runs on the pool's own threads, FIFO, at
// most threads() jobs at a time; destruction finishes the running jobs, drops the queued ones
// (and anything submitted meanwhile) and joins. Through a Runtime: to_thread() is bounded by
// RuntimeOptions::blocking_threads and the loop keeps running while a job blocks.
//
// No timing is asserted. Every wait is bounded (5 s), so a broken pool fails instead of hanging.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <numeric>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/blocking_pool.h"
#include "runtime/runtime.h"
#include "runtime/sleep.h"
#include "runtime/task.h"
#include "runtime/task_group.h"
#include "runtime/to_thread.h"
#include "test_util.h"

namespace rt = curfew::rt;
using namespace std::chrono_literals;
using rt::Task;

namespace {

constexpr auto kBound = 5s;  // upper bound of every wait: only reached when the test fails

// Shared state of a test's jobs: counters under one mutex, and a gate the jobs can wait at.
struct Board {
  std::mutex mu;
  std::condition_variable cv;
  int started = 0;
  int running = 0;
  int max_running = 0;
  int done = 0;
  bool open = false;

  // Waits (bounded) until `pred` holds; returns whether it does.
  template <class Pred>
  bool await(Pred pred) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, kBound, pred);
  }
  void release() {
    {
      std::lock_guard<std::mutex> lock(mu);
      open = true;
    }
    cv.notify_all();
  }
  // A job that counts itself running until the gate opens (or the bound passes).
  void gated_job() {
    std::unique_lock<std::mutex> lock(mu);
    ++started;
    ++running;
    max_running = std::max(max_running, running);
    cv.notify_all();
    cv.wait_for(lock, kBound, [this] { return open; });
    --running;
    ++done;
    cv.notify_all();
  }
};

TEST(BlockingPoolTest, RunsJobsOnItsOwnThreadsOnly) {
  rt::BlockingPool pool(3);
  EXPECT_EQ(pool.threads(), 3);
  Board board;
  std::mutex ids_mu;
  std::multiset<std::thread::id> ids;
  constexpr int kJobs = 30;
  for (int i = 0; i < kJobs; ++i) {
    pool.submit([&] {
      {
        std::lock_guard<std::mutex> lock(ids_mu);
        ids.insert(std::this_thread::get_id());
      }
      std::lock_guard<std::mutex> lock(board.mu);
      ++board.done;
      board.cv.notify_all();
    });
  }
  ASSERT_TRUE(board.await([&] { return board.done == kJobs; }));
  std::lock_guard<std::mutex> lock(ids_mu);
  EXPECT_EQ(ids.size(), static_cast<size_t>(kJobs));
  EXPECT_EQ(ids.count(std::this_thread::get_id()), 0u);  // never on the submitting thread
  std::set<std::thread::id> distinct(ids.begin(), ids.end());
  EXPECT_LE(distinct.size(), 3u);
}

TEST(BlockingPoolTest, SingleThreadRunsJobsInSubmissionOrder) {
  rt::BlockingPool pool(1);
  Board board;
  std::vector<int> order;  // written by the one pool thread, read after `done` under board.mu
  constexpr int kJobs = 200;
  for (int i = 0; i < kJobs; ++i) {
    pool.submit([&, i] {
      std::lock_guard<std::mutex> lock(board.mu);
      order.push_back(i);
      ++board.done;
      board.cv.notify_all();
    });
  }
  ASSERT_TRUE(board.await([&] { return board.done == kJobs; }));
  std::lock_guard<std::mutex> lock(board.mu);
  std::vector<int> expected(kJobs);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(order, expected);
}

TEST(BlockingPoolTest, NeverRunsMoreThanThreadsJobsAtOnceButUsesThemAll) {
  constexpr int kThreads = 3, kJobs = 12;
  rt::BlockingPool pool(kThreads);
  Board board;
  for (int i = 0; i < kJobs; ++i) pool.submit([&board] { board.gated_job(); });
  // Every thread picks a job and blocks in it; the fourth job must wait for a free thread.
  ASSERT_TRUE(board.await([&] { return board.started >= kThreads; }));
  std::this_thread::sleep_for(50ms);  // room for a (wrong) extra job to start
  {
    std::lock_guard<std::mutex> lock(board.mu);
    EXPECT_EQ(board.started, kThreads);
    EXPECT_EQ(board.running, kThreads);
  }
  board.release();
  ASSERT_TRUE(board.await([&] { return board.done == kJobs; }));
  std::lock_guard<std::mutex> lock(board.mu);
  EXPECT_EQ(board.max_running, kThreads);
  EXPECT_EQ(board.started, kJobs);
}

// Counts its destructions: tells when a queued job (which owns one) was dropped.
struct Token {
  explicit Token(Board& board) : board_(board) {}
  ~Token() {
    std::lock_guard<std::mutex> lock(board_.mu);
    ++dropped_or_run;
    board_.cv.notify_all();
  }
  Board& board_;
  static inline int dropped_or_run = 0;  // guarded by board_.mu
};

TEST(BlockingPoolTest, DestructionFinishesRunningJobsDropsQueuedOnesAndRefusesNewOnes) {
  constexpr int kThreads = 2, kQueued = 5;
  Board board;
  Token::dropped_or_run = 0;
  std::atomic<int> queued_ran{0};
  std::atomic<bool> late_ran{false};
  std::atomic<int> running_finished{0};
  auto pool = std::make_unique<rt::BlockingPool>(kThreads);
  rt::BlockingPool* raw = pool.get();

  // One job per thread, held at the gate; the first submits one more job on its way out, while
  // the pool is being destroyed.
  for (int i = 0; i < kThreads; ++i) {
    pool->submit([&board, &running_finished, &late_ran, raw, i] {
      board.gated_job();
      if (i == 0) {
        raw->submit([&late_ran, token = std::make_shared<Token>(board)] { late_ran = true; });
      }
      running_finished.fetch_add(1);
    });
  }
  ASSERT_TRUE(board.await([&] { return board.started == kThreads; }));
  for (int i = 0; i < kQueued; ++i) {
    pool->submit(
        [&queued_ran, token = std::make_shared<Token>(board)] { queued_ran.fetch_add(1); });
  }

  int finished_when_destroyed = -1;
  std::thread destroyer([&] {
    pool.reset();  // blocks until the two running jobs are done
    finished_when_destroyed = running_finished.load();
  });
  // The queued jobs are dropped (their tokens destroyed) while the running ones still block.
  const bool queue_dropped = board.await([&] { return Token::dropped_or_run == kQueued; });
  board.release();
  destroyer.join();

  EXPECT_TRUE(queue_dropped);
  EXPECT_EQ(finished_when_destroyed, kThreads);  // the destructor waited for the running jobs
  EXPECT_EQ(queued_ran.load(), 0);
  EXPECT_FALSE(late_ran.load());                  // submitted during destruction: refused
  EXPECT_EQ(Token::dropped_or_run, kQueued + 1);  // ... and freed, not leaked
}

// --- Through a Runtime: the pool behind to_thread() -----------------------------------------

class BlockingPoolRuntime : public curfew_test::Primitives {};

Task<void> gated_to_thread(std::shared_ptr<Board> board) {
  co_await rt::to_thread([board] { board->gated_job(); });
}

TEST_F(BlockingPoolRuntime, ToThreadJobsAreBoundedByBlockingThreads) {
  constexpr int kBlocking = 2, kJobs = 6;
  auto board = std::make_shared<Board>();
  int started_before_release = -1;
  rt::run(
      [&]() -> Task<void> {
        rt::TaskGroup group;
        co_await group.run([&]() -> Task<void> {
          for (int i = 0; i < kJobs; ++i) group.spawn(gated_to_thread(board));
          // Wait on the loop (not blocking it) until the pool's threads are all busy.
          for (int i = 0; i < 5000; ++i) {
            {
              std::lock_guard<std::mutex> lock(board->mu);
              if (board->started >= kBlocking) break;
            }
            co_await rt::sleep(1ms);
          }
          co_await rt::sleep(50ms);  // room for a (wrong) extra job to start
          {
            std::lock_guard<std::mutex> lock(board->mu);
            started_before_release = board->started;
          }
          board->release();
        }());
      }(),
      {.blocking_threads = kBlocking});
  EXPECT_EQ(started_before_release, kBlocking);
  std::lock_guard<std::mutex> lock(board->mu);
  EXPECT_EQ(board->max_running, kBlocking);
  EXPECT_EQ(board->done, kJobs);
}

// Blocks on a pool thread until the gate opens (bounded); yields whether it was opened.
Task<void> wait_for_gate_on_a_pool_thread(std::shared_ptr<Board> board, bool& opened) {
  opened = co_await rt::to_thread([board] {
    std::unique_lock<std::mutex> lock(board->mu);
    return board->cv.wait_for(lock, kBound, [&] { return board->open; });
  });
}

TEST_F(BlockingPoolRuntime, LoopKeepsRunningTasksWhileAJobBlocks) {
  // The job blocks until the loop has ticked five times: possible only if it runs elsewhere.
  auto board = std::make_shared<Board>();
  bool released_by_loop = false;
  int ticks = 0;
  rt::run([&]() -> Task<void> {
    rt::TaskGroup group;
    co_await group.run([&]() -> Task<void> {
      group.spawn(wait_for_gate_on_a_pool_thread(board, released_by_loop));
      for (; ticks < 5; ++ticks) co_await rt::sleep(1ms);
      board->release();
    }());
  }());
  EXPECT_EQ(ticks, 5);
  EXPECT_TRUE(released_by_loop);
}

}  // namespace
