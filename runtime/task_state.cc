#include "runtime/task_state.h"

#include <algorithm>

#include "runtime/errors.h"

namespace curfew::rt {

TaskState::TaskState(Loop& loop, std::string name, TaskState* parent, bool inherit_deadline)
    : loop_(&loop), name_(std::move(name)), parent_(parent), inherit_deadline_(inherit_deadline) {}

bool TaskState::cancel(std::string reason) {
  if (done_) return false;
  ++cancel_requests_;
  must_cancel_ = true;
  cancel_reason_ = std::move(reason);
  last_cancel_at_ = Clock::now();
  if (suspended_at_ != nullptr && !suspension_cancelled_) {
    suspension_cancelled_ = true;
    suspended_at_->cancel();
  }
  return true;
}

void TaskState::add_cancel_request() noexcept {
  if (!done_) ++cancel_requests_;
}

int TaskState::uncancel() noexcept {
  if (cancel_requests_ > 0) --cancel_requests_;
  if (cancel_requests_ == 0) must_cancel_ = false;
  return cancel_requests_;
}

void TaskState::suspend(Suspension& point) noexcept {
  suspended_at_ = &point;
  suspension_cancelled_ = false;
  if (must_cancel_) {
    suspension_cancelled_ = true;
    point.cancel();
  }
}

void TaskState::resume() {
  suspended_at_ = nullptr;
  throw_if_cancelled();
}

void TaskState::throw_if_cancelled() {
  if (!must_cancel_) return;
  must_cancel_ = false;
  throw CancelledError(cancel_reason_);
}

void TaskState::push_deadline(DeadlineEntry& entry) noexcept {
  entry.outer = deadlines_;
  deadlines_ = &entry;
}

void TaskState::pop_deadline(DeadlineEntry& entry) noexcept {
  // Scopes nest strictly within a task, so the entry is on top; unlink defensively anyway.
  for (DeadlineEntry** p = &deadlines_; *p != nullptr; p = &(*p)->outer) {
    if (*p == &entry) {
      *p = entry.outer;
      break;
    }
  }
  entry.outer = nullptr;
}

std::optional<TimePoint> TaskState::deadline() const noexcept {
  std::optional<TimePoint> earliest;
  for (const TaskState* t = this; t != nullptr; t = t->inherit_deadline_ ? t->parent_ : nullptr) {
    for (const DeadlineEntry* e = t->deadlines_; e != nullptr; e = e->outer) {
      if (e->when && (!earliest || *e->when < *earliest)) earliest = e->when;
    }
  }
  return earliest;
}

}  // namespace curfew::rt
