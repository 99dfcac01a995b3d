// Resuming a task just before its loop next polls for I/O (libuv's "prepare" phase): after every
// task ready now, and every task those make ready, has run (Loop::post_before_poll).
//
//   co_await rt::before_poll();   // the rest of this burst of work has run
//
//   BeforePollEvent flush_due;     // a writer that sends what a burst queued, in one write
//   for (;;) {
//     co_await flush_due.wait();   // set() at least once, and the burst is over
//     flush_due.clear();
//     send_everything_queued();
//   }
//
// Under constant load (tasks always ready) the turn comes at the loop's next poll, at most a
// few microseconds later (Loop::set_repoll_interval). Both waits are cancellation points: a
// cancelled waiter leaves the loop's list at once and resumes with CancelledError. As with
// Event, a cancellation withdrawn (TaskState::uncancel) before the waiter ran makes it return
// early, without the turn (or the set()): waiters treat a return as "look again", never as proof.
#pragma once

#include <cassert>
#include <coroutine>

#include "runtime/detail/runnable.h"
#include "runtime/loop.h"
#include "runtime/task.h"

namespace curfew::rt {

// co_await before_poll(): see above.
class [[nodiscard]] BeforePollAwaiter final : private BeforePollRunnable, private Suspension {
 public:
  BeforePollAwaiter() = default;
  BeforePollAwaiter(const BeforePollAwaiter&) = delete;
  BeforePollAwaiter& operator=(const BeforePollAwaiter&) = delete;

  bool await_ready() const noexcept { return false; }
  template <RuntimePromise P>
  void await_suspend(std::coroutine_handle<P> caller) noexcept {
    waiter_ = caller;
    task_ = caller.promise().task_state();
    task_->loop().post_before_poll(*this);
    task_->suspend(*this);
  }
  void await_resume() { task_->resume(); }

 private:
  void run() override { waiter_.resume(); }
  // The cancel path: off the before-poll list, onto the ready list (resumes with CancelledError).
  void cancel() noexcept override {
    task_->loop().remove_before_poll(*this);
    task_->loop().post(*this);
  }

  TaskState* task_ = nullptr;
  std::coroutine_handle<> waiter_;
};

inline BeforePollAwaiter before_poll() noexcept { return {}; }

// A flag with one waiter that resumes before the loop's next poll once the flag is set: set()
// may be called many times in a burst (every frame a connection's streams queue), the waiter
// resumes once, after the burst. Unlike Event::wait(), waiting on a flag already set still waits
// for the before-poll turn: whatever the rest of the burst adds is coalesced too. Loop thread only.
class BeforePollEvent {
 public:
  BeforePollEvent() = default;
  ~BeforePollEvent() {
    assert(waiter_ == nullptr && "BeforePollEvent destroyed while a task waits on it");
  }
  BeforePollEvent(const BeforePollEvent&) = delete;
  BeforePollEvent& operator=(const BeforePollEvent&) = delete;

  bool is_set() const noexcept { return set_; }
  // Sets the flag; the waiter, if any, is queued for the before-poll turn.
  void set() noexcept {
    set_ = true;
    if (waiter_ != nullptr) waiter_->queue();
  }
  void clear() noexcept { set_ = false; }

  class Waiter;
  // Waits until the flag is set and the before-poll turn came. One waiter at a time.
  Waiter wait() noexcept;

  class Waiter final : private BeforePollRunnable, private Suspension {
   public:
    explicit Waiter(BeforePollEvent& event) noexcept : event_(event) {}
    Waiter(const Waiter&) = delete;
    Waiter& operator=(const Waiter&) = delete;

    bool await_ready() const noexcept { return false; }
    template <RuntimePromise P>
    void await_suspend(std::coroutine_handle<P> caller) noexcept {
      waiter_ = caller;
      task_ = caller.promise().task_state();
      assert(event_.waiter_ == nullptr && "two tasks wait on one BeforePollEvent");
      event_.waiter_ = this;
      if (event_.set_) queue();
      task_->suspend(*this);
    }
    void await_resume() { task_->resume(); }

   private:
    friend class BeforePollEvent;
    // Queued once: a set() while already queued (or already released to run) changes nothing.
    void queue() noexcept { task_->loop().post_before_poll(*this); }
    void run() override {
      event_.waiter_ = nullptr;
      waiter_.resume();
    }
    // The cancel path: off the before-poll list (if set() had queued it), onto the ready list.
    void cancel() noexcept override {
      task_->loop().remove_before_poll(*this);
      task_->loop().post(*this);  // run() detaches it from the event
    }

    BeforePollEvent& event_;
    TaskState* task_ = nullptr;
    std::coroutine_handle<> waiter_;
  };

 private:
  bool set_ = false;
  Waiter* waiter_ = nullptr;
};

inline BeforePollEvent::Waiter BeforePollEvent::wait() noexcept { return Waiter(*this); }

}  // namespace curfew::rt
