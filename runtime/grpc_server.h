// Server side of generic (method-agnostic, bytes-only) calls on a grpc::AsyncGenericService.
//
//   while (auto call = co_await accept(service, loop)) {        // null once the server stops
//     group.spawn(handle(std::move(call)));
//   }
//   Task<void> handle(ServerCallPtr call) {
//     call->cancel_task_on_disconnect(co_await this_task{});    // caller gone => task cancelled
//     grpc::ByteBuffer request;
//     while (co_await call->read(request)) { ... }
//     co_await call->finish(grpc::Status::OK);
//   }
//
// Every step is a cancellation point. Cancelling a task waiting in a step interrupts the call:
//   - a write or a finish in flight is left to complete (the task then sees its cancellation):
//     cancelling the call under it would make gRPC's server transport send its cancellation
//     status ahead of the message bytes still queued, and the caller would get a message cut
//     short. Only a caller that does not take the bytes within kStuckWriteLimit is cut off;
//   - otherwise, with the status set by set_interrupt_status() (so a deadline can answer
//     DEADLINE_EXCEEDED), or by TryCancel when none is set.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>

#include "runtime/detail/completion.h"
#include "runtime/detail/grpc_op.h"
#include "runtime/detail/timers.h"
#include "runtime/loop.h"
#include "runtime/task_state.h"

namespace curfew::rt {

class ServerCall;
class AcceptAwaiter;

namespace detail {
struct ServerCallRelease {
  void operator()(ServerCall* call) const noexcept;
};
}  // namespace detail

// Owning pointer to an accepted call. Releasing it while the call is still open cancels the call;
// the memory itself goes once gRPC has handed back every tag of the call.
using ServerCallPtr = std::unique_ptr<ServerCall, detail::ServerCallRelease>;

class ServerCall {
 public:
  grpc::GenericServerContext& context() noexcept { return context_; }
  // Full method path, "/pkg.Service/Method".
  const std::string& method() const noexcept { return context_.method(); }

  // From now on, the caller going away (cancel, disconnect, deadline) cancels `task` with reason
  // "caller cancelled". The task must own this call (it is unbound when the call is released).
  // A caller already gone (its done notification came before this) cancels `task` at once.
  void cancel_task_on_disconnect(TaskState& task) {
    bound_task_ = &task;
    if (done_ && context_.IsCancelled()) task.cancel("caller cancelled");
  }

  // Status sent when a cancellation interrupts a pending step (see the file comment). The
  // function is called at that moment, so it can tell a deadline from a shutdown.
  void set_interrupt_status(std::function<grpc::Status()> status) {
    interrupt_status_ = std::move(status);
  }

  // Sends initial metadata added with context().AddInitialMetadata() (otherwise sent with the
  // first write or the finish).
  auto send_initial_metadata() {
    return detail::grpc_op([this](void* tag) { stream_.SendInitialMetadata(tag); },
                           cancellation_function());
  }
  // Reads the next request message; false once the caller half-closed (or the call died).
  auto read(grpc::ByteBuffer& message) {
    return detail::grpc_op([this, &message](void* tag) { stream_.Read(&message, tag); },
                           cancellation_function());
  }

  // After read() gave false: true when the caller half-closed (END_STREAM arrived), false when
  // the stream ended without one (the caller reset it, or its connection or deadline ended it).
  // gRPC's transport records which before it completes the read, so this is exact at once, not
  // inferred from when the done notification arrives.
  bool caller_half_closed() noexcept;
  // Sends a response message; false when the call is dead.
  auto write(const grpc::ByteBuffer& message, grpc::WriteOptions options = {}) {
    return WriteAwaiter{*this, detail::grpc_op(WriteInitFunction{this, &message, options},
                                               cancellation_function())};
  }
  // Sends the status (trailers added with context().AddTrailingMetadata()). Returns false when
  // the status could not be sent, or had already been sent by an interruption.
  auto finish(const grpc::Status& status) {
    return FinishAwaiter<FinishInitFunction>{
        *this, detail::grpc_op(FinishInitFunction{this, status}, cancellation_function())};
  }
  // Sends the last response message and the status as ONE operation: initial metadata (if not
  // sent yet), the message and the trailers leave in a single HTTP/2 write, where write() then
  // finish() take two. Same result as finish() (false when the status could not be sent or an
  // interruption had already sent one). gRPC allows it only with no other write in flight.
  auto write_and_finish(const grpc::ByteBuffer& message, const grpc::Status& status,
                        grpc::WriteOptions options = {}) {
    return FinishAwaiter<WriteAndFinishInitFunction>{
        *this, detail::grpc_op(WriteAndFinishInitFunction{this, &message, options, status},
                               cancellation_function())};
  }

  // True once finish() was started (by the handler or by an interruption).
  bool finished() const noexcept { return finish_started_; }

  // The code of the status handed to gRPC (by the handler or by an interruption), if any.
  std::optional<grpc::StatusCode> sent_code() const noexcept { return sent_code_; }

  // How long a write or finish in flight may stay stuck (the caller not reading) after the task
  // waiting for it was cancelled, before the call is cut off (see the file comment).
  static constexpr Duration kStuckWriteLimit = std::chrono::seconds(1);

  // True when the caller cancelled or disconnected (known once the call is over).
  bool caller_cancelled() const noexcept { return done_ && context_.IsCancelled(); }

  // True once gRPC reported the call over (finished or cancelled).
  bool done() const noexcept { return done_; }

 private:
  friend class AcceptAwaiter;
  friend struct detail::ServerCallRelease;

  explicit ServerCall(Loop& loop);
  ~ServerCall() = default;

  struct CancellationFunction {
    ServerCall* call;
    void operator()() const noexcept { call->interrupt_now(); }
  };
  struct WriteInitFunction {
    ServerCall* call;
    const grpc::ByteBuffer* message;
    grpc::WriteOptions options;
    void operator()(void* tag) const;
  };
  struct FinishInitFunction {
    ServerCall* call;
    grpc::Status status;
    void operator()(void* tag) const;
  };
  struct WriteAndFinishInitFunction {
    ServerCall* call;
    const grpc::ByteBuffer* message;
    grpc::WriteOptions options;
    grpc::Status status;
    void operator()(void* tag) const;
  };
  // Keeps sends_in_flight_ true to what is in flight: an interruption leaves a send in flight
  // alone (see the file comment).
  struct WriteAwaiter {
    ServerCall& call;
    detail::GrpcOp<WriteInitFunction, CancellationFunction> op;
    bool await_ready() const noexcept { return false; }
    template <RuntimePromise P>
    void await_suspend(std::coroutine_handle<P> caller) {
      op.await_suspend(caller);
    }
    bool await_resume() {
      call.send_completed();
      return op.await_resume();
    }
  };
  template <class InitFunction>
  struct FinishAwaiter {
    ServerCall& call;
    detail::GrpcOp<InitFunction, CancellationFunction> op;
    bool suspended = false;
    bool await_ready() const noexcept { return call.finish_started_; }
    template <RuntimePromise P>
    void await_suspend(std::coroutine_handle<P> caller) {
      suspended = true;
      op.await_suspend(caller);
    }
    bool await_resume() {
      if (!suspended) return false;
      call.send_completed();
      return op.await_resume();
    }
  };
  // Cuts off a caller that does not take a send left in flight by an interruption.
  class StuckSendTimer final : public TimerNode {
   public:
    explicit StuckSendTimer(ServerCall& call) : call_(call) {}
    void fire() override {
      call_.sent_code_ = grpc::StatusCode::CANCELLED;  // what the caller gets now
      call_.context_.TryCancel();
    }

   private:
    ServerCall& call_;
  };
  // Tags the call owns itself: accept, done, and a finish started by an interruption.
  class Tag final : public Completion {
   public:
    Tag(ServerCall* call, void (ServerCall::*on_complete)(bool))
        : call_(call), on_complete_(on_complete) {}
    void complete(bool ok) override { (call_->*on_complete_)(ok); }

   private:
    ServerCall* call_;
    void (ServerCall::*on_complete_)(bool ok);
  };

  CancellationFunction cancellation_function() noexcept { return CancellationFunction{this}; }
  void interrupt_now() noexcept;
  void send_started(const grpc::Status* status) noexcept;
  void send_completed() noexcept;
  void on_accepted(bool ok);
  void on_done(bool ok);
  void on_interrupt_finished(bool ok);
  void release() noexcept;
  void maybe_delete() noexcept;

  Loop& loop_;
  grpc::GenericServerContext context_;
  grpc::GenericServerAsyncReaderWriter stream_{&context_};
  AcceptAwaiter* acceptor_ = nullptr;  // the task waiting for this slot, null once abandoned
  Tag accept_tag_{this, &ServerCall::on_accepted};
  Tag done_tag_{this, &ServerCall::on_done};
  Tag interrupt_finish_tag_{this, &ServerCall::on_interrupt_finished};
  std::function<grpc::Status()> interrupt_status_;
  TaskState* bound_task_ = nullptr;
  StuckSendTimer stuck_send_timer_{*this};
  std::optional<grpc::StatusCode> sent_code_;
  int sends_in_flight_ = 0;  // writes and finishes started by the handler, not yet completed
  bool interrupt_deferred_ = false;  // an interruption waits for the sends in flight
  bool accepted_ = false;
  bool done_ = false;
  bool finish_started_ = false;
  bool interrupt_finish_pending_ = false;
  bool released_ = false;
};

// Awaitable of accept(): yields the next call, or null when the server is shutting down.
// Cancelling the waiting task abandons the pending request slot: the task resumes at once with
// CancelledError, and a call that still lands in the slot is cancelled.
class [[nodiscard]] AcceptAwaiter final : private Suspension, private Runnable {
 public:
  AcceptAwaiter(grpc::AsyncGenericService& service, Loop& loop);
  AcceptAwaiter(const AcceptAwaiter&) = delete;
  AcceptAwaiter& operator=(const AcceptAwaiter&) = delete;
  ~AcceptAwaiter();

  bool await_ready() const noexcept { return false; }
  template <RuntimePromise P>
  void await_suspend(std::coroutine_handle<P> caller) {
    waiter_ = caller;
    task_ = caller.promise().task_state();
    start();
    task_->suspend(*this);
  }
  ServerCallPtr await_resume();

 private:
  friend class ServerCall;
  void start();
  void accepted(bool ok);
  void cancel() noexcept override;
  void run() override { waiter_.resume(); }

  grpc::AsyncGenericService& service_;
  Loop& loop_;
  ServerCall* call_ = nullptr;  // the slot; ours once accepted
  TaskState* task_ = nullptr;
  std::coroutine_handle<> waiter_;
  bool ok_ = false;
};

// Waits for the next call to `service` on `loop` (whose queue must be a ServerCompletionQueue).
inline AcceptAwaiter accept(grpc::AsyncGenericService& service, Loop& loop) {
  return AcceptAwaiter(service, loop);
}

}  // namespace curfew::rt
