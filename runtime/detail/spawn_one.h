// Running one task in a TaskState of its own and waiting for it: the building block of shield().
#pragma once

#include <coroutine>

#include "runtime/detail/spawned_task.h"

namespace curfew::rt::detail {

// Spawns `body` as a separate task that one coroutine then awaits. A cancellation of the waiting
// task is deferred until the body has finished (that is what a shield is); the waiter then sees
// it at its resumption.
template <class T>
class SpawnOne final : private SpawnObserver, private Runnable, private Suspension {
 public:
  SpawnOne(Task<T> body, Loop& loop, std::string name, TaskState* parent, bool inherit_deadline) {
    auto* task =
        new Spawned<T>(std::move(body), loop, std::move(name), parent, inherit_deadline, *this);
    handle_ = TaskHandle<T>(task);
    task->start();
  }
  SpawnOne(const SpawnOne&) = delete;
  SpawnOne& operator=(const SpawnOne&) = delete;

  const TaskHandle<T>& handle() const noexcept { return handle_; }

  bool await_ready() const noexcept { return handle_.done(); }
  template <RuntimePromise P>
  void await_suspend(std::coroutine_handle<P> caller) noexcept {
    waiter_ = caller;
    waiter_task_ = caller.promise().task_state();
    waiter_task_->suspend(*this);
  }
  void await_resume() {
    if (waiter_task_ != nullptr) waiter_task_->resume();
  }

 private:
  void spawned_finished(SpawnedBase&) noexcept override {
    if (waiter_) waiter_task_->loop().post(*this);
  }
  void run() override { waiter_.resume(); }
  void cancel() noexcept override {}

  TaskHandle<T> handle_;
  std::coroutine_handle<> waiter_;
  TaskState* waiter_task_ = nullptr;
};

}  // namespace curfew::rt::detail
