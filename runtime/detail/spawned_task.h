// SpawnedTask: a Task running in a TaskState of its own (a TaskGroup child, a shielded body, a
// runtime root), and TaskHandle, the caller's view of it.
//
// The coroutine frame is destroyed the moment the task finishes; only the small SpawnedTask
// record (result, error, name) lives on while a TaskHandle refers to it.
#pragma once

#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "runtime/detail/runnable.h"
#include "runtime/errors.h"
#include "runtime/loop.h"
#include "runtime/task.h"

namespace curfew::rt {
namespace detail {

class SpawnedBase;

// Told when a spawned task ends (on its loop thread, from the task's final suspension).
class SpawnObserver {
 public:
  virtual void spawned_finished(SpawnedBase& task) noexcept = 0;

 protected:
  ~SpawnObserver() = default;
};

class SpawnedBase : public TaskState, private Runnable, private TaskOwner {
 public:
  SpawnedBase(Loop& loop, std::string name, TaskState* parent, bool inherit_deadline,
              SpawnObserver& observer)
      : TaskState(loop, std::move(name), parent, inherit_deadline), observer_(&observer) {}
  virtual ~SpawnedBase() = default;

  // Queues the first step on the loop (asyncio create_task: the task starts on the next pass).
  void start() { loop().post(*this); }

  // The task's error after it finished: its exception, a CancelledError, or null on success.
  const std::exception_ptr& error() const noexcept { return error_; }
  bool cancelled() const noexcept { return done() && is_cancellation(error_); }

  void add_ref() noexcept { ++refs_; }
  void release() noexcept {
    if (--refs_ == 0) delete this;
  }

  // Intrusive list links for the owner's set of live tasks.
  SpawnedBase* prev_live = nullptr;
  SpawnedBase* next_live = nullptr;

 protected:
  // Binds the body to this TaskState and returns its handle to resume.
  virtual std::coroutine_handle<> bind_body(TaskOwner& owner) = 0;
  // Moves the finished body's outcome into this record, destroys its frame, returns its error.
  virtual std::exception_ptr collect_body() noexcept = 0;
  // Drops a body that never started.
  virtual void drop_body() noexcept = 0;

 private:
  // First step: a task cancelled before it started never runs any of its code.
  void run() override {
    if (cancel_pending()) {
      try {
        throw_if_cancelled();
      } catch (...) {
        error_ = std::current_exception();
      }
      drop_body();
      finish();
      return;
    }
    bind_body(*this).resume();
  }

  void task_finished() noexcept override {
    error_ = collect_body();
    finish();
  }

  void finish() noexcept {
    mark_done();
    observer_->spawned_finished(*this);
    release();  // the running reference
  }

  SpawnObserver* observer_;
  std::exception_ptr error_;
  int refs_ = 1;
};

template <class T>
class Spawned final : public SpawnedBase {
 public:
  Spawned(Task<T> body, Loop& loop, std::string name, TaskState* parent, bool inherit_deadline,
          SpawnObserver& observer)
      : SpawnedBase(loop, std::move(name), parent, inherit_deadline, observer),
        body_(std::move(body)) {}

  // The value of a task that finished without error.
  std::add_lvalue_reference_t<T> value()
    requires(!std::is_void_v<T>)
  {
    return *value_;
  }

 private:
  std::coroutine_handle<> bind_body(detail::TaskOwner& owner) override {
    body_.handle().promise().bind_owner(this, &owner);
    return body_.handle();
  }

  std::exception_ptr collect_body() noexcept override {
    auto& promise = body_.handle().promise();
    std::exception_ptr error = promise.error();
    if constexpr (!std::is_void_v<T>) {
      if (!error) value_.emplace(promise.take_result());
    }
    body_ = Task<T>();  // frees the frame now: finished tasks are not kept around
    return error;
  }

  void drop_body() noexcept override { body_ = Task<T>(); }

  Task<T> body_;
  struct Empty {};
  [[no_unique_address]] std::conditional_t<std::is_void_v<T>, Empty, std::optional<T>> value_;
};

}  // namespace detail

// A reference to a spawned task: read its outcome once it finished, or cancel it.
template <class T>
class TaskHandle {
 public:
  TaskHandle() = default;
  explicit TaskHandle(detail::Spawned<T>* task) : task_(task) { task_->add_ref(); }
  TaskHandle(const TaskHandle& o) : task_(o.task_) {
    if (task_) task_->add_ref();
  }
  TaskHandle(TaskHandle&& o) noexcept : task_(std::exchange(o.task_, nullptr)) {}
  TaskHandle& operator=(TaskHandle o) noexcept {
    std::swap(task_, o.task_);
    return *this;
  }
  ~TaskHandle() {
    if (task_) task_->release();
  }

  bool valid() const noexcept { return task_ != nullptr; }
  bool done() const noexcept { return task_->done(); }
  bool cancelled() const noexcept { return task_->cancelled(); }
  const std::string& name() const noexcept { return task_->name(); }

  // Requests cancellation of the task (see TaskState::cancel). False if it already finished.
  bool cancel(std::string reason = {}) { return task_->cancel(std::move(reason)); }

  // The task's error once it finished (CancelledError when cancelled), null on success.
  std::exception_ptr error() const {
    require_done();
    return task_->error();
  }

  // The task's value; rethrows its error. Only after the task finished.
  decltype(auto) result() const {
    require_done();
    if (task_->error()) std::rethrow_exception(task_->error());
    if constexpr (!std::is_void_v<T>) return task_->value();
  }

 private:
  void require_done() const {
    if (!task_->done())
      throw std::logic_error("TaskHandle: task '" + name() + "' has not finished");
  }
  detail::Spawned<T>* task_ = nullptr;
};

}  // namespace curfew::rt
