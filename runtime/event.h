// Event: a flag tasks can wait for (asyncio.Event), on one loop thread. wait_until() also gives
// up at a deadline — the "something happened, or it is time anyway" wait of hedging.
//
//   if (!co_await event.wait_until(Clock::now() + 20ms)) { /* 20 ms passed, not set */ }
//
// Waiting is a cancellation point.
#pragma once

#include <coroutine>
#include <optional>

#include "runtime/detail/runnable.h"
#include "runtime/detail/timers.h"
#include "runtime/loop.h"
#include "runtime/task.h"

namespace curfew::rt {

class Event {
 public:
  Event() = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  bool is_set() const noexcept { return set_; }
  // Sets the flag and wakes every waiter (on their next loop pass).
  void set() noexcept;
  void clear() noexcept { set_ = false; }

  class Waiter;
  // Waits until the flag is set; yields true.
  Waiter wait() noexcept;
  // Waits until the flag is set (true) or `deadline` passes (false).
  Waiter wait_until(TimePoint deadline) noexcept;

  class Waiter final : private TimerNode, private Runnable, private Suspension {
   public:
    Waiter(Event& event, std::optional<TimePoint> deadline) : event_(event), deadline_(deadline) {}
    Waiter(const Waiter&) = delete;
    Waiter& operator=(const Waiter&) = delete;

    bool await_ready() const noexcept { return event_.set_; }
    template <RuntimePromise P>
    void await_suspend(std::coroutine_handle<P> caller) noexcept {
      waiter_ = caller;
      task_ = caller.promise().task_state();
      next_ = event_.waiters_;
      event_.waiters_ = this;
      if (deadline_) task_->loop().timers().add(*this, *deadline_);
      task_->suspend(*this);
    }
    bool await_resume() {
      if (task_ != nullptr) task_->resume();
      // Woken by set(): true even if the flag was cleared again before this waiter ran.
      return woken_by_set_ || event_.set_;
    }

   private:
    friend class Event;
    void wake() noexcept {
      unlink();
      if (deadline_) task_->loop().timers().remove(*this);
      task_->loop().post(*this);
    }
    void unlink() noexcept {
      for (Waiter** p = &event_.waiters_; *p != nullptr; p = &(*p)->next_) {
        if (*p == this) {
          *p = next_;
          break;
        }
      }
    }
    void fire() override { wake(); }  // deadline passed
    void cancel() noexcept override { wake(); }
    void run() override { waiter_.resume(); }

    Event& event_;
    std::optional<TimePoint> deadline_;
    Waiter* next_ = nullptr;
    TaskState* task_ = nullptr;
    std::coroutine_handle<> waiter_;
    bool woken_by_set_ = false;
  };

 private:
  bool set_ = false;
  Waiter* waiters_ = nullptr;
};

inline void Event::set() noexcept {
  set_ = true;
  while (waiters_ != nullptr) {
    waiters_->woken_by_set_ = true;
    waiters_->wake();  // unlinks the head
  }
}

inline Event::Waiter Event::wait() noexcept { return Waiter(*this, std::nullopt); }
inline Event::Waiter Event::wait_until(TimePoint deadline) noexcept {
  return Waiter(*this, deadline);
}

}  // namespace curfew::rt
