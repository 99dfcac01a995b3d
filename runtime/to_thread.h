// to_thread(): run blocking work on the loop's BlockingPool and await its result, so the loop
// thread never blocks (asyncio.to_thread).
//
//   std::string text = co_await to_thread([path] { return read_whole_file(path); });
//
// Cancellation reacts at once: the awaiting task resumes with CancelledError; a job that has not
// started is dropped, a running one finishes on its thread and its result is discarded. So `fn`
// must own what it uses (capture by value): the awaiting frame may be gone when it runs.
#pragma once

#include <atomic>
#include <coroutine>
#include <exception>
#include <memory>
#include <optional>
#include <type_traits>

#include "runtime/blocking_pool.h"
#include "runtime/detail/runnable.h"
#include "runtime/loop.h"
#include "runtime/task.h"

namespace curfew::rt {
namespace detail {

template <class R>
struct BlockingJob {
  std::atomic<bool> abandoned{false};  // set by the loop thread on cancellation
  bool resumed = false;                // loop thread only
  std::conditional_t<std::is_void_v<R>, bool, std::optional<R>> value{};
  std::exception_ptr error;
};

}  // namespace detail

template <class F, class R = std::invoke_result_t<F&>>
class [[nodiscard]] ToThreadAwaiter final : private Runnable, private Suspension {
 public:
  explicit ToThreadAwaiter(F fn) : fn_(std::move(fn)) {}
  ToThreadAwaiter(const ToThreadAwaiter&) = delete;
  ToThreadAwaiter& operator=(const ToThreadAwaiter&) = delete;

  bool await_ready() const noexcept { return false; }
  template <RuntimePromise P>
  void await_suspend(std::coroutine_handle<P> caller) {
    waiter_ = caller;
    task_ = caller.promise().task_state();
    Loop* loop = &task_->loop();
    auto job = job_;
    // The job owns the function; a posted completion finds the awaiter only if it still waits.
    loop->blocking_pool().submit([job, loop, fn = std::move(fn_), self = this]() mutable {
      if (job->abandoned.load(std::memory_order_acquire)) return;
      try {
        if constexpr (std::is_void_v<R>) {
          fn();
        } else {
          job->value.emplace(fn());
        }
      } catch (...) {
        job->error = std::current_exception();
      }
      loop->post_threadsafe([job, self] {
        if (!job->resumed) self->finish();
      });
    });
    task_->suspend(*this);
  }
  R await_resume() {
    task_->resume();
    if (job_->error) std::rethrow_exception(job_->error);
    if constexpr (!std::is_void_v<R>) return std::move(*job_->value);
  }

 private:
  void finish() {
    job_->resumed = true;
    waiter_.resume();
  }
  void run() override { finish(); }
  void cancel() noexcept override {
    job_->abandoned.store(true, std::memory_order_release);
    job_->resumed = true;  // the job's completion, if it comes, finds nobody waiting
    task_->loop().post(*this);
  }

  F fn_;
  std::shared_ptr<detail::BlockingJob<R>> job_ = std::make_shared<detail::BlockingJob<R>>();
  TaskState* task_ = nullptr;
  std::coroutine_handle<> waiter_;
};

// Runs `fn()` on a pool thread and yields its result (or rethrows its exception).
template <class F>
ToThreadAwaiter<F> to_thread(F fn) {
  return ToThreadAwaiter<F>(std::move(fn));
}

}  // namespace curfew::rt
