// TaskGroup: structured concurrency with asyncio.TaskGroup semantics.
//
//   TaskGroup group;
//   co_await group.run([&]() -> Task<void> {
//     auto a = group.spawn(fetch(1), "fetch-1");
//     group.spawn(fetch(2));
//     co_return;
//   }());
//   // every child has finished here; a.result() is readable
//
// run() cannot return before the body and every child are done. The first child failure cancels
// the siblings and the body; all failures are raised together as one ErrorGroup. Cancellations the
// group causes are never reported as failures. Cancelling the owning task cancels the body and,
// through it, every child (and their groups, recursively).
//
// Outcome of run(), in order of precedence:
//   1. a FatalError from the body or a child propagates as itself;
//   2. a non-cancellation error raised by the body joins the children's failures in an ErrorGroup
//      (the body chose to turn a cancellation into an error: it is reported, never swallowed);
//   3. a cancellation of the owner from outside the group (a request that is still outstanding
//      after the group withdrew its own) ends run() with CancelledError, keeping its reason —
//      children failing while the tree is torn down do not turn it into an error;
//   4. child failures raise an ErrorGroup listing each (nested groups stay nested);
//   5. otherwise run() returns normally.
// The group's own cancellation of its owner is withdrawn (uncancel) before run() returns or
// throws, so an enclosing timeout or group does not misfire. A child failing while the owner is
// already being cancelled from outside does not interrupt the owner a second time: the body's
// cleanup awaits complete.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/detail/spawned_task.h"
#include "runtime/errors.h"
#include "runtime/task.h"

namespace curfew::rt {

class TaskGroup final : private detail::SpawnObserver {
 public:
  TaskGroup() = default;
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;
  ~TaskGroup();

  // Runs `body` in the calling task and returns once it and every child finished (see the
  // outcome rules above). A group can be entered once; entering it again is a std::logic_error.
  Task<void> run(Task<void> body);

  // Starts `task` as a child on the next loop pass and returns a handle to it. Refused with
  // std::logic_error (and `task` destroyed, never leaked) when the group is not running: not yet
  // entered, shutting down after a failure or a cancellation, or already finished. `name` shows
  // in diagnostics and in ErrorGroup messages. Must be called on the group's loop thread.
  template <class T>
  TaskHandle<T> spawn(Task<T> task, std::string name = {}) {
    check_can_spawn();
    if (name.empty()) name = "task-" + std::to_string(++spawned_);
    auto* child = new detail::Spawned<T>(std::move(task), owner_->loop(), std::move(name), owner_,
                                         true, *this);
    adopt(*child);
    return TaskHandle<T>(child);
  }

  // Children that have not finished yet.
  size_t live() const noexcept { return live_; }

  // True once the group is cancelling its children (after a failure or a cancellation).
  bool aborting() const noexcept { return aborting_; }

 private:
  class Join;

  void check_can_spawn() const;
  void adopt(detail::SpawnedBase& child);
  void spawned_finished(detail::SpawnedBase& child) noexcept override;
  void abort();

  enum class State { kNew, kRunning, kFinished };
  State state_ = State::kNew;
  TaskState* owner_ = nullptr;
  int owner_cancelling_at_entry_ = 0;        // the owner's pending cancellations when run() began
  detail::SpawnedBase* children_ = nullptr;  // intrusive list of live children
  size_t live_ = 0;
  size_t spawned_ = 0;
  bool exiting_ = false;          // the body has finished; run() is joining the children
  bool aborting_ = false;         // children are being cancelled
  bool cancelled_owner_ = false;  // the group itself requested its owner's cancellation
  Join* join_ = nullptr;          // run() waiting for the last child
  std::vector<Failure> failures_;
  std::exception_ptr fatal_;
};

}  // namespace curfew::rt
