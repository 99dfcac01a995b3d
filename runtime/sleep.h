// sleep(): suspend the calling task for a while. A cancellation point like every other: a
// cancelled sleep is removed from the loop's timers at once and the task resumes with
// CancelledError. sleep(0) (and yield_now()) still suspends for one loop pass.
#pragma once

#include <coroutine>

#include "runtime/clock.h"
#include "runtime/detail/runnable.h"
#include "runtime/detail/timers.h"
#include "runtime/loop.h"
#include "runtime/task.h"

namespace curfew::rt {

class [[nodiscard]] SleepAwaiter final : private TimerNode, private Runnable, private Suspension {
 public:
  explicit SleepAwaiter(TimePoint until) noexcept : until_(until) {}
  SleepAwaiter(const SleepAwaiter&) = delete;
  SleepAwaiter& operator=(const SleepAwaiter&) = delete;

  bool await_ready() const noexcept { return false; }
  template <RuntimePromise P>
  void await_suspend(std::coroutine_handle<P> caller) noexcept {
    waiter_ = caller;
    task_ = caller.promise().task_state();
    Loop& loop = task_->loop();
    if (until_ <= Clock::now()) {
      loop.post(*this);
    } else {
      loop.timers().add(*this, until_);
    }
    task_->suspend(*this);
  }
  void await_resume() { task_->resume(); }

 private:
  void fire() override { task_->loop().post(*this); }
  void run() override { waiter_.resume(); }
  void cancel() noexcept override {
    task_->loop().timers().remove(*this);
    task_->loop().post(*this);
  }

  TimePoint until_;
  TaskState* task_ = nullptr;
  std::coroutine_handle<> waiter_;
};

// Suspends the calling task for `d` (at least one loop pass, even when d <= 0).
inline SleepAwaiter sleep(Duration d) noexcept { return SleepAwaiter(Clock::now() + d); }

// Suspends the calling task until `t`.
inline SleepAwaiter sleep_until(TimePoint t) noexcept { return SleepAwaiter(t); }

// Lets every other ready task run once (asyncio.sleep(0)).
inline SleepAwaiter yield_now() noexcept { return SleepAwaiter(TimePoint::min()); }

}  // namespace curfew::rt
