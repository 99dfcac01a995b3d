// GrpcOp: one gRPC completion-queue operation as an awaitable.
//
// Named as asio-grpc names its parts: an operation is an InitFunction (starts it: hands the
// operation to gRPC with the awaiter as its tag) and a CancellationFunction (interrupts it). The
// loop resumes the task when the queue returns the tag, and co_await yields gRPC's `ok`.
// Cancelling the awaiting task calls the CancellationFunction (TryCancel on a client call; on the
// server side, see grpc_server.h): the operation then completes through the queue as usual — no
// tag is ever left pending — and the task sees CancelledError. Every gRPC awaitable of the runtime
// follows this convention.
#pragma once

#include <coroutine>
#include <utility>

#include <grpcpp/support/status.h>

#include "runtime/detail/completion.h"
#include "runtime/loop.h"
#include "runtime/task.h"

namespace curfew::rt::detail {

template <class InitFunction, class CancellationFunction>
class [[nodiscard]] GrpcOp final : private Completion, private Suspension {
 public:
  GrpcOp(InitFunction init, CancellationFunction cancellation)
      : init_(std::move(init)), cancellation_(std::move(cancellation)) {}
  GrpcOp(const GrpcOp&) = delete;
  GrpcOp& operator=(const GrpcOp&) = delete;

  bool await_ready() const noexcept { return false; }
  template <RuntimePromise P>
  void await_suspend(std::coroutine_handle<P> caller) {
    waiter_ = caller;
    task_ = caller.promise().task_state();
    void* tag = static_cast<Completion*>(this);
    task_->loop().tag_started(tag);
    init_(tag);
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
  void cancel() noexcept override { cancellation_(); }

  InitFunction init_;
  CancellationFunction cancellation_;
  TaskState* task_ = nullptr;
  std::coroutine_handle<> waiter_;
  bool ok_ = false;
};

template <class InitFunction, class CancellationFunction>
GrpcOp<InitFunction, CancellationFunction> grpc_op(InitFunction init,
                                                   CancellationFunction cancellation) {
  return GrpcOp<InitFunction, CancellationFunction>(std::move(init), std::move(cancellation));
}

// An operation whose outcome is a grpc::Status that gRPC writes into the call object (a client
// call's Finish): awaiting it gives that status.
template <class InitFunction, class CancellationFunction>
struct [[nodiscard]] StatusOp {
  const grpc::Status& status;
  GrpcOp<InitFunction, CancellationFunction> op;

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
