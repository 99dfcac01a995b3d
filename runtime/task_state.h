// TaskState: what asyncio keeps in a Task object — the cancellation requests, the suspension
// point it waits at, and its deadline scopes. Every spawned task (a TaskGroup child, a shielded
// body, a runtime root) owns one; coroutines awaited directly (Task<T> chains) share their
// awaiter's TaskState, exactly as `await coro()` runs inside the awaiting asyncio Task.
//
// Single-threaded: a TaskState is only touched from the loop thread that runs it.
#pragma once

#include <optional>
#include <string>

#include "runtime/clock.h"

namespace curfew::rt {

class Loop;

// A place where a task is suspended that knows how to abort what it waits for (cancel a timer,
// TryCancel a gRPC call, cancel a child task...). The task is resumed by the normal completion
// path of that operation, never from inside cancel(): no re-entrancy, no pending tag left behind.
class Suspension {
 public:
  // Called at most once per suspension, on the loop thread, when the waiting task is cancelled.
  virtual void cancel() noexcept = 0;

 protected:
  ~Suspension() = default;
};

// A deadline scope entered by a task (see timeout.h), kept as an intrusive stack.
struct DeadlineEntry {
  std::optional<TimePoint> when;
  DeadlineEntry* outer = nullptr;
};

class TaskState {
 public:
  // `parent` is the task that spawned this one; its deadline scopes also bound this task when
  // `inherit_deadline` is true (TaskGroup children), not for shielded bodies.
  TaskState(Loop& loop, std::string name, TaskState* parent, bool inherit_deadline);
  TaskState(const TaskState&) = delete;
  TaskState& operator=(const TaskState&) = delete;

  Loop& loop() const noexcept { return *loop_; }
  const std::string& name() const noexcept { return name_; }
  void set_name(std::string name) { name_ = std::move(name); }

  // Requests cancellation (asyncio Task.cancel): counts the request, remembers `reason`, and if
  // the task is suspended aborts the operation it waits for; the task then sees CancelledError at
  // that suspension point (or at its next one). Returns false when the task has already finished.
  bool cancel(std::string reason = {});

  // Counts one more cancellation request without delivering it, for a task that is already being
  // cancelled: it is unwinding anyway, and a second CancelledError would cut its cleanup short.
  // Withdrawn with uncancel() like any other request.
  void add_cancel_request() noexcept;

  // Withdraws one cancellation request (asyncio Task.uncancel) and returns the remaining count.
  // When it reaches zero a not-yet-delivered cancellation is rescinded too (Python 3.13).
  int uncancel() noexcept;

  // Number of outstanding cancellation requests (asyncio Task.cancelling).
  int cancelling() const noexcept { return cancel_requests_; }

  // When the latest cancellation was requested (for measuring how fast it propagates).
  TimePoint last_cancel_at() const noexcept { return last_cancel_at_; }

  // True when a cancellation is waiting to be delivered at the next suspension point.
  bool cancel_pending() const noexcept { return must_cancel_; }

  bool done() const noexcept { return done_; }
  void mark_done() noexcept { done_ = true; }

  // --- Suspension protocol, used by the runtime's awaitables. ---

  // Records that the task now waits at `point`. A cancellation already due aborts it at once.
  void suspend(Suspension& point) noexcept;

  // Clears the suspension point and throws CancelledError if a cancellation is due.
  void resume();

  // Throws CancelledError if a cancellation is due (without a suspension).
  void throw_if_cancelled();

  // --- Deadline scopes. ---

  void push_deadline(DeadlineEntry& entry) noexcept;
  void pop_deadline(DeadlineEntry& entry) noexcept;

  // Earliest deadline that bounds this task: its own scopes and, for group children, those of
  // the tasks that spawned it. Empty when no scope bounds it. The sidecar propagates it upstream.
  std::optional<TimePoint> deadline() const noexcept;

 private:
  Loop* loop_;
  std::string name_;
  TaskState* parent_;
  bool inherit_deadline_;
  int cancel_requests_ = 0;
  bool must_cancel_ = false;
  bool done_ = false;
  std::string cancel_reason_;
  TimePoint last_cancel_at_{};
  Suspension* suspended_at_ = nullptr;
  bool suspension_cancelled_ = false;
  DeadlineEntry* deadlines_ = nullptr;
};

}  // namespace curfew::rt
