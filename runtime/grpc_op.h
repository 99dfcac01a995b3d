// GrpcOp: one gRPC completion-queue operation as an awaitable.
//
// await_suspend hands the operation to gRPC with the awaiter as its tag; the loop resumes the
// task when the queue returns the tag, and co_await yields gRPC's `ok`. Cancelling the awaiting
// task calls `interrupt` (TryCancel on the call, or a graceful finish on the server side): the
// operation then completes through the queue as usual — no tag is ever left pending — and the
// task sees CancelledError.
#pragma once

#include <coroutine>
#include <utility>

#include <grpcpp/support/status.h>

#include "runtime/completion.h"
#include "runtime/loop.h"
#include "runtime/task.h"

namespace curfew::rt::detail {

template <class StartFn, class InterruptFn>
class [[nodiscard]] GrpcOp final : private Completion, private Suspension {
 public:
  GrpcOp(StartFn start, InterruptFn interrupt)
      : start_(std::move(start)), interrupt_(std::move(interrupt)) {}
  GrpcOp(const GrpcOp&) = delete;
  GrpcOp& operator=(const GrpcOp&) = delete;

  bool await_ready() const noexcept { return false; }
  template <RuntimePromise P>
  void await_suspend(std::coroutine_handle<P> caller) {
    waiter_ = caller;
    task_ = caller.promise().task_state();
    void* tag = static_cast<Completion*>(this);
    task_->loop().tag_started(tag);
    start_(tag);
    task_->suspend(*this);
  }
  // gRPC's ok for this operation (e.g. false from a read: no more messages).
  bool await_resume() {
    task_->resume();
    return ok_;
  }

 private:
  void complete(bool ok) override {
    ok_ = ok;
    waiter_.resume();
  }
  void cancel() noexcept override { interrupt_(); }

  StartFn start_;
  InterruptFn interrupt_;
  TaskState* task_ = nullptr;
  std::coroutine_handle<> waiter_;
  bool ok_ = false;
};

template <class StartFn, class InterruptFn>
GrpcOp<StartFn, InterruptFn> grpc_op(StartFn start, InterruptFn interrupt) {
  return GrpcOp<StartFn, InterruptFn>(std::move(start), std::move(interrupt));
}

// An operation whose outcome is a grpc::Status that gRPC writes into the call object (a client
// call's Finish): awaiting it gives that status.
template <class StartFn, class InterruptFn>
struct [[nodiscard]] StatusOp {
  const grpc::Status& status;
  GrpcOp<StartFn, InterruptFn> op;

  bool await_ready() const noexcept { return false; }
  template <RuntimePromise P>
  void await_suspend(std::coroutine_handle<P> caller) {
    op.await_suspend(caller);
  }
  grpc::Status await_resume() {
    op.await_resume();
    return status;
  }
};

}  // namespace curfew::rt::detail
