#include "runtime/task_group.h"

#include <cassert>

namespace curfew::rt {

// The owner waiting for the last child. Cancelling the owner here aborts the children; the owner
// resumes (and sees the cancellation) once they have all finished.
class TaskGroup::Join final : public Suspension, public Runnable {
 public:
  explicit Join(TaskGroup& group) : group_(group) {}
  bool await_ready() const noexcept { return group_.live_ == 0; }
  template <RuntimePromise P>
  void await_suspend(std::coroutine_handle<P> owner) noexcept {
    waiter_ = owner;
    group_.join_ = this;
    owner.promise().task_state()->suspend(*this);
  }
  void await_resume() { group_.owner_->resume(); }

  void cancel() noexcept override {
    if (!group_.aborting_) group_.abort();
  }
  void run() override { waiter_.resume(); }

 private:
  TaskGroup& group_;
  std::coroutine_handle<> waiter_;
};

TaskGroup::~TaskGroup() { assert(live_ == 0 && "TaskGroup destroyed with live children"); }

void TaskGroup::check_can_spawn() const {
  if (state_ == State::kNew) {
    throw std::logic_error("TaskGroup: spawn() before run(): the group has no owning task yet");
  }
  if (state_ == State::kFinished)
    throw std::logic_error("TaskGroup: spawn() after the group finished");
  if (aborting_) throw std::logic_error("TaskGroup: spawn() refused, the group is shutting down");
}

void TaskGroup::adopt(detail::SpawnedBase& child) {
  child.next_live = children_;
  if (children_ != nullptr) children_->prev_live = &child;
  children_ = &child;
  ++live_;
  child.start();
}

void TaskGroup::abort() {
  aborting_ = true;
  for (detail::SpawnedBase* c = children_; c != nullptr; c = c->next_live) {
    c->cancel("task group is shutting down");
  }
}

void TaskGroup::spawned_finished(detail::SpawnedBase& child) noexcept {
  // Unlink.
  if (child.prev_live != nullptr) child.prev_live->next_live = child.next_live;
  if (child.next_live != nullptr) child.next_live->prev_live = child.prev_live;
  if (children_ == &child) children_ = child.next_live;
  child.prev_live = child.next_live = nullptr;
  --live_;

  const std::exception_ptr& error = child.error();
  if (error && !is_cancellation(error)) {
    if (is_fatal(error) && !fatal_) fatal_ = error;
    failures_.push_back(Failure{child.name(), error});
    if (!aborting_) {
      abort();
      if (!exiting_) {
        // Interrupt the body; withdrawn again in run(). An owner already being cancelled from
        // outside is unwinding anyway: the request is only counted, so that the body's cleanup
        // awaits are not cut short (and a timeout in the body does not claim the cancellation).
        cancelled_owner_ = true;
        if (owner_->cancelling() > owner_cancelling_at_entry_) {
          owner_->add_cancel_request();
        } else {
          owner_->cancel("task group: task '" + child.name() + "' failed");
        }
      }
    }
  }
  if (live_ == 0 && join_ != nullptr) {
    owner_->loop().post(*join_);
    join_ = nullptr;
  }
}

Task<void> TaskGroup::run(Task<void> body) {
  TaskState& owner = co_await this_task{};
  if (state_ != State::kNew) throw std::logic_error("TaskGroup: run() entered twice");
  state_ = State::kRunning;
  owner_ = &owner;
  owner_cancelling_at_entry_ = owner.cancelling();

  std::exception_ptr body_error;
  try {
    co_await std::move(body);
  } catch (...) {
    body_error = std::current_exception();
  }
  exiting_ = true;
  if (body_error && !aborting_) abort();

  std::exception_ptr join_cancellation;
  while (live_ > 0) {
    Join join(*this);
    try {
      co_await join;
    } catch (const CancelledError&) {
      join_cancellation = std::current_exception();
      if (!aborting_) abort();
    }
  }
  state_ = State::kFinished;

  // Withdrawn whatever the outcome, a fatal error included.
  if (cancelled_owner_) owner.uncancel();
  if (fatal_) std::rethrow_exception(fatal_);
  if (is_fatal(body_error)) std::rethrow_exception(body_error);

  const bool body_cancelled = is_cancellation(body_error);
  if (body_error && !body_cancelled) {
    failures_.push_back(Failure{"", body_error});
    throw ErrorGroup(std::move(failures_));
  }
  if (owner.cancelling() > owner_cancelling_at_entry_) {
    // Cancelled from outside: raise the latest cancellation of the owner, which carries the
    // outside request's reason (the body's may be the group's own, withdrawn above).
    owner.throw_if_cancelled();  // requested but not delivered yet: deliver it here
    if (join_cancellation) std::rethrow_exception(join_cancellation);
    if (body_cancelled) std::rethrow_exception(body_error);
  }
  if (!failures_.empty()) throw ErrorGroup(std::move(failures_));
  if (body_cancelled && !cancelled_owner_) std::rethrow_exception(body_error);
}

}  // namespace curfew::rt
