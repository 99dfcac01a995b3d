// race(): run several tasks concurrently; the first to finish wins, the others are cancelled and
// awaited before race() returns (nothing is left running). If the winner failed, its error is
// raised. Losers' outcomes are discarded, except a FatalError, which always propagates. Cancelling
// the caller cancels every contender.
#pragma once

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "runtime/task.h"
#include "runtime/task_group.h"

namespace curfew::rt {

template <class T>
struct RaceResult {
  size_t index;  // position of the winner in the contenders
  T value;
};
template <>
struct RaceResult<void> {
  size_t index;
};

namespace detail {
template <class T>
struct RaceState {
  std::optional<size_t> winner;
  std::exception_ptr error;
  std::conditional_t<std::is_void_v<T>, bool, std::optional<T>> value{};
  std::vector<TaskHandle<void>> contenders;

  void finish(size_t index) {
    winner = index;
    for (size_t i = 0; i < contenders.size(); ++i) {
      if (i != index) contenders[i].cancel("lost the race");
    }
  }
};

template <class T>
Task<void> contend(RaceState<T>& race, size_t index, Task<T> task) {
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(task);
      if (!race.winner) race.finish(index);
    } else {
      T v = co_await std::move(task);
      if (!race.winner) {
        race.value.emplace(std::move(v));
        race.finish(index);
      }
    }
  } catch (const CancelledError&) {
    if (race.winner) co_return;  // a loser, cancelled by the race
    throw;
  } catch (const FatalError&) {
    throw;  // never a race's outcome: it stops the structure (the group propagates it)
  } catch (...) {
    if (!race.winner) {
      race.error = std::current_exception();
      race.finish(index);
    }
  }
}
}  // namespace detail

template <class T>
Task<RaceResult<T>> race(std::vector<Task<T>> contenders) {
  if (contenders.empty()) throw std::invalid_argument("race(): no contenders");
  detail::RaceState<T> state;
  TaskGroup group;
  co_await group.run(
      [](TaskGroup& g, detail::RaceState<T>& s, std::vector<Task<T>>& tasks) -> Task<void> {
        for (size_t i = 0; i < tasks.size(); ++i) {
          s.contenders.push_back(g.spawn(detail::contend(s, i, std::move(tasks[i])),
                                         "contender-" + std::to_string(i)));
        }
        co_return;
      }(group, state, contenders));
  if (state.error) std::rethrow_exception(state.error);
  if (!state.winner) throw CancelledError("race: every contender was cancelled");
  if constexpr (std::is_void_v<T>) {
    co_return RaceResult<void>{*state.winner};
  } else {
    co_return RaceResult<T>{*state.winner, std::move(*state.value)};
  }
}

}  // namespace curfew::rt
