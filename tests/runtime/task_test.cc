// Task<T> (runtime/task.h): values and exceptions reach the awaiter, tasks are move-only and
// lazy, and awaiting uses symmetric transfer (no stack growth).
//
// Timing: only generous bounds, never precise durations. Coroutine lambdas that capture by
// reference are only awaited in the same full-expression; spawned tasks are free functions taking
// parameters.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include <gtest/gtest.h>

#include "runtime/runtime.h"
#include "runtime/sleep.h"
#include "runtime/task.h"
#include "test_util.h"

namespace rt = curfew::rt;
using namespace std::chrono_literals;
using curfew_test::Primitives;
using rt::Clock;
using rt::Duration;
using rt::Task;
using rt::TimePoint;

namespace {

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
}  // namespace
