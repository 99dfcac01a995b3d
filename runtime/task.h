// Task<T>: the runtime's coroutine type.
//
// Lazy (nothing runs until it is awaited or spawned), move-only, and awaitable exactly once.
// The value or exception of the coroutine reaches its awaiter. Completion hands control back to
// the awaiter by symmetric transfer, so a chain of any length of sequential awaits runs in
// constant stack.
//
// A Task awaited from another Task runs inside the awaiter's TaskState (its cancellation and
// deadlines), like `await coro()` inside an asyncio Task. To run concurrently, spawn it into a
// TaskGroup.
#pragma once

#include <atomic>
#include <concepts>
#include <coroutine>
#include <cstddef>
#include <exception>
#include <utility>
#include <variant>

#include "runtime/detail/frame_allocator.h"
#include "runtime/task_state.h"

namespace curfew::rt {

template <class T = void>
class Task;

namespace detail {

// Live coroutine frames of the runtime, for leak checks in tests.
inline std::atomic<long> live_frames{0};

// Notified when a Task that was started without an awaiting coroutine (a spawned task) ends.
class TaskOwner {
 public:
  virtual void task_finished() noexcept = 0;

 protected:
  ~TaskOwner() = default;
};

class PromiseBase {
 public:
  // Frames come from a per-thread cache (detail/frame_allocator.h).
  static void* operator new(std::size_t bytes) { return allocate_frame(bytes); }
  static void operator delete(void* frame, std::size_t bytes) noexcept {
    deallocate_frame(frame, bytes);
  }

  PromiseBase() noexcept { live_frames.fetch_add(1, std::memory_order_relaxed); }
  ~PromiseBase() { live_frames.fetch_sub(1, std::memory_order_relaxed); }

  std::suspend_always initial_suspend() noexcept { return {}; }

  struct FinalAwaiter {
    bool await_ready() noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> self) noexcept {
      PromiseBase& p = self.promise();
      if (p.continuation_) return p.continuation_;
      // A spawned task: its owner reads the result and may destroy this (suspended) frame.
      p.owner_->task_finished();
      return std::noop_coroutine();
    }
    void await_resume() noexcept {}
  };
  FinalAwaiter final_suspend() noexcept { return {}; }

  TaskState* task_state() const noexcept { return task_; }

  // Binds the coroutine to the task it runs in and to what happens when it ends.
  void bind(TaskState* task, std::coroutine_handle<> continuation) noexcept {
    task_ = task;
    continuation_ = continuation;
  }
  void bind_owner(TaskState* task, TaskOwner* owner) noexcept {
    task_ = task;
    owner_ = owner;
  }

 private:
  TaskState* task_ = nullptr;
  std::coroutine_handle<> continuation_;
  TaskOwner* owner_ = nullptr;
};

template <class T>
class Promise final : public PromiseBase {
 public:
  Task<T> get_return_object() noexcept;
  template <class U>
    requires std::convertible_to<U&&, T>
  void return_value(U&& value) {
    result_.template emplace<1>(std::forward<U>(value));
  }
  void unhandled_exception() noexcept { result_.template emplace<2>(std::current_exception()); }

  T take_result() {
    if (result_.index() == 2) std::rethrow_exception(std::get<2>(result_));
    return std::move(std::get<1>(result_));
  }
  std::exception_ptr error() const noexcept {
    return result_.index() == 2 ? std::get<2>(result_) : nullptr;
  }

 private:
  std::variant<std::monostate, T, std::exception_ptr> result_;
};

template <>
class Promise<void> final : public PromiseBase {
 public:
  Task<void> get_return_object() noexcept;
  void return_void() noexcept {}
  void unhandled_exception() noexcept { error_ = std::current_exception(); }

  void take_result() {
    if (error_) std::rethrow_exception(error_);
  }
  std::exception_ptr error() const noexcept { return error_; }

 private:
  std::exception_ptr error_;
};

}  // namespace detail

// Coroutines the runtime's awaitables may suspend: those whose promise carries a TaskState.
template <class P>
concept RuntimePromise = std::derived_from<P, detail::PromiseBase>;

template <class T>
class [[nodiscard]] Task {
 public:
  using promise_type = detail::Promise<T>;
  using value_type = T;

  Task() noexcept = default;
  Task(Task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      reset();
      handle_ = std::exchange(other.handle_, {});
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() { reset(); }

  explicit operator bool() const noexcept { return static_cast<bool>(handle_); }

  // Awaiting a Task starts it in the awaiter's TaskState and yields its result.
  class Awaiter {
   public:
    explicit Awaiter(std::coroutine_handle<promise_type> callee) noexcept : callee_(callee) {}
    bool await_ready() const noexcept { return false; }
    template <RuntimePromise P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> caller) noexcept {
      callee_.promise().bind(caller.promise().task_state(), caller);
      return callee_;
    }
    T await_resume() { return callee_.promise().take_result(); }

   private:
    std::coroutine_handle<promise_type> callee_;
  };
  Awaiter operator co_await() && noexcept { return Awaiter(handle_); }

  // For the runtime's spawning machinery.
  std::coroutine_handle<promise_type> handle() const noexcept { return handle_; }

 private:
  friend class detail::Promise<T>;
  explicit Task(std::coroutine_handle<promise_type> h) noexcept : handle_(h) {}
  void reset() noexcept {
    if (handle_) std::exchange(handle_, {}).destroy();
  }

  std::coroutine_handle<promise_type> handle_;
};

namespace detail {
template <class T>
Task<T> Promise<T>::get_return_object() noexcept {
  return Task<T>(std::coroutine_handle<Promise<T>>::from_promise(*this));
}
inline Task<void> Promise<void>::get_return_object() noexcept {
  return Task<void>(std::coroutine_handle<Promise<void>>::from_promise(*this));
}
}  // namespace detail

// `co_await this_task()` yields the TaskState the calling coroutine runs in, without suspending.
struct this_task {
  TaskState* state = nullptr;
  bool await_ready() const noexcept { return false; }
  template <RuntimePromise P>
  bool await_suspend(std::coroutine_handle<P> caller) noexcept {
    state = caller.promise().task_state();
    return false;  // resume at once
  }
  TaskState& await_resume() const noexcept { return *state; }
};

}  // namespace curfew::rt
