// race() (runtime/race.h): the first result wins, the losers are cancelled and awaited (their
// cleanup included) before race() returns, and a winner's error propagates.
//
// Timing: only generous bounds, never precise durations. Coroutine lambdas that capture by
// reference are only awaited in the same full-expression; spawned tasks are free functions taking
// parameters.
#include <algorithm>
#include <chrono>
#include <exception>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/errors.h"
#include "runtime/race.h"
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

}  // namespace
