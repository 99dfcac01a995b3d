// Deadline scopes with asyncio.timeout semantics.
//
//   Timeout scope = Timeout::after(200ms);
//   Reply r = co_await scope.run(call_upstream());   // TimeoutError if 200 ms pass first
//
// When the deadline passes, the scope cancels the task it runs in; the body unwinds with
// CancelledError (its cleanup runs) and the scope that set the deadline turns that cancellation
// into TimeoutError. A cancellation from anywhere else stays a cancellation. Nested scopes: the
// earliest deadline fires; each scope only converts its own expiry. A body that completes
// although its deadline passed meanwhile (expiry racing completion) completes normally.
// The deadline of the innermost scopes is visible to the task (TaskState::deadline()), so it can
// be propagated to upstream calls.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>

#include "runtime/clock.h"
#include "runtime/detail/timers.h"
#include "runtime/errors.h"
#include "runtime/task.h"

namespace curfew::rt {

class Timeout final : private TimerNode {
 public:
  // A scope that expires at `when`; std::nullopt makes a disabled scope that never fires.
  explicit Timeout(std::optional<TimePoint> when) noexcept : when_(when) {}
  static Timeout after(Duration d) noexcept { return Timeout(Clock::now() + d); }
  static Timeout at(TimePoint t) noexcept { return Timeout(t); }
  static Timeout never() noexcept { return Timeout(std::nullopt); }

  Timeout(const Timeout&) = delete;
  Timeout& operator=(const Timeout&) = delete;
  ~Timeout();

  // Runs `body` in the calling task under this scope (asyncio: `async with timeout(...)`).
  // Throws TimeoutError when this scope's deadline interrupted the body; std::logic_error when
  // the scope was already entered.
  template <class T>
  Task<T> run(Task<T> body);

  // Moves the deadline (later, earlier, or std::nullopt to disable it) while inside the scope.
  // std::logic_error when the scope was never entered or has finished.
  void reschedule(std::optional<TimePoint> when);

  // The scope's deadline, std::nullopt for a disabled scope.
  std::optional<TimePoint> when() const noexcept { return when_; }

  // True once this scope's deadline interrupted its body.
  bool expired() const noexcept { return state_ == State::kExpiring || state_ == State::kExpired; }

 private:
  enum class State { kCreated, kEntered, kExpiring, kExpired, kExited };

  [[noreturn]] static void throw_misuse(const char* what) { throw std::logic_error(what); }
  void enter(TaskState& task);
  // Leaves the scope; returns true when the body's cancellation must become a TimeoutError.
  bool exit(bool body_failed);
  void arm();
  void fire() override;

  std::optional<TimePoint> when_;
  State state_ = State::kCreated;
  TaskState* task_ = nullptr;
  int cancelling_at_entry_ = 0;
  DeadlineEntry entry_;
};

template <class T>
Task<T> Timeout::run(Task<T> body) {
  enter(co_await this_task{});
  std::exception_ptr error;
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(body);
      exit(false);
      co_return;
    } else {
      T value = co_await std::move(body);
      exit(false);
      co_return value;
    }
  } catch (...) {
    error = std::current_exception();
  }
  if (exit(true) && is_cancellation(error)) {
    throw TimeoutError("deadline exceeded", error);
  }
  std::rethrow_exception(error);
}

// Runs `body` with a deadline `d` from now (asyncio.timeout / wait_for).
template <class T>
Task<T> timeout(Duration d, Task<T> body) {
  Timeout scope = Timeout::after(d);
  co_return co_await scope.run(std::move(body));
}

// Runs `body` with an absolute deadline (asyncio.timeout_at).
template <class T>
Task<T> deadline(TimePoint t, Task<T> body) {
  Timeout scope = Timeout::at(t);
  co_return co_await scope.run(std::move(body));
}

}  // namespace curfew::rt
