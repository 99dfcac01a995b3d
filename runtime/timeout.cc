#include "runtime/timeout.h"

#include "runtime/loop.h"

namespace curfew::rt {

Timeout::~Timeout() {
  // Only reachable while entered if the awaiting coroutine frame is destroyed mid-flight.
  if (task_ != nullptr && scheduled()) task_->loop().timers().remove(*this);
}

void Timeout::enter(TaskState& task) {
  if (state_ != State::kCreated) throw_misuse("Timeout: scope entered twice");
  state_ = State::kEntered;
  task_ = &task;
  cancelling_at_entry_ = task.cancelling();
  entry_.when = when_;
  task.push_deadline(entry_);
  arm();
}

void Timeout::arm() {
  Timers& timers = task_->loop().timers();
  timers.remove(*this);
  // A deadline already past fires on the next loop pass, before the body resumes from its next
  // suspension (asyncio schedules it with call_soon).
  if (when_) timers.add(*this, *when_);
}

void Timeout::reschedule(std::optional<TimePoint> when) {
  if (state_ == State::kCreated) throw_misuse("Timeout: reschedule() on a scope never entered");
  if (state_ == State::kExited || state_ == State::kExpired) {
    throw_misuse("Timeout: reschedule() on a finished scope");
  }
  when_ = when;
  entry_.when = when;
  if (state_ == State::kEntered) arm();
}

void Timeout::fire() {
  state_ = State::kExpiring;
  task_->cancel("deadline exceeded");
}

bool Timeout::exit(bool body_failed) {
  task_->loop().timers().remove(*this);
  task_->pop_deadline(entry_);
  if (state_ != State::kExpiring) {
    state_ = State::kExited;
    return false;
  }
  state_ = State::kExpired;
  // Withdraw our request; if no other request arrived since entry, the cancellation is ours.
  return task_->uncancel() <= cancelling_at_entry_ && body_failed;
}

}  // namespace curfew::rt
